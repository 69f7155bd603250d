"""Training on CPU: real MNIST accuracy, determinism, events, failure modes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mnist_tui.config.loading import load_experiment
from mnist_tui.config.overrides import with_overrides
from mnist_tui.runs.store import RunStore
from mnist_tui.studies.runner import run_experiment
from mnist_tui.train.events import BatchProgress, EpochEnded, RunEnded, RunStarted

from .conftest import EXPERIMENTS


@pytest.mark.realdata
def test_lenet5_one_epoch_on_mnist_reaches_97(real_data: Path, tmp_path: Path) -> None:
    spec = load_experiment("lenet5", EXPERIMENTS, ["train.epochs=1"])
    events: list[object] = []
    run = run_experiment(
        spec,
        RunStore(tmp_path / "runs"),
        device="cpu",
        data_dir=real_data,
        download=False,
        on_event=events.append,
    )
    assert run.status == "completed"
    acc = run.final("test_acc")
    assert acc is not None and acc >= 0.97, acc
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], RunEnded)
    assert any(isinstance(e, BatchProgress) for e in events)
    # the stored run has everything the views read
    files = {p.name for p in run.path.iterdir()}
    assert {"spec.toml", "summary.json", "metrics.jsonl", "env.json", "best.pt", "last.pt"} <= files
    s = run.summary
    assert len(s["per_class_acc"]) == 10 and len(s["confusion"]) == 10
    assert sum(map(sum, s["confusion"])) == 10000
    assert s["hardest_class"] in s["classes"]
    assert s["best_epoch"] == 1 and s["parameters"] == 61_706
    ckpt = torch.load(run.path / "best.pt", weights_only=True)
    assert "model" in ckpt and "[model]" in ckpt["spec"]


@pytest.mark.realdata
def test_same_seed_same_numbers(real_data: Path, tmp_path: Path) -> None:
    overrides = ["train.epochs=2", "data.subset=3000", "data.test_subset=1000"]
    spec = load_experiment("lenet5_tuned", EXPERIMENTS, overrides)  # augmentation + dropout
    store = RunStore(tmp_path / "runs")
    a = run_experiment(spec, store, device="cpu", data_dir=real_data, download=False)
    b = run_experiment(spec, store, device="cpu", data_dir=real_data, download=False)
    keys = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "lr")
    rows_a = [{k: r[k] for k in keys} for r in a.metrics()]
    rows_b = [{k: r[k] for k in keys} for r in b.metrics()]
    assert rows_a == rows_b and len(rows_a) == 2
    other = run_experiment(
        with_overrides(spec, ["train.seed=1"]),
        store,
        device="cpu",
        data_dir=real_data,
        download=False,
    )
    assert other.metrics()[0]["train_loss"] != rows_a[0]["train_loss"]


@pytest.mark.realdata
def test_fashion_fnn2_with_doubling_learns(real_data: Path, tmp_path: Path) -> None:
    spec = load_experiment("fnn2", EXPERIMENTS, ["train.epochs=1"])
    run = run_experiment(spec, RunStore(tmp_path), device="cpu", data_dir=real_data, download=False)
    assert run.summary["final"]["test_acc"] > 0.78
    assert run.summary["classes"][6] == "Shirt"


def test_non_finite_loss_fails_the_run(fake_data: Path, tmp_path: Path) -> None:
    spec = load_experiment(
        "task0",
        EXPERIMENTS,
        [
            "data.dataset=mnist",
            "optim.name=sgd",
            "optim.lr=1e30",
            "optim.eps=1e-8",
            "train.epochs=3",
            "train.batch_size=32",
        ],
    )
    run = run_experiment(spec, RunStore(tmp_path), device="cpu", data_dir=fake_data, download=False)
    assert run.status == "failed"
    assert "non-finite training loss" in run.summary["reason"]


def test_cancel_marks_killed(fake_data: Path, tmp_path: Path) -> None:
    spec = load_experiment(
        "fnn1", EXPERIMENTS, ["data.dataset=mnist", "train.epochs=50", "train.batch_size=8"]
    )
    seen: list[EpochEnded] = []
    while_running: list[dict[str, object]] = []
    store = RunStore(tmp_path)

    def on_event(e: object) -> None:
        if isinstance(e, EpochEnded):
            seen.append(e)
            (info,) = store.runs()
            while_running.append(dict(info.summary))

    run = run_experiment(
        spec,
        store,
        device="cpu",
        data_dir=fake_data,
        download=False,
        on_event=on_event,
        should_stop=lambda: len(seen) >= 2,
    )
    assert run.status == "killed"
    assert run.summary["epochs_done"] == 2
    assert len(run.metrics()) == 2
    # while it ran, listings could show what it had reached, with its class names
    first = while_running[0]
    assert first["status"] == "running" and first["epochs_done"] == 1
    assert first["last"]["test_acc"] == seen[0].metrics.test_acc  # type: ignore[index]
    assert first["best"]["test_acc"] is not None  # type: ignore[index]
    assert len(first["classes"]) == 10  # type: ignore[arg-type]
    # and once stopped, the figures it reached
    assert run.final("test_acc") == seen[-1].metrics.test_acc


def test_fake_data_trains_with_validation_and_scheduler(fake_data: Path, tmp_path: Path) -> None:
    spec = load_experiment(
        "lenet5_tuned",
        EXPERIMENTS,
        # the traced lenet5_tuned has neither: ask for a split and a plateau schedule
        [
            "train.epochs=4",
            "train.batch_size=32",
            "data.val_split=0.2",
            'schedule.name="reduce_on_plateau"',
            "schedule.patience=0",
        ],
    )
    run = run_experiment(spec, RunStore(tmp_path), device="cpu", data_dir=fake_data, download=False)
    rows = run.metrics()
    assert run.status == "completed" and len(rows) == 4
    assert all(r["val_loss"] is not None for r in rows)
    assert run.summary["best_metric"] == "val_loss"


def test_device_errors_are_clear() -> None:
    from mnist_tui.errors import TrainingError
    from mnist_tui.train.setup import resolve_device

    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(TrainingError, match="not a device"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(TrainingError, match="CUDA is not available"):
            resolve_device("cuda")
