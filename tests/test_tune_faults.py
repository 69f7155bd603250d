"""`tune` on a damaged or wrong-shaped Optuna journal names the journal and what to do and
touches nothing; Ctrl-C of `tune --parallel` prints one line, as `run` does."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mnist_tui.errors import MnistTuiError
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
TUNE = [sys.executable, "-m", "mnist_tui", "tune", "small"]
CREATE = b'{"op_code":0,"worker_id":"w-1","study_name":"s","directions":[1]}\n'
TRIAL = b'{"op_code":4,"worker_id":"w-1","study_id":0,"datetime_start":null}\n'
JOURNALS = {
    "not utf-8": b"\xff\xfe\x00garbage\x80\n",
    "not json": b"hello world\nthis is not a journal\n",
    "json, not an object": b"[1, 2, 3]\n",
    "unknown operation": b'{"op_code": 99, "worker_id": "x"}\n',
    "operation without its fields": b'{"op_code": 0}\n',
    "good line, then garbage": CREATE + b"\x00\x01\x02 junk\n" + CREATE,
    "distribution not JSON": CREATE + TRIAL + b'{"op_code":5,"worker_id":"w-1","trial_id":0,'
    b'"param_name":"x","param_value_internal":0.5,"distribution":"garbage"}\n',
    "unknown trial state": CREATE + TRIAL + b'{"op_code":6,"worker_id":"w-1","trial_id":0,'
    b'"state":42,"values":null,"datetime_complete":null}\n',
    "last line cut short": CREATE + b'{"op_code":0,"worker_id":"w-2","study',
}


def _experiments(tmp_path: Path) -> Path:
    exps = tmp_path / "exps"
    if not exps.exists():
        shutil.copytree(EXPERIMENTS, exps)
        (exps / "small.toml").write_text(SMALL)
    return exps


def _tune(tmp_path: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    exps = _experiments(tmp_path)
    return subprocess.run(
        [*TUNE, "--experiments-dir", str(exps), "--runs-dir", str(tmp_path / "runs"), *args],
        env={**os.environ, "COLUMNS": "300"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


CASES = [(name, "store") for name in JOURNALS] + [
    ("not utf-8", "--storage"),
    ("unknown operation", "--storage"),
    ("distribution not JSON", "--storage"),
]


@pytest.mark.parametrize(("name", "where"), CASES, ids=[f"{n}-{w}" for n, w in CASES])
def test_a_damaged_journal_is_named_and_left_alone(tmp_path: Path, name: str, where: str) -> None:
    content = JOURNALS[name]
    runs = tmp_path / "runs"
    runs.mkdir()
    journal = runs / "tune.journal" if where == "store" else tmp_path / "mine.journal"
    journal.write_bytes(content)
    _experiments(tmp_path)
    before = _snapshot(tmp_path)
    extra = ["--storage", str(journal)] if where == "--storage" else []
    out = _tune(tmp_path, "--trials", "1", *extra)
    assert out.returncode == 2, out.stdout + out.stderr
    message = " ".join(out.stderr.split())
    assert "Traceback" not in out.stderr and "Should not reach" not in message
    assert str(journal) in message and "Move it aside" in message, message
    assert _snapshot(tmp_path) == before  # no run, no best experiment, journal as it was


def test_reading_searches_from_a_damaged_journal_is_a_clear_error(tmp_path: Path) -> None:
    from mnist_tui.studies.tune import read_studies

    store = RunStore(tmp_path)
    tmp_path.mkdir(exist_ok=True)
    for content in JOURNALS.values():
        (tmp_path / "tune.journal").write_bytes(content)
        with pytest.raises(MnistTuiError, match=r"tune\.journal: not an Optuna journal"):
            read_studies(store)
    (tmp_path / "tune.journal").write_bytes(CREATE)
    assert [s.name for s in read_studies(store)] == ["s"]


@pytest.fixture
def paused(tmp_path: Path) -> Iterator[RunStore]:
    """A store whose queue is paused: trials stay queued, in flight, and nothing trains."""
    store = RunStore(tmp_path / "runs")
    subprocess.run(
        [sys.executable, "-m", "mnist_tui", "queue", "pause", "--runs-dir", str(store.root)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    yield store
    live = worker_info(store)
    if live is not None:
        try:
            stop_worker(store, timeout=60)
        except Exception:
            os.kill(live.pid, signal.SIGKILL)


@pytest.mark.parametrize("parallel", [2, 3])
def test_ctrl_c_of_tune_parallel_prints_one_line(
    tmp_path: Path, paused: RunStore, parallel: int
) -> None:
    exps, runs = _experiments(tmp_path), str(paused.root)
    proc = subprocess.Popen(
        [*TUNE, "--parallel", str(parallel), "--experiments-dir", str(exps), "--runs-dir", runs],
        env={**os.environ, "COLUMNS": "300"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while len(paused.runs()) < parallel:
            assert time.monotonic() < deadline, "the trials were never queued"
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.3)
        time.sleep(1)  # each trial's thread now follows its queued run
        proc.send_signal(signal.SIGINT)
        out, errs = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, out + errs
    lines = [line for line in errs.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("interrupted"), errs
    assert "Traceback" not in out + errs
    # the trials in flight were queued, never started: cancelled, they leave the queue
    assert [r for r in paused.runs() if r.status in ("queued", "running")] == []
    from mnist_tui.runs.manage import trash_dir

    assert len([p for p in trash_dir(paused).glob("*/*") if p.is_dir()]) == parallel
