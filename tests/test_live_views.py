"""What views show of runs in flight: the figures reached so far, a stop asked for, an ETA
that moves with the steps, "started" meaning started, the live one-line summary."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from mnist_tui.config.loading import load_experiment
from mnist_tui.runs import scheduler
from mnist_tui.runs.store import RunHandle, RunStore
from mnist_tui.tui.workers import live_summary
from mnist_tui.views import run_tables, tables

from .conftest import EXPERIMENTS


def running_run(store: RunStore, **fields: object) -> RunHandle:
    """A run this process 'trains': alive pid on this host, so it reads as running."""
    spec = load_experiment("fnn1", EXPERIMENTS)
    h = store.create("fnn1", spec.to_toml())
    h.update(status="running", host=socket.gethostname(), pid=os.getpid(), **fields)
    return h


def test_a_running_run_shows_its_latest_epoch_through_the_index(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    h = running_run(
        store,
        epochs=10,
        epochs_done=3,
        best_epoch=2,
        last={"epoch": 3, "test_acc": 0.8123, "test_loss": 0.5},
        best={"epoch": 2, "test_acc": 0.8201, "test_loss": 0.49},
    )
    (brief,) = store.runs(brief=True)  # what listings read: the index's columns
    assert brief.id == h.id and brief.status == "running"
    assert brief.latest("test_acc") == pytest.approx(0.8123)
    row = run_tables.run_row(brief)
    headers = [c.header for c in run_tables.RUN_COLUMNS[1:]]
    cells = dict(zip(headers, (c.text for c in row.cells), strict=True))
    assert cells["test acc"] == "81.23%" and cells["best acc"] == "82.01%"
    # a finished run's final figure wins over its last epoch
    h.update(status="completed", final={"test_acc": 0.83})
    (done,) = store.runs(brief=True)
    assert done.latest("test_acc") == pytest.approx(0.83)


def test_a_stop_request_shows_at_once(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    h = running_run(store, epochs=10, epochs_done=1)
    (info,) = store.runs()
    assert tables.shown_status(info) == "running"
    (h.path / scheduler.CANCEL_FLAG).write_text(str(time.time()))
    (info,) = store.runs()
    assert tables.shown_status(info) == "stopping"
    assert run_tables.run_row(info).cells[2].text == "stopping"


def test_started_is_when_training_started_not_when_queued(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    spec = load_experiment("fnn1", EXPERIMENTS)
    store.create("fnn1", spec.to_toml(), status="queued")
    (queued,) = store.runs(brief=True)
    started_at = run_tables.RUN_COLUMNS.index(
        next(c for c in run_tables.RUN_COLUMNS if c.header == "started")
    )
    assert run_tables.run_row(queued).cells[started_at - 1].text == "—"
    h = store.handle(queued)
    h.update(
        status="running", host=socket.gethostname(), pid=os.getpid(), started=time.time() - 125
    )
    (running,) = store.runs(brief=True)
    assert run_tables.run_row(running).cells[started_at - 1].text == "2m ago"


def test_eta_moves_with_every_step() -> None:
    now = 1000.0
    s = {"epochs": 10, "epochs_done": 2, "epoch_in_progress": 3, "steps": 100, "started": 800.0}
    before = tables.eta_seconds({**s, "step": 10}, now, [60.0, 60.0])
    after = tables.eta_seconds({**s, "step": 60}, now, [60.0, 60.0])
    assert before == pytest.approx(60 * (10 - 2.1)) and after == pytest.approx(60 * (10 - 2.6))
    # in the first epoch, from the time since it started
    first = {"epochs": 4, "epochs_done": 0, "epoch_in_progress": 1, "steps": 10, "step": 5}
    assert tables.eta_seconds({**first, "started": 990.0}, now) == pytest.approx(10 / 0.5 * 3.5)
    assert tables.eta_seconds({"epochs": 4, "epochs_done": 0}, now) is None


def test_live_summary_counts_and_names_the_newest_result(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    spec = load_experiment("fnn1", EXPERIMENTS)
    for acc, started in ((0.81, 100.0), (0.84, 200.0)):
        h = store.create("fnn1", spec.to_toml())
        h.update(status="completed", started=started, wall_seconds=10.0, final={"test_acc": acc})
    store.create("fnn1", spec.to_toml(), status="queued")
    running_run(store)
    line, title = live_summary(store.runs(brief=True))
    assert title == "2 done · 1 running · 1 queued · newest fnn1 84.00%"
    assert line.startswith("4 runs: 2 done") and line.endswith("? help")


def test_relative_times_tick_without_rebuilding_every_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mnist_tui.tui import workers

    monkeypatch.setattr(workers, "TICK", 0.2)
    store = RunStore(tmp_path / "runs")
    spec = load_experiment("fnn1", EXPERIMENTS)
    for started in (time.time() - 30, 1_600_000_000.0):  # seconds ago; a date long ago
        h = store.create("fnn1", spec.to_toml())
        h.update(status="completed", started=started, final={"test_acc": 0.8})
    reader = workers.StoreReader(EXPERIMENTS, store)
    first = reader.read([])
    assert first is not None and first.runs_table is not None
    col = [c.header for c in first.runs_table.columns].index("started")
    texts = sorted(r.cells[col].text for r in first.runs_table.rows)
    assert texts[1].endswith("s ago") and texts[0] == time.strftime(
        "%Y-%m-%d", time.localtime(1_600_000_000.0)
    )
    built = 0

    def counting(r: object) -> object:
        nonlocal built
        built += 1
        return real(r)  # type: ignore[arg-type]

    real = run_tables.run_row
    monkeypatch.setattr(run_tables, "run_row", counting)
    time.sleep(1.3)
    later = reader.read([])
    assert later is not None and later.runs_table is not None  # the table moved on
    assert sorted(r.cells[col].text for r in later.runs_table.rows) != texts
    assert built == 1  # only the row whose text changed was built again
