"""Faults: concurrent writers, a full disk, device out-of-memory, damaged run directories."""

from __future__ import annotations

import errno
import json
import multiprocessing as mp
import os
from pathlib import Path

import pytest
import torch

from mnist_tui.config.loading import load_experiment
from mnist_tui.errors import StoreError
from mnist_tui.runs import store as store_mod
from mnist_tui.runs.io import write_json_atomic
from mnist_tui.runs.store import RunStore
from mnist_tui.studies.report import build_report
from mnist_tui.studies.runner import run_experiment
from mnist_tui.train.trainer import Trainer

from .conftest import EXPERIMENTS


def _writer(root: str, n: int, seed: int) -> None:
    store = RunStore(Path(root))
    h = store.create("fnn1", "name = 'fnn1'\n", seed=seed)
    figures = dict.fromkeys(("train_loss", "train_acc", "test_loss", "lr", "seconds"), 1.0)
    for i in range(n):
        h.append_metrics({**figures, "epoch": i + 1, "test_acc": i / n, "images_per_s": 1.0})
        h.update(epochs_done=i + 1, blob="x" * 2000)


def _reader(root: str, n: int, out: mp.Queue) -> None:  # type: ignore[type-arg]
    store = RunStore(Path(root))
    bad = 0
    for _ in range(n):
        for info in store.runs():
            if not isinstance(info.summary.get("epochs_done", 0), int):
                bad += 1
            info.metrics()
        bad += len(store.damaged())
    out.put(bad)


def test_concurrent_writers_and_readers_never_see_broken_json(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    results: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), 150, s)) for s in range(4)]
    procs += [ctx.Process(target=_reader, args=(str(tmp_path), 150, results)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    assert [results.get(timeout=5) for _ in range(2)] == [0, 0]
    runs = RunStore(tmp_path).runs()
    assert len(runs) == 4
    for r in runs:
        assert r.summary["epochs_done"] == 150 and len(r.metrics()) == 150
    leftovers = [p for p in tmp_path.rglob("*.tmp")]
    assert leftovers == []


def _full_disk(*_args: object, **_kwargs: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_keeps_the_old_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "summary.json"
    write_json_atomic(target, {"status": "running", "epochs_done": 3})
    monkeypatch.setattr(store_mod.os, "fsync", _full_disk)
    with pytest.raises(StoreError, match="No space left on device"):
        write_json_atomic(target, {"status": "completed"})
    assert json.loads(target.read_text()) == {"status": "running", "epochs_done": 3}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_full_disk_during_a_run_is_a_clear_error(
    fake_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = load_experiment("fnn1", EXPERIMENTS, ["data.dataset=mnist", "train.epochs=3"])
    store = RunStore(tmp_path)
    calls = {"n": 0}
    real_append = store_mod.RunHandle.append_metrics

    def append(self: store_mod.RunHandle, row: dict[str, object]) -> None:
        calls["n"] += 1
        if calls["n"] >= 2:
            raise StoreError(
                f"cannot append to {self.path / 'metrics.jsonl'}: No space left on device"
            )
        real_append(self, row)

    monkeypatch.setattr(store_mod.RunHandle, "append_metrics", append)
    with pytest.raises(StoreError, match="No space left on device"):
        run_experiment(spec, store, device="cpu", data_dir=fake_data, download=False)
    (run,) = store.runs()
    assert run.status == "failed" and "No space left" in run.summary["reason"]
    assert len(run.metrics()) == 1  # what was written before stays


def test_device_out_of_memory_fails_the_run(
    fake_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def oom(self: Trainer, epoch: int) -> tuple[float, float]:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(Trainer, "train_epoch", oom)
    spec = load_experiment("fnn1", EXPERIMENTS, ["data.dataset=mnist", "train.epochs=2"])
    run = run_experiment(spec, RunStore(tmp_path), device="cpu", data_dir=fake_data, download=False)
    assert run.status == "failed"
    assert run.summary["reason"].startswith("out of memory on cpu: CUDA out of memory")


def test_damaged_runs_do_not_break_report_or_views(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mnist_tui.cli import main

    store = RunStore(tmp_path)
    good = store.create("fnn1", load_experiment("fnn1", EXPERIMENTS).to_toml())
    good.update(status="completed", final={"test_acc": 0.8}, best={"test_acc": 0.8})
    for text in ("", "{", "[1, 2]", "\x00\x01"):
        bad = store.create("fnn1", "")
        (bad.path / "summary.json").write_text(text)
    broken_spec = store.create("fnn1", "this is = not toml [")
    broken_spec.update(status="completed", final={"test_acc": 0.9})
    (tmp_path / "fnn1" / "not-a-run").mkdir()
    assert [r.id for r in store.runs() if r.id == good.id] == [good.id]
    assert len(store.damaged()) == 5  # listed as damaged, the unreadable spec.toml too
    rows = build_report(EXPERIMENTS, store, ["fnn1"])
    assert rows[0].runs == 1
    with pytest.raises(SystemExit) as exc:
        main(["runs", "--runs-dir", str(tmp_path)])
    assert exc.value.code in (0, None)
    assert capsys.readouterr().err.count("damaged run fnn1/") == 5


async def test_console_survives_damaged_runs(tmp_path: Path) -> None:
    from textual.widgets import DataTable

    from mnist_tui.tui.app import MnistTuiApp

    store = RunStore(tmp_path)
    good = store.create("fnn1", load_experiment("fnn1", EXPERIMENTS).to_toml())
    good.update(status="completed", final={"test_acc": 0.8}, best={"test_acc": 0.8})
    bad = store.create("fnn1", "")
    (bad.path / "summary.json").write_text('{"status": "runn')  # torn write
    (tmp_path / ".queue.json").write_text("{ not json")  # damaged queue file
    app = MnistTuiApp(runs_dir=tmp_path, experiments_dir=EXPERIMENTS, concurrency=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        await pilot.pause()
        table = app.query_one("#runs-table", DataTable)
        assert table.row_count == 2  # the torn one is listed, as damaged
        await pilot.press("4")
        await pilot.pause()
        assert app.query_one("#report-table", DataTable).row_count > 0
