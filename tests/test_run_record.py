"""A run's record is never corrupted or false: refused resumes leave it exactly as it was,
and a run that runs out of host memory fails with the reason instead of staying running."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mnist_tui.config.loading import load_experiment
from mnist_tui.errors import StoreError, TrainingError
from mnist_tui.runs.record import RunInfo
from mnist_tui.runs.store import RunStore
from mnist_tui.studies.runner import resume_run, run_experiment
from mnist_tui.train.trainer import Trainer

from .conftest import EXPERIMENTS

FNN = ["data.dataset=mnist", "train.epochs=3", "train.batch_size=32"]


def snapshot(run: Path) -> dict[str, str]:
    """Every file of a run directory and its content hash."""
    return {
        str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def stopped_run(fake_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunInfo:
    """An fnn1 run killed after its second epoch, with its checkpoint."""
    spec = load_experiment("fnn1", EXPERIMENTS, FNN)
    store = RunStore(tmp_path / "store")
    calls = {"n": 0}

    def stop_after_two() -> bool:
        return calls["n"] >= 2

    real = Trainer.train_epoch

    def counting(self: Trainer, epoch: int) -> tuple[float, float]:
        out = real(self, epoch)
        calls["n"] = epoch
        return out

    monkeypatch.setattr(Trainer, "train_epoch", counting)
    run = run_experiment(
        spec, store, device="cpu", data_dir=fake_data, download=False, should_stop=stop_after_two
    )
    monkeypatch.setattr(Trainer, "train_epoch", real)
    assert run.status == "killed" and (run.path / "last.pt").is_file()
    return run


def refuse(run: RunInfo, match: str) -> None:
    store = RunStore(run.path.parent.parent)
    before = snapshot(run.path)
    with pytest.raises(StoreError, match=match) as exc:
        resume_run(store.read_run(run.experiment, run.id), store, device="cpu")  # type: ignore[arg-type]
    assert "weights_only" not in str(exc.value)
    assert "arbitrary code" not in str(exc.value)
    assert snapshot(run.path) == before, "a refused resume changed the run"
    again = store.read_run(run.experiment, run.id)
    assert again is not None and again.summary["status"] == "killed"


@pytest.mark.parametrize(
    "damage",
    [
        b"",  # empty
        b"not a checkpoint at all",
        b"PK\x03\x04" + b"\x00" * 64,  # a zip header and nothing else
    ],
)
def test_a_damaged_checkpoint_is_refused_without_torch_advice(
    stopped_run: RunInfo, damage: bytes
) -> None:
    (stopped_run.path / "last.pt").write_bytes(damage)
    refuse(stopped_run, "is damaged")


def test_a_checkpoint_with_the_wrong_content_is_refused(stopped_run: RunInfo) -> None:
    torch.save({"model": {}, "hello": 1}, stopped_run.path / "last.pt")
    refuse(stopped_run, "not a mnist-tui training checkpoint")


def test_a_spec_whose_model_no_longer_matches_the_weights_is_refused(
    stopped_run: RunInfo,
) -> None:
    path = stopped_run.path / "spec.toml"
    text = path.read_text()
    assert "hidden = [" in text
    path.write_text(text.replace("hidden = [", "hidden = [64, ", 1))
    refuse(stopped_run, "no longer matches the checkpoint")


def test_a_spec_whose_optimizer_changed_is_refused(stopped_run: RunInfo) -> None:
    path = stopped_run.path / "spec.toml"
    text = path.read_text()
    assert 'name = "sgd"' in text or 'name = "adam"' in text
    swapped = (
        text.replace('name = "sgd"', 'name = "adam"', 1)
        if 'name = "sgd"' in text
        else text.replace('name = "adam"', 'name = "sgd"', 1)
    )
    path.write_text(swapped)
    refuse(stopped_run, "optim.name")


def test_a_spec_that_no_longer_loads_is_refused(stopped_run: RunInfo) -> None:
    (stopped_run.path / "spec.toml").write_text("[model\n")
    refuse(stopped_run, "spec.toml no longer loads")


def test_resume_of_a_refused_run_from_the_cli_prints_one_line(stopped_run: RunInfo) -> None:
    (stopped_run.path / "last.pt").write_bytes(b"garbage")
    out = subprocess.run(
        [sys.executable, "-m", "mnist_tui", "resume", stopped_run.id, "-q",
         "--runs-dir", str(stopped_run.path.parent.parent)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and "is damaged" in out.stderr


@pytest.mark.parametrize(
    "error",
    [
        MemoryError(),
        RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate "
            "memory: you tried to allocate 90000000000 bytes."
        ),
    ],
)
def test_out_of_host_memory_fails_the_run_with_the_reason(
    fake_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    def oom(self: Trainer, epoch: int) -> tuple[float, float]:
        raise error

    monkeypatch.setattr(Trainer, "train_epoch", oom)
    spec = load_experiment("fnn1", EXPERIMENTS, FNN)
    store = RunStore(tmp_path / "store")
    with pytest.raises(TrainingError, match="out of host memory"):
        run_experiment(spec, store, device="cpu", data_dir=fake_data, download=False)
    (run,) = store.runs()
    assert run.status == "failed"
    assert run.summary["reason"].startswith("out of host memory while training")


def test_env_json_records_the_packages_commit_not_the_working_directorys(
    fake_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "another-repo"
    elsewhere.mkdir()
    subprocess.run(["git", "init", "-q", str(elsewhere)], check=True)
    monkeypatch.chdir(elsewhere)
    spec = load_experiment("fnn1", EXPERIMENTS, FNN)
    run = run_experiment(spec, RunStore(tmp_path / "s"), device="cpu", data_dir=fake_data,
                         download=False)  # fmt: skip
    env = __import__("json").loads((run.path / "env.json").read_text())
    package = Path(__import__("mnist_tui").__file__).resolve().parent
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=package, capture_output=True,
                          text=True, check=False).stdout.strip()  # fmt: skip
    if head:
        assert env["git_commit"].removesuffix("-dirty") == head
    else:
        assert env["git_commit"] is None
    assert env["cwd"] == str(elsewhere)
