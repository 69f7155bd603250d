"""Searches in parallel: `tune --parallel K` queues trials for the worker, K at a time.

The end-to-end test trains four tiny trials through a local worker with two CPU slots;
the pruning test drives one queued trial by hand (no training) to see the cancel flag.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mnist_tui.config.loading import load_experiment
from mnist_tui.runs import claim as claims
from mnist_tui.runs import scheduler
from mnist_tui.runs.store import RunStore
from mnist_tui.runs.worker import stop_worker, worker_info

from .conftest import EXPERIMENTS

pytest.importorskip("optuna")

SMALL = """extends = "fnn1"
[data]
dataset = "mnist"
subset = 1000
test_subset = 500
[train]
epochs = 1
[search]
trials = 4
[search.params]
"optim.lr" = { low = 0.01, high = 0.5, log = true }
"""


@pytest.fixture
def exps(tmp_path: Path) -> Path:
    d = tmp_path / "exps"
    shutil.copytree(EXPERIMENTS, d)
    (d / "small.toml").write_text(SMALL)
    return d


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RunStore]:
    s = RunStore(tmp_path / "store")
    yield s
    live = worker_info(s)
    if live is not None:
        try:
            stop_worker(s, timeout=60)
        except Exception:
            os.kill(live.pid, signal.SIGKILL)


def spans(store: RunStore) -> list[tuple[float, float]]:
    """When each trial's trainer process held its run: hand-over to release."""
    out = []
    for info in store.runs():
        (attempt,) = [h for h in claims.history(info.path) if h["purpose"] == "train"]
        out.append((attempt["claimed_at"], attempt["released_at"]))
    return sorted(out)


@pytest.mark.realdata
def test_tune_parallel_two_runs_four_trials_two_at_a_time_on_one_study(
    real_data: Path,
    exps: Path,
    store: RunStore,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    env = {
        **os.environ,
        "MNIST_TUI_DATA": str(real_data),
        "MNIST_TUI_CACHE": str(tmp_path_factory.getbasetemp() / "scheduler-cache"),
        "MNIST_TUI_EXPERIMENTS": str(exps),
        "PYTHONUNBUFFERED": "1",
    }
    best = tmp_path / "best.toml"
    out = subprocess.run(
        [sys.executable, "-m", "mnist_tui", "tune", "small", "--trials", "4", "--parallel", "2",
         "--device", "cpu", "--runs-dir", str(store.root), "--out", str(best), "--json"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads(out.stdout)
    assert result["parallel"] == 2 and len(result["trials"]) == 4
    assert result["storage"] == str(store.root / "tune.journal")
    # every trial is a stored run, trained by the worker, and all share one study
    runs = store.runs("small")
    assert sorted(r.summary["trial"] for r in runs) == [0, 1, 2, 3]
    assert {r.summary["study"] for r in runs} == {"small-tune"} and {r.group for r in runs} == {
        "small-tune"
    }
    assert all(r.status == "completed" for r in runs)
    assert {t["run"] for t in result["trials"]} == {r.id for r in runs}
    from mnist_tui.studies.tune import read_studies

    (study,) = read_studies(store)
    assert study.name == "small-tune" and len(study.trials) == 4
    assert study.best_value == pytest.approx(result["best_value"])
    tuned = load_experiment(str(best), exps)
    assert tuned.extends == "small"
    assert tuned.optim.lr == pytest.approx(result["best_params"]["optim.lr"])
    # two at a time: the trainers overlap in pairs, never three at once
    s = spans(store)
    overlaps = [
        (a, b) for i, a in enumerate(s) for b in s[i + 1 :] if max(a[0], b[0]) < min(a[1], b[1])
    ]
    assert overlaps, f"no two trials overlapped: {s}"
    for t, _ in s:
        assert sum(1 for a, b in s if a <= t < b) <= 2, s


class FakeTrial:
    """What the queued objective asks of an Optuna trial; prunes after the first report."""

    number = 0

    def __init__(self) -> None:
        self.reports: list[tuple[float, int]] = []

    def report(self, value: float, step: int) -> None:
        self.reports.append((value, step))

    def should_prune(self) -> bool:
        return bool(self.reports)


def test_a_queued_trial_is_pruned_through_its_cancel_flag(tmp_path: Path) -> None:
    import optuna

    from mnist_tui.studies.tune_parallel import QueuedTrials as _QueuedTrials

    spec = load_experiment("logreg", EXPERIMENTS, ["data.val_split=0.1"])
    store = RunStore(tmp_path / "runs")
    info = scheduler.enqueue(store, spec, scheduler.QueueRequest(("data.val_split=0.1",)))
    # a stand-in trainer: a process that holds the run and notes the cancel's SIGTERM; its
    # command line names the tool and the run, as a worker's child does (only a verified
    # trainer is signalled)
    told, ready = tmp_path / "got-sigterm", tmp_path / "ready"
    trainer = subprocess.Popen(
        [sys.executable, "-c", "import pathlib, signal, sys, time\n"
         "signal.signal(signal.SIGTERM, lambda *_: pathlib.Path(sys.argv[1]).touch())\n"
         "pathlib.Path(sys.argv[2]).touch()\n"
         "time.sleep(60)", str(told), str(ready), "mnist_tui", "train-run", str(info.path)],
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while not ready.exists():
        assert time.monotonic() < deadline, "the stand-in trainer did not start"
        time.sleep(0.05)
    try:
        mine = claims.claim(info.path, "worker")
        claims.hand_over(info.path, mine, trainer.pid, "train")
        handle = store.handle(info)
        handle.update(status="running", pid=trainer.pid)
        row: dict[str, Any] = {
            "epoch": 1, "train_loss": 1.0, "train_acc": 0.5, "test_loss": 1.0,
            "test_acc": 0.5, "lr": 0.1, "seconds": 1.0, "images_per_s": 1.0,
            "val_loss": 1.0, "val_acc": 0.42,
        }  # fmt: skip
        handle.append_metrics(row)
        queued = _QueuedTrials(optuna, spec, store, [], "s", "cpu", None, None)
        trial = FakeTrial()
        got: dict[str, Any] = {}
        follower = threading.Thread(target=lambda: got.update(r=queued.follow(info, trial)))
        follower.start()
        deadline = time.monotonic() + 20
        while not (info.path / scheduler.CANCEL_FLAG).exists():
            assert time.monotonic() < deadline, "the pruned trial's run was never cancelled"
            time.sleep(0.1)
        deadline = time.monotonic() + 10
        while not told.exists():  # the local trainer was told too
            assert time.monotonic() < deadline, "the trainer got no SIGTERM"
            time.sleep(0.1)
        time.sleep(1)
        assert follower.is_alive()  # it waits for the run to end and be released
        handle.update(status="killed", reason="cancelled by the user")
        claims.release(info.path, claims.holder_of(info.path), ended="killed")  # type: ignore[arg-type]
        follower.join(timeout=10)
        done, pruned = got["r"]
        assert pruned and done.summary["status"] == "killed"
        assert trial.reports == [(0.42, 1)]
    finally:
        trainer.kill()
        trainer.wait()
