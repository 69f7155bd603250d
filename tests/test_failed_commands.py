"""Failed commands leave stored files as they were, and a run whose trainer is gone says
why: out of memory while the model is built, `plot` of a damaged best.pt, `resume` on a
device this machine lacks."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest
import torch

from mnist_tui.cli import main
from mnist_tui.config.loading import load_experiment
from mnist_tui.config.spec import ExperimentSpec
from mnist_tui.errors import TrainingError
from mnist_tui.runs.store import RunStore
from mnist_tui.studies.runner import run_experiment

from .conftest import EXPERIMENTS

OOMS = [
    MemoryError(),
    RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
    RuntimeError(
        "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate "
        "memory: you tried to allocate 40000000000 bytes."
    ),
]


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


def _files(path: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(path)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("error", OOMS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("queued", [False, True])
def test_out_of_memory_while_building_the_model_fails_the_run(
    fake_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    error: BaseException,
    queued: bool,
) -> None:
    def oom(self: ExperimentSpec) -> torch.nn.Module:
        raise error

    monkeypatch.setattr(ExperimentSpec, "build_model", oom)
    spec = load_experiment("fnn1", EXPERIMENTS, ["data.dataset=mnist", "train.epochs=1"])
    store = RunStore(tmp_path)
    handle = store.create(spec.name, spec.to_toml()) if queued else None
    with pytest.raises(TrainingError, match="memory while building the model"):
        run_experiment(spec, store, device="cpu", data_dir=fake_data, download=False, handle=handle)
    (run,) = store.runs()
    assert run.status == "failed"
    assert "memory while building the model" in run.summary["reason"]


def test_other_errors_while_building_the_model_fail_the_run_too(
    fake_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: ExperimentSpec) -> torch.nn.Module:
        raise ValueError("a layer of width -3")

    monkeypatch.setattr(ExperimentSpec, "build_model", broken)
    spec = load_experiment("fnn1", EXPERIMENTS, ["data.dataset=mnist", "train.epochs=1"])
    store = RunStore(tmp_path)
    with pytest.raises(ValueError, match="width -3"):
        run_experiment(spec, store, device="cpu", data_dir=fake_data, download=False)
    (run,) = store.runs()
    assert run.status == "failed" and "a layer of width -3" in run.summary["reason"]


@pytest.fixture
def stopped_run(fake_data: Path, tmp_path: Path) -> Path:
    """A run stopped after its first of two epochs (best.pt and last.pt written)."""
    spec = load_experiment("fnn1", EXPERIMENTS, ["data.dataset=mnist", "train.epochs=2"])
    store = RunStore(tmp_path / "runs")
    stops = iter([False, True])
    run = run_experiment(
        spec,
        store,
        device="cpu",
        data_dir=fake_data,
        download=False,
        should_stop=lambda: next(stops, True),
    )
    assert run.status in ("killed", "interrupted"), run.status
    assert (run.path / "last.pt").is_file() and (run.path / "best.pt").is_file()
    return run.path


def _damaged(kind: str, path: Path) -> None:
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("not a checkpoint at all\n")
    elif kind == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "python objects":  # torch's own error would advise weights_only=False
        torch.save({"model": datetime.datetime(2025, 1, 1)}, path)
    elif kind == "no weights":
        torch.save({"epoch": 3}, path)
    elif kind == "other model":
        torch.save({"model": {"layer.weight": torch.zeros(3, 3)}}, path)


DAMAGE = ["empty", "text", "truncated", "python objects", "no weights", "other model"]


@pytest.mark.parametrize("kind", DAMAGE)
def test_plot_of_a_damaged_best_checkpoint_changes_nothing(
    stopped_run: Path, fake_data: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    _damaged(kind, stopped_run / "best.pt")
    before = _files(stopped_run)
    code, out = _cli(
        capsys,
        "plot",
        stopped_run.name,
        "--runs-dir",
        str(stopped_run.parent.parent),
        "--data-dir",
        str(fake_data),
    )
    flat = " ".join(out.split())
    assert code == 2, out
    assert "best.pt" in flat and "Traceback" not in out
    assert "weights_only" not in flat and "miniz" not in flat
    assert _files(stopped_run) == before


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:3"])
def test_resume_on_a_device_this_machine_lacks_changes_nothing(
    stopped_run: Path, fake_data: Path, capsys: pytest.CaptureFixture[str], device: str
) -> None:
    before = _files(stopped_run)
    status = json.loads((stopped_run / "summary.json").read_text())["status"]
    code, out = _cli(
        capsys,
        "resume",
        stopped_run.name,
        "--device",
        device,
        "--runs-dir",
        str(stopped_run.parent.parent),
        "--data-dir",
        str(fake_data),
        "--quiet",
    )
    assert code == 2, out
    assert "CUDA is not available" in " ".join(out.split())
    assert _files(stopped_run) == before
    assert json.loads((stopped_run / "summary.json").read_text())["status"] == status


def test_resume_without_its_dataset_leaves_the_run_as_it_was(
    stopped_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = json.loads((stopped_run / "summary.json").read_text())
    empty = tmp_path / "no-data"
    empty.mkdir()
    code, out = _cli(
        capsys,
        "resume",
        stopped_run.name,
        "--device",
        "cpu",
        "--runs-dir",
        str(stopped_run.parent.parent),
        "--data-dir",
        str(empty),
        "--no-download",
        "--quiet",
    )
    assert code == 2, out
    after = json.loads((stopped_run / "summary.json").read_text())
    assert after["status"] == before["status"] and after.get("reason") == before.get("reason")
