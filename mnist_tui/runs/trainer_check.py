"""Whether a process is verifiably the trainer of a run, before anything signals it.

A claim file (runs/claim.py) is plain JSON in a directory anyone with write access to the
store can edit, and a pid is reused once its process ends. A signal goes only to a
process that proves to be this run's trainer on every count this host can check:

- the claim names this host, and a process start time;
- the process with that pid is alive, started at that time (not a later one that reused
  the pid), and is no zombie;
- it belongs to this user;
- its command line (/proc/<pid>/cmdline) is this tool's and names this run: its
  directory (`train-run <experiment>/<id>`, as a worker starts it) or its id.

Anything short of that gets the run's cancel flag only, which its trainer polls, and a
sentence saying who holds the run. The sentences hold text from the claim file: the
faces show them through views.visible like any stored text.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from mnist_tui.runs.claim import CLAIM, Holder
from mnist_tui.runs.io import pid_alive, process_start_time

TOOL_NAMES = ("mnist_tui", "mnist-tui")


@dataclass(frozen=True)
class Verdict:
    trainer: bool  # safe to signal
    why: str  # why not (empty when it is)


def command_line(pid: int) -> list[str] | None:
    """The process's arguments, or None where they cannot be read."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]


def _owner(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def names_run(argv: list[str], run_dir: Path) -> bool:
    """Whether a command line is this tool's and names this run (directory or id)."""
    run_id, experiment = run_dir.name, run_dir.parent.name
    tool = any(Path(a).name in TOOL_NAMES or a in TOOL_NAMES for a in argv)
    for arg in argv[1:]:
        p = Path(arg.rstrip("/"))
        if arg == run_id or (p.name == run_id and p.parent.name == experiment):
            return tool
    return False


def shown_command(argv: list[str] | None, limit: int = 80) -> str:
    if not argv:
        return "?"
    text = " ".join(argv)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def verify_trainer(holder: Holder | None, run_dir: Path) -> Verdict:
    """Whether `holder` is verifiably the process that trains the run in `run_dir`."""
    if holder is None:
        return Verdict(False, "no claim names its trainer")
    if holder.host != socket.gethostname():
        return Verdict(False, f"it runs on {holder.host}, not on this host")
    pid = holder.pid
    if not isinstance(pid, int) or pid <= 0:
        return Verdict(False, f"its claim names no valid pid ({pid!r})")
    if not pid_alive(pid):
        return Verdict(False, f"pid {pid} is not running")
    if holder.start_time is None:
        return Verdict(False, f"its claim gives no start time for pid {pid}")
    if process_start_time(pid) != holder.start_time:
        return Verdict(False, f"pid {pid} is a different process now (its start time differs)")
    owner = _owner(pid)
    if owner is None or owner != os.getuid():
        return Verdict(False, f"pid {pid} belongs to another user")
    argv = command_line(pid)
    if argv is None or not names_run(argv, run_dir):
        return Verdict(False, f"pid {pid} ({shown_command(argv)}) is not a trainer of this run")
    return Verdict(True, "")


def held_note(holder: Holder, run_dir: Path) -> str | None:
    """For a queued run whose claim names a live process that is not its trainer: why no
    worker starts it, and how to release it. None when nothing is amiss."""
    if holder.host != socket.gethostname() or not holder.alive():
        return None  # another host's process, or a dead one (broken as stale)
    # this tool, for a moment: a worker about to start it, a removal under way
    if holder.purpose in ("worker", "cancel", "delete") and names_tool(command_line(holder.pid)):
        return None
    verdict = verify_trainer(holder, run_dir)
    if verdict.trainer:
        return None
    return (
        f"held by {holder.describe()}: {verdict.why}; no worker starts it while "
        f"that process runs: stop it, or remove {run_dir / CLAIM} to release the run"
    )


def names_tool(argv: list[str] | None) -> bool:
    return bool(argv) and any(Path(a).name in TOOL_NAMES or a in TOOL_NAMES for a in argv or ())
