"""What the worker loop asks of a backend: the launcher interface, and what both sides share.

The worker (runs/worker.py) owns the lock, the claims, reconcile and the queue policy; a
launcher only says where a queued run could go, starts a claimed run there, reports runs
that ended, enforces cancels and stops everything on exit. A backend is a launcher plus
the checks of its options (runs/backends.py lists them): local child processes
(runs/local_launcher.py) or Ray tasks (runs/ray_launcher.py).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mnist_tui.runs import claim as claims
from mnist_tui.runs.record import RunInfo
from mnist_tui.runs.store import RunStore
from mnist_tui.status import RunStatus

DEFAULT_IDLE_EXIT = 60.0
PR_SET_PDEATHSIG = 1

Log = Callable[[str], None]
Mark = Callable[[RunInfo, str, str], None]  # (run, status, reason): end an open run


@dataclass(frozen=True)
class WorkerOptions:
    devices: tuple[str, ...] = ()  # GPU ids, or ("cpu",); empty = detect
    per_device: int = 1
    threads: int | None = None  # CPU threads per run; None = cores / CPU slots
    idle_exit: float = DEFAULT_IDLE_EXIT
    forever: bool = False
    poll: float = 0.5
    data_dir: Path | None = None
    backend: str = "local"  # a name in runs/backends.py: "local" or "ray"
    address: str | None = None  # the Ray cluster (None: start one on this machine)

    def to_args(self) -> list[str]:
        """The `mnist-tui worker` options that recreate these settings."""
        args = ["--per-device", str(self.per_device), "--idle-exit", str(self.idle_exit)]
        if self.devices:
            args += ["--gpus", ",".join(self.devices)]
        if self.threads:
            args += ["--threads", str(self.threads)]
        if self.forever:
            args.append("--forever")
        if self.data_dir is not None:
            args += ["--data-dir", str(self.data_dir)]
        if self.backend != "local":
            args += ["--backend", self.backend]
        if self.address:
            args += ["--address", self.address]
        return args


# -- what `place` answers -------------------------------------------------------------


class Wait:
    """No room now: stop reading the queue this poll (nothing behind it overtakes)."""


class Skip:
    """Not this run now (its place is busy), but runs behind it may go."""


WAIT = Wait()
SKIP = Skip()


@dataclass(frozen=True)
class Refused:
    """This run can never start here: it fails with the reason."""

    reason: str


class LaunchFailed(Exception):
    """Starting a claimed run failed: `ended` goes to the claim history, `reason` to the run."""

    def __init__(self, ended: str, reason: str) -> None:
        super().__init__(reason)
        self.ended = ended
        self.reason = reason


@dataclass
class Finished:
    """A run whose process or task ended, as the launcher saw it end."""

    info: RunInfo
    ended: str  # how it ended, for the claim history and the log: "exit code 0"
    code: int | None = None  # the trainer's exit code, when it is known
    release: claims.Holder | None = None  # the claim to give back (None: it is not ours)
    # what a run still open (running/queued) becomes when no exit code explains it
    status: RunStatus = RunStatus.FAILED
    reason: str = ""


class Launcher(Protocol):
    """One backend's way of running claimed runs; the worker loop drives it."""

    @property
    def devices(self) -> tuple[str, ...]:
        """Where it trains, as the lock file names it for `worker status`."""
        ...

    def describe(self) -> str:
        """Where this worker trains, for its log."""
        ...

    def connect(self, mark: Mark) -> None:
        """Once the lock is held, before the first claim (a cluster is joined here);
        `mark` ends a run this backend loses later (a cluster head that dies)."""
        ...

    def reconcile(self, mark: Mark) -> None:
        """Runs this backend left running elsewhere and that are gone: mark them."""
        ...

    def capacity(self) -> bool:
        """Whether anything may start this poll."""
        ...

    def holds(self, run_id: str) -> bool:
        """Whether this run is already in the launcher's hands (claimed, not started)."""
        ...

    def place(self, info: RunInfo) -> Any:
        """Where this queued run would go: a placement for `launch`, WAIT, SKIP or Refused."""
        ...

    def launch(self, info: RunInfo, placement: Any, holder: claims.Holder) -> None:
        """Start the claimed run; raise LaunchFailed when it could not start."""
        ...

    def busy(self) -> bool:
        """Whether any run it started is still going."""
        ...

    def poll_finished(self) -> list[Finished]:
        """The runs that ended since the last poll (no longer held by the launcher)."""
        ...

    def cancel(self) -> None:
        """Enforce cancels of runs still going (a run stops by itself on its flag first)."""
        ...

    def signal_is_cancel(self) -> bool:
        """Whether a SIGTERM just received was a cancel of one run, not a stop."""
        ...

    def stop_all(self, reap: Callable[[], None]) -> None:
        """On SIGTERM or exit: ask every run to stop and wait, calling `reap` meanwhile."""
        ...


@dataclass(frozen=True)
class Backend:
    """A row of the backend table: how to make its launcher and check its options."""

    name: str
    make: Callable[[RunStore, WorkerOptions, Log], Launcher]
    check: Callable[[], None]  # the backend can be used here (its package is installed)
    takes_address: bool = False


# -- what every launcher's trainer process shares -------------------------------------


def die_with_parent() -> None:
    """The child is killed if the worker dies, so no run trains unsupervised."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def failure_reason(log_path: Path, code: int | None) -> str:
    """The real error from the end of a run's log (e.g. the missing-dataset message)."""
    lines: list[str] = []
    with contextlib.suppress(OSError), log_path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - 8192))
        lines = fh.read().decode("utf-8", "replace").splitlines()
    for line in reversed(lines):
        text = line.strip()
        if text.lower().startswith("error:") or "Error:" in text or "error:" in text:
            return text.removeprefix("error:").strip()
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"the run's process was killed by {signal.Signals(-code).name}"
    tail = next((t.strip() for t in reversed(lines) if t.strip()), "")
    return f"the run's process ended with exit code {code}" + (f": {tail}" if tail else "")
