"""The environment failing: a read-only store, a full file system, an unreadable dataset
file, a wrong checkpoint. Each is one clear error naming the file: exit 2, no traceback.

Tests run as root, who may write anywhere, so the refusals are injected where the file
system would give them: the file's open or write raises the OSError the kernel raises."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from mnist_tui.cli import main
from mnist_tui.config.loading import load_experiment
from mnist_tui.errors import MnistTuiError
from mnist_tui.runs import scheduler
from mnist_tui.runs.store import RunStore
from mnist_tui.runs.worker import LOCK
from mnist_tui.studies.runner import run_experiment

from .conftest import EXPERIMENTS
from .test_failed_commands import stopped_run  # noqa: F401  (a fixture)

REFUSALS = [errno.EACCES, errno.EROFS, errno.ENOSPC]
_real_open = Path.open


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


def _refuse(code: int, path: Path) -> OSError:
    cls = PermissionError if code in (errno.EACCES, errno.EPERM) else OSError
    return cls(code, os.strerror(code), str(path))


def _refusing_open(which: Callable[[Path], bool], code: int, on_write: bool = False) -> Any:
    """Path.open that fails for the chosen files: at open, or (a full disk) at write."""

    class FullFile:
        def __init__(self, fh: Any) -> None:
            self._fh = fh

        def write(self, data: Any) -> int:
            raise OSError(code, os.strerror(code))  # as the kernel: no file name

        def __getattr__(self, name: str) -> Any:
            return getattr(self._fh, name)

        def __enter__(self) -> FullFile:
            return self

        def __exit__(self, *exc: object) -> None:
            self._fh.close()

    def fake(self: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if not which(self):
            return _real_open(self, mode, *args, **kwargs)
        if on_write:
            return FullFile(_real_open(self, mode, *args, **kwargs))
        raise _refuse(code, self)

    return fake


def _one_clear_line(code: int, out: str, name: str) -> None:
    assert code == 2, out
    assert "Traceback" not in out
    assert "".join(name.split()) in "".join(out.split()), out  # rich wraps long paths
    assert out.startswith("error:"), out


@pytest.mark.parametrize("refusal", REFUSALS, ids=errno.errorcode.get)
def test_queue_pause_on_a_store_that_refuses_writes(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    refusal: int,
) -> None:
    tmp_path.joinpath("runs").mkdir()

    def refuse(self: Path, *args: Any, **kwargs: Any) -> int:
        raise _refuse(refusal, self)

    monkeypatch.setattr(Path, "write_text", refuse)
    code, out = _cli(capsys, "queue", "pause", "--runs-dir", str(tmp_path / "runs"))
    _one_clear_line(code, out, scheduler.PAUSE_FLAG)
    assert os.strerror(refusal) in " ".join(out.split())


@pytest.mark.parametrize("refusal", REFUSALS, ids=errno.errorcode.get)
@pytest.mark.parametrize("at", ["open", "write"])
def test_worker_on_a_store_that_refuses_its_lock(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    refusal: int,
    at: str,
) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    opener = _refusing_open(lambda p: p.name == LOCK, refusal, on_write=at == "write")
    monkeypatch.setattr(Path, "open", opener)
    code, out = _cli(capsys, "worker", "--runs-dir", str(runs), "--idle-exit", "1")
    _one_clear_line(code, out, LOCK)
    assert os.strerror(refusal) in " ".join(out.split())


@pytest.mark.parametrize("refusal", [errno.EACCES, errno.EIO])
@pytest.mark.parametrize("queued", [False, True])
def test_an_unreadable_dataset_file_is_named(
    fake_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refusal: int, queued: bool
) -> None:
    store = RunStore(tmp_path / "runs")
    spec = load_experiment("fnn1", EXPERIMENTS, ["data.dataset=mnist", "train.epochs=1"])
    handle = store.create(spec.name, spec.to_toml()) if queued else None
    unreadable = lambda p: "t10k-images" in p.name  # noqa: E731
    monkeypatch.setattr(Path, "open", _refusing_open(unreadable, refusal))
    with pytest.raises(MnistTuiError, match="t10k-images") as exc:
        run_experiment(spec, store, device="cpu", data_dir=fake_data, download=False, handle=handle)
    assert os.strerror(refusal) in str(exc.value)
    if queued:
        (run,) = store.runs()
        assert run.status == "failed" and "t10k-images" in run.summary["reason"]


@pytest.mark.parametrize("refusal", REFUSALS, ids=errno.errorcode.get)
def test_resume_on_a_read_only_store_names_the_file_it_could_not_write(
    stopped_run: Path,  # noqa: F811
    fake_data: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    refusal: int,
) -> None:
    writes = lambda p: p.parent == stopped_run and p.name.startswith(".claim")  # noqa: E731
    monkeypatch.setattr(Path, "open", _refusing_open(writes, refusal))
    code, out = _cli(
        capsys,
        "resume",
        stopped_run.name,
        "--device",
        "cpu",
        "--runs-dir",
        str(stopped_run.parent.parent),
        "--data-dir",
        str(fake_data),
        "--quiet",
    )
    _one_clear_line(code, out, str(stopped_run / ".claim"))
    assert os.strerror(refusal) in " ".join(out.split())


@pytest.mark.parametrize("kind", ["other model", "not a training checkpoint", "text"])
def test_a_wrong_checkpoint_names_last_pt(
    stopped_run: Path,  # noqa: F811
    fake_data: Path,
    capsys: pytest.CaptureFixture[str],
    kind: str,
) -> None:
    last = stopped_run / "last.pt"
    state = torch.load(last, map_location="cpu", weights_only=True)
    if kind == "other model":
        state["model"] = {"layer.weight": torch.zeros(3, 3)}
        torch.save(state, last)
    elif kind == "not a training checkpoint":
        torch.save({"model": state["model"]}, last)
    else:
        last.write_text("hello\n")
    code, out = _cli(
        capsys,
        "resume",
        stopped_run.name,
        "--device",
        "cpu",
        "--runs-dir",
        str(stopped_run.parent.parent),
        "--data-dir",
        str(fake_data),
        "--quiet",
    )
    _one_clear_line(code, out, "last.pt")
