"""A run killed with SIGKILL is seen as interrupted, keeps its epochs, and resumes exactly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mnist_tui.config.loading import load_experiment
from mnist_tui.errors import StoreError
from mnist_tui.runs.store import RunStore
from mnist_tui.studies.runner import resume_run, run_experiment

from .conftest import EXPERIMENTS

OVERRIDES = [
    "data.subset=6000",
    "data.test_subset=500",
    "train.epochs=6",
    "train.batch_size=32",
    "model.dropout=0.2",
]


@pytest.mark.realdata
def test_sigkill_then_resume_matches_uninterrupted(real_data: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    cmd = [
        sys.executable,
        "-m",
        "mnist_tui",
        "run",
        "fnn1",
        "--device",
        "cpu",
        "--data-dir",
        str(real_data),
        "--runs-dir",
        str(runs),
        "--no-download",
        "-q",
    ]
    for o in OVERRIDES:
        cmd += ["-S", o]
    env = {**os.environ, "MNIST_TUI_EXPERIMENTS": str(EXPERIMENTS)}
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    store = RunStore(runs)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = store.runs()
        if found and len(found[0].metrics()) >= 2:
            break
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)  # mid-epoch, no chance to clean up
    child.wait(timeout=30)
    (run,) = store.runs()
    assert run.status == "interrupted"
    kept = run.metrics()
    assert len(kept) >= 2 and all("test_acc" in r for r in kept)

    resumed = resume_run(run, store, device="cpu", data_dir=real_data, download=False)
    assert resumed.status == "completed"
    assert resumed.summary["resumed_from_epoch"] >= 2
    rows = resumed.metrics()
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5, 6]

    spec = load_experiment("fnn1", EXPERIMENTS, OVERRIDES)
    straight = run_experiment(
        spec, RunStore(tmp_path / "straight"), device="cpu", data_dir=real_data, download=False
    )
    keys = ("train_loss", "train_acc", "test_loss", "test_acc")
    assert [{k: r[k] for k in keys} for r in rows] == [
        {k: r[k] for k in keys} for r in straight.metrics()
    ]
    with pytest.raises(StoreError, match="already completed"):
        resume_run(store.runs()[0], store, device="cpu", data_dir=real_data, download=False)


def test_resume_without_checkpoint_says_so(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    h = store.create("fnn1", load_experiment("fnn1", EXPERIMENTS).to_toml())
    h.update(status="killed", epochs_done=1)
    with pytest.raises(StoreError, match="no checkpoint"):
        resume_run(store.runs()[0], store, device="cpu")
    # refused without a trace: the run is exactly as it was
    assert store.runs()[0].summary == h.summary
    assert not (h.path / "claims.jsonl").exists()


@pytest.mark.realdata
def test_resume_of_a_run_cancelled_before_it_started_starts_it(
    tmp_path: Path, real_data: Path
) -> None:
    store = RunStore(tmp_path)
    spec = load_experiment("fnn1", EXPERIMENTS, OVERRIDES)
    h = store.create("fnn1", spec.to_toml(), status="killed")
    h.update(reason="removed from the queue before it started")
    done = resume_run(store.runs()[0], store, device="cpu", data_dir=real_data, download=False)
    assert done.status == "completed"
    assert [r["epoch"] for r in done.metrics()] == list(range(1, spec.train.epochs + 1))
