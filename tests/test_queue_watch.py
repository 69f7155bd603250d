"""The worker's poll and `enqueue` cost O(changes): nothing is read when nothing changed."""

from __future__ import annotations

import json
import shutil
import time
import types
from pathlib import Path

import pytest

from mnist_tui.config.loading import load_experiment
from mnist_tui.runs import queue_watch, scheduler
from mnist_tui.runs.queue_watch import QueueWatch
from mnist_tui.runs.store import RunStore

from .conftest import EXPERIMENTS


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    return RunStore(tmp_path / "store")


def add(store: RunStore, n: int = 1) -> list[str]:
    spec = load_experiment("logreg", EXPERIMENTS)
    return [scheduler.enqueue(store, spec, scheduler.QueueRequest()).id for _ in range(n)]


def test_enqueue_reads_no_queue_once_the_tail_is_known(
    store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = add(store, 3)
    assert queue_watch.tail(store) is not None

    def no_reading(*_: object, **__: object) -> None:
        raise AssertionError("enqueue read the queue")

    monkeypatch.setattr(scheduler, "queue_order", no_reading)
    later = add(store, 2)
    monkeypatch.undo()
    assert [r.id for r in scheduler.queue_order(store)] == first + later


def test_a_run_moved_to_the_bottom_stays_before_the_next_enqueued(store: RunStore) -> None:
    a, b, c = add(store, 3)
    run = store.resolve(a)
    scheduler.move(store, run, "bottom")
    (d,) = add(store)
    assert [r.id for r in scheduler.queue_order(store)] == [b, c, a, d]


def test_a_store_that_lost_its_tail_reads_the_queue_once(store: RunStore) -> None:
    a, b = add(store, 2)
    store.index.set_value(queue_watch.TAIL_KEY, "not a number")
    (c,) = add(store)
    assert [r.id for r in scheduler.queue_order(store)] == [a, b, c]


def test_an_idle_poll_reads_no_run_and_sees_every_kind_of_change(
    store: RunStore, tmp_path: Path
) -> None:
    (a,) = add(store)
    watch = QueueWatch(store, reconcile=3600)
    assert [r.id for r in watch.active()] == [a]
    reads, checks = watch.reads, watch.full_checks
    for _ in range(5):  # nothing changed: no query, no stat of the runs
        assert [r.id for r in watch.active()] == [a]
    assert (watch.reads, watch.full_checks) == (reads, checks)

    (b,) = add(store)  # a write through the store: the generation moves
    assert {r.id for r in watch.active()} == {a, b}

    # a run folder copied in behind the store's back: its experiment folder changed
    run_b = store.resolve(b).path
    copy = run_b.parent / "0123abcd"
    shutil.copytree(run_b, copy)
    summary = json.loads((copy / "summary.json").read_text())
    summary["id"] = "0123abcd"
    (copy / "summary.json").write_text(json.dumps(summary))
    assert "0123abcd" in {r.id for r in watch.active()}

    # a summary edited in place is seen at the next full check
    summary["status"] = "killed"
    (copy / "summary.json").write_text(json.dumps(summary) + " ")
    watch.reconcile = 0.0
    assert "0123abcd" not in {r.id for r in watch.active()}


def test_a_costly_full_check_is_spread_out_to_stay_within_its_budget(
    store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    add(store)
    ticks = iter(range(1000))
    # each full check appears to cost one CPU second: at CHECK_BUDGET 0.5% the next periodic
    # check waits 200 s, however small `reconcile` is
    clock = types.SimpleNamespace(monotonic=time.monotonic)
    clock.process_time = lambda: float(next(ticks))
    monkeypatch.setattr(queue_watch, "time", clock)
    watch = QueueWatch(store, reconcile=1e-6)
    watch.active()
    assert watch.period == pytest.approx(1.0 / queue_watch.CHECK_BUDGET)
    for _ in range(3):
        watch.active()
    assert watch.full_checks == 1

    # a cheap check keeps the configured period (here: a microsecond, so every poll)
    clock.process_time = lambda: 5.0
    cheap = QueueWatch(store, reconcile=1e-6)
    for _ in range(3):
        cheap.active()
    assert cheap.full_checks == 3
