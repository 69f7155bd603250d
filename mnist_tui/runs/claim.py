"""Taking a run: one atomic claim per attempt, so two processes never train into one run.

Whoever starts or resumes a run first creates `<run>/.claim` (a hard link of a written
record, which fails like `O_EXCL` when the name exists): the file system lets exactly one
creator win, also between two hosts on a shared store. The
claim names its holder (pid, the process's start time, host), so a later reader can tell a
live holder from a dead one even after the pid was reused. When the attempt ends the claim
is appended to `<run>/claims.jsonl` (the run's history of attempts) and removed; a claim
whose holder died is broken by renaming it away, which again only one process can do.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnist_tui.errors import StoreError
from mnist_tui.runs.io import pid_alive, process_start_time
from mnist_tui.status import RunStatus

if TYPE_CHECKING:
    from mnist_tui.runs.record import RunInfo
    from mnist_tui.runs.store import RunStore

CLAIM = ".claim"
HISTORY = "claims.jsonl"


@dataclass(frozen=True)
class Holder:
    """Who holds a claim, and for what."""

    pid: int
    start_time: int | None
    host: str
    purpose: str  # "worker", "resume", "run"
    claimed_at: float
    command: str = ""

    @classmethod
    def me(cls, purpose: str, command: str = "") -> Holder:
        pid = os.getpid()
        return cls(
            pid, process_start_time(pid), socket.gethostname(), purpose, time.time(), command
        )

    def alive(self) -> bool:
        """Alive, as far as this host can tell: a holder on another host counts as alive."""
        if self.host != socket.gethostname():
            return True
        return pid_alive(self.pid, self.start_time)

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.claimed_at))
        return f"{self.purpose} pid {self.pid} on {self.host} (since {since})"


class ClaimedError(StoreError):
    """Someone else holds the run."""

    def __init__(self, run: Path, holder: Holder | None) -> None:
        self.holder = holder
        who = holder.describe() if holder else "another process"
        super().__init__(f"run {run.name} is held by {who}; it cannot be taken twice")


def _read_holder(path: Path) -> Holder | None:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return Holder(**{k: raw[k] for k in Holder.__dataclass_fields__ if k in raw})
    except (OSError, ValueError, TypeError, KeyError):
        return None


def holder_of(run: Path) -> Holder | None:
    """The current holder of a run, or None when nobody holds it."""
    return _read_holder(run / CLAIM)


def _write_new(path: Path, holder: Holder) -> bool:
    """Create `path` with the holder's record, only if it does not exist; False if it does.

    The record is written to a private file first and hard-linked into place: `link`
    fails when the name exists (like O_EXCL), and a reader never sees an empty claim."""
    tmp = path.with_name(f".claim.{os.getpid()}.{time.time_ns()}.new")
    try:
        with tmp.open("x", encoding="utf-8") as fh:
            json.dump(asdict(holder), fh)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    except OSError as exc:
        from mnist_tui.runs.env_errors import describe

        # name the file: "cannot claim <run>" left a read-only store's user guessing
        raise StoreError(f"cannot claim {path.parent}: {describe(exc, path, 'write')}") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def break_stale(run: Path) -> Holder | None:
    """Remove a claim whose holder is dead; returns that holder (None if none was broken)."""
    path = run / CLAIM
    holder = _read_holder(path)
    if not path.exists() or (holder is not None and holder.alive()):
        return None
    if holder is None:
        # unreadable: a holder killed between create and write, or a foreign file; only
        # break it once it is old enough that no creator can still be writing it
        with contextlib.suppress(OSError):
            if time.time() - path.stat().st_mtime < 5:
                return None
    aside = run / f".claim.stale.{os.getpid()}.{time.time_ns()}"
    try:
        os.rename(path, aside)  # only one breaker wins the rename
    except OSError:
        return None
    moved = _read_holder(aside)
    if moved != holder:
        # between our look and our rename another process broke the dead claim and took
        # the run: put its live claim back (link fails if yet another one is there)
        with contextlib.suppress(OSError):
            os.link(aside, path)
        with contextlib.suppress(OSError):
            aside.unlink()
        return None
    _append_history(run, holder, ended="holder vanished")
    with contextlib.suppress(OSError):
        aside.unlink()
    return holder


def claim(run: Path, purpose: str, command: str = "") -> Holder:
    """Take the run for this process, or raise ClaimedError naming who holds it."""
    me = Holder.me(purpose, command)
    if _write_new(run / CLAIM, me):
        return me
    break_stale(run)
    if _write_new(run / CLAIM, me):
        return me
    raise ClaimedError(run, holder_of(run))


def claim_queued(store: RunStore, info: RunInfo, purpose: str) -> tuple[RunInfo, Holder] | None:
    """Take a queued run to start it: the claim, then the run read again under it.

    None when another process took it first, or when it stopped being queued between the
    queue listing and the claim (cancelled, moved): then the claim is given back at once.
    """
    try:
        holder = claim(info.path, purpose)
    except ClaimedError:
        return None  # another worker or a console took it first
    fresh = store.read_run(info.experiment, info.id)
    if fresh is None or fresh.stored_status != RunStatus.QUEUED:
        release(info.path, holder, ended="no longer queued")
        return None
    return fresh, holder


def hand_over(run: Path, holder: Holder, pid: int, purpose: str, command: str = "") -> Holder:
    """Pass a claim to a child process that will train the run (rewritten in place).

    The rename replaces the file atomically, so the claim never disappears in between.
    """
    new = Holder(pid, process_start_time(pid), holder.host, purpose, time.time(), command)
    tmp = run / f".claim.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(asdict(new)), encoding="utf-8")
    os.replace(tmp, run / CLAIM)
    return new


def release(run: Path, holder: Holder, ended: str) -> None:
    """End this attempt: record it in the run's history and drop the claim if still ours."""
    current = holder_of(run)
    if current is not None and (current.pid, current.start_time) != (
        holder.pid,
        holder.start_time,
    ):
        return  # someone broke our claim and took the run; it is theirs now
    _append_history(run, holder, ended=ended)
    with contextlib.suppress(FileNotFoundError):
        (run / CLAIM).unlink()


def _append_history(run: Path, holder: Holder | None, ended: str) -> None:
    record: dict[str, Any] = asdict(holder) if holder else {"pid": None}
    record.update(ended=ended, released_at=time.time())
    with contextlib.suppress(OSError), (run / HISTORY).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")


def history(run: Path) -> list[dict[str, Any]]:
    """Every finished attempt on this run, oldest first."""
    out: list[dict[str, Any]] = []
    with contextlib.suppress(OSError):
        for line in (run / HISTORY).read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError):
                row = json.loads(line)
                if isinstance(row, dict):
                    out.append(row)
    return out
