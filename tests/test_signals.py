"""`queue rm` and the console's stop signal only a process that is verifiably the run's
trainer. Foreign processes - started here, never signalled - are named in claims with and
without their start time, from this host and another, with other command lines."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import pytest

from mnist_tui.runs import claim as claims
from mnist_tui.runs import scheduler
from mnist_tui.runs.io import process_start_time
from mnist_tui.runs.record import CANCEL_FLAG
from mnist_tui.runs.store import RunStore
from mnist_tui.runs.trainer_check import names_run, verify_trainer

from .test_cli import cli
from .test_store import write_run

HERE = socket.gethostname()


@pytest.fixture
def spawn() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Start processes for a test; each is ended (by its own pid) afterwards."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def start(procs: list[subprocess.Popen[bytes]], *argv: str) -> subprocess.Popen[bytes]:
    p = subprocess.Popen(list(argv))
    procs.append(p)
    for _ in range(100):  # until its command line is its own (exec done)
        cmd = Path(f"/proc/{p.pid}/cmdline").read_bytes().split(b"\0")
        if cmd and cmd[0].decode().endswith(Path(argv[0]).name):
            break
        time.sleep(0.01)
    return p


def sleeper(procs: list[subprocess.Popen[bytes]], *extra: str) -> subprocess.Popen[bytes]:
    return start(procs, sys.executable, "-c", "import time; time.sleep(120)", *extra)


def write_claim(run_dir: Path, pid: int, start_time: int | None, *, host: str = HERE,
                purpose: str = "train") -> None:  # fmt: skip
    holder = claims.Holder(pid, start_time, host, purpose, time.time(), "")
    (run_dir / claims.CLAIM).write_text(json.dumps(asdict(holder)), encoding="utf-8")


def make_run(root: Path, status: str, run_id: str = "5160a001") -> Path:
    return write_run(root, "fnn1", "", run_id=run_id, status=status)


def assert_alive(p: subprocess.Popen[bytes]) -> None:
    time.sleep(0.2)  # a signal would have landed by now
    assert p.poll() is None, f"pid {p.pid} was signalled (exit {p.returncode})"


# each: how the claim names a live process that is not this run's trainer
FOREIGN = {
    "sleep_with_start_time": lambda procs, run: (start(procs, "sleep", "120"), True, HERE),
    "sleep_without_start_time": lambda procs, run: (start(procs, "sleep", "120"), False, HERE),
    "names_run_not_the_tool": lambda procs, run: (sleeper(procs, str(run)), True, HERE),
    "the_tool_another_run": lambda procs, run: (
        sleeper(procs, "mnist_tui", "train-run", str(run.parent / "5160affff")),
        True,
        HERE,
    ),
    "trainer_like_on_another_host": lambda procs, run: (
        sleeper(procs, "mnist_tui", "train-run", str(run)),
        True,
        "elsewhere.example",
    ),
}


@pytest.mark.parametrize("case", sorted(FOREIGN))
@pytest.mark.parametrize("status", ["running", "queued"])
def test_queue_rm_never_signals_a_foreign_process(
    case: str,
    status: str,
    tmp_path: Path,
    spawn: list[subprocess.Popen[bytes]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = make_run(tmp_path, status)
    proc, with_start, host = FOREIGN[case](spawn, run)
    write_claim(run, proc.pid, process_start_time(proc.pid) if with_start else None, host=host)
    code, out, err = cli(capsys, "queue", "rm", run.name, "--runs-dir", str(tmp_path))
    out = " ".join(out.split())  # as one line, however the terminal wrapped it
    assert code == 0, err
    assert_alive(proc)
    assert (run / CANCEL_FLAG).exists()  # asked through the flag instead
    assert "cancel flag" in out and f"pid {proc.pid}" in out  # says who holds it


def test_a_pid_whose_start_time_differs_is_another_process(
    tmp_path: Path, spawn: list[subprocess.Popen[bytes]], capsys: pytest.CaptureFixture[str]
) -> None:
    run = make_run(tmp_path, "running")
    proc = sleeper(spawn, "mnist_tui", "train-run", str(run))
    for start_time in (process_start_time(proc.pid) - 1, 0, 10**12):  # type: ignore[operator]
        write_claim(run, proc.pid, start_time)
        code, out, _ = cli(capsys, "queue", "rm", run.name, "--runs-dir", str(tmp_path))
        assert code == 0 and "start time differs" in " ".join(out.split())
        assert_alive(proc)


def test_a_process_of_another_user_is_not_signalled(
    tmp_path: Path, spawn: list[subprocess.Popen[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = make_run(tmp_path, "running")
    proc = sleeper(spawn, "mnist_tui", "train-run", str(run))
    write_claim(run, proc.pid, process_start_time(proc.pid))
    monkeypatch.setattr(os, "getuid", lambda: os.geteuid() + 4242)  # as seen by another user
    said = scheduler.cancel(RunStore(tmp_path), RunStore(tmp_path).resolve(run.name))
    assert "another user" in said
    assert_alive(proc)


def test_a_terminal_run_named_only_in_its_summary_is_asked_by_flag(
    tmp_path: Path, spawn: list[subprocess.Popen[bytes]]
) -> None:
    run = make_run(tmp_path, "running")
    proc = start(spawn, "sleep", "120")
    for start_time in (process_start_time(proc.pid), None):
        summary = json.loads((run / "summary.json").read_text())
        summary.update(pid=proc.pid, host=HERE, pid_start=start_time)
        (run / "summary.json").write_text(json.dumps(summary))
        store = RunStore(tmp_path)
        said = scheduler.cancel(store, store.resolve(run.name))
        assert "cancel flag" in said and f"pid {proc.pid}" in said
        assert_alive(proc)


def test_the_verified_trainer_is_signalled(
    tmp_path: Path, spawn: list[subprocess.Popen[bytes]], capsys: pytest.CaptureFixture[str]
) -> None:
    run = make_run(tmp_path, "running")
    # as a worker starts it: this tool's train-run with the run's directory
    proc = sleeper(spawn, "mnist_tui", "train-run", str(run), "--device", "cpu")
    write_claim(run, proc.pid, process_start_time(proc.pid))
    code, out, _ = cli(capsys, "queue", "rm", run.name, "--runs-dir", str(tmp_path))
    assert code == 0 and "asked to stop" in out and "cancel flag" not in out
    assert proc.wait(timeout=10) != 0


def test_names_run_wants_the_tool_and_this_run() -> None:
    run = Path("/store/fnn1/abcd1234")
    yes = [
        ["python", "-m", "mnist_tui", "train-run", "/store/fnn1/abcd1234"],
        ["python", "-m", "mnist_tui", "train-run", "runs/fnn1/abcd1234/"],
        ["/venv/bin/python", "/venv/bin/mnist-tui", "resume", "abcd1234"],
    ]
    no = [
        ["sleep", "abcd1234"],
        ["python", "-m", "mnist_tui", "train-run", "/store/fnn2/abcd1234"],
        ["python", "-m", "mnist_tui", "train-run", "/store/fnn1/abcd12345"],
        ["python", "-m", "mnist_tui", "resume", "abcd"],
        ["mnist-tui", "worker"],
    ]
    assert all(names_run(a, run) for a in yes)
    assert not any(names_run(a, run) for a in no)
    assert not verify_trainer(None, run).trainer


def test_queue_ls_says_why_a_held_queued_run_waits_and_how_to_release_it(
    tmp_path: Path, spawn: list[subprocess.Popen[bytes]], capsys: pytest.CaptureFixture[str]
) -> None:
    runs = [make_run(tmp_path, "queued", f"5160a00{i}") for i in range(3)]
    held = {runs[0]: start(spawn, "sleep", "120"), runs[1]: sleeper(spawn, str(runs[1]))}
    for run, proc in held.items():
        write_claim(run, proc.pid, process_start_time(proc.pid))
    code, out, _ = cli(capsys, "queue", "ls", "--runs-dir", str(tmp_path))
    assert code == 0
    for run, proc in held.items():
        line = next(x for x in out.splitlines() if x.startswith(f"fnn1/{run.name}"))
        assert f"pid {proc.pid}" in line and "not a trainer" in line
        assert str(run / claims.CLAIM) in out.replace("\n", "")
    assert f"fnn1/{runs[2].name} is not started" not in out
    code, out, _ = cli(capsys, "queue", "ls", "--json", "--runs-dir", str(tmp_path))
    rows = {r["run"]: r for r in json.loads(out)["runs"]}
    assert "not a trainer" in rows[runs[0].name]["held"]
    assert rows[runs[2].name]["held"] is None
    for proc in held.values():
        assert_alive(proc)
