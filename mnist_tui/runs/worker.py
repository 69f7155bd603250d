"""The worker: the one process that starts runs, one per run store, outliving any terminal.

It holds `<store>/.worker.lock` (an flock, so a dead worker's lock frees itself; the file
also names pid and process start time for `worker status`). It claims queued runs
atomically (runs/claim.py), starts each as a child process that trains from the run's own
spec.toml, reaps children, fails a vanished child's run with the reason from its log, and
exits once the queue has been empty for `idle_exit` seconds (unless `forever`).

The loop, the lock, reconcile and the queue policy live here; where and how a claimed run
trains is the launcher's (runs/launcher.py): child processes on this machine
(runs/local_launcher.py) or Ray tasks (runs/ray_launcher.py), picked from the backend
table (runs/backends.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from mnist_tui.errors import StoreError
from mnist_tui.runs import claim as claims
from mnist_tui.runs import scheduler
from mnist_tui.runs.env_errors import writing
from mnist_tui.runs.io import pid_alive
from mnist_tui.runs.launcher import (
    Finished,
    Launcher,
    LaunchFailed,
    Log,
    Refused,
    Skip,
    Wait,
    WorkerOptions,
    failure_reason,
)
from mnist_tui.runs.queue_watch import QueueWatch
from mnist_tui.runs.record import RunInfo
from mnist_tui.runs.store import RunStore
from mnist_tui.status import RunStatus

__all__ = ["Worker", "WorkerInfo", "WorkerOptions", "ensure_worker", "stop_worker", "worker_info"]

LOCK = ".worker.lock"
LOG = ".worker.log"


@dataclass(frozen=True)
class WorkerInfo:
    """What `<store>/.worker.lock` says about the live worker."""

    pid: int
    start_time: int | None
    host: str
    started: float
    devices: list[str] = field(default_factory=list)
    per_device: int = 1
    threads: int | None = None


# ----------------------------------------------------------------------------- lock


def _lock_path(store: RunStore) -> Path:
    return store.root / LOCK


def worker_info(store: RunStore) -> WorkerInfo | None:
    """The live worker of this store, or None. Liveness is the lock itself, not a pid."""
    path = _lock_path(store)
    try:
        fh = path.open("r", encoding="utf-8")
    except OSError:
        return None
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            pass  # held exclusively: a live worker
        else:
            fcntl.flock(fh, fcntl.LOCK_UN)
            return None
        try:
            raw = json.loads(fh.read() or "{}")
            return WorkerInfo(**{k: raw[k] for k in WorkerInfo.__dataclass_fields__ if k in raw})
        except (ValueError, TypeError):
            return WorkerInfo(pid=0, start_time=None, host="?", started=0.0)


def _take_lock(store: RunStore, options: WorkerOptions, devices: tuple[str, ...]) -> IO[str]:
    store.root.mkdir(parents=True, exist_ok=True)
    fh = _lock_path(store).open("a+", encoding="utf-8")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        live = worker_info(store)
        who = f"pid {live.pid} on {live.host}" if live else "another process"
        raise WorkerRunning(f"a worker ({who}) already serves {store.root}") from None
    me = claims.Holder.me("worker")
    info = WorkerInfo(
        me.pid,
        me.start_time,
        me.host,
        time.time(),
        list(devices),
        options.per_device,
        options.threads,
    )
    fh.seek(0)
    fh.truncate()
    fh.write(json.dumps(asdict(info)))
    fh.flush()
    return fh  # kept open (and locked) for the worker's lifetime


class WorkerRunning(StoreError):
    exit_code = 0  # not a failure: the store is already served


# ----------------------------------------------------------------------------- the loop

LauncherFactory = Callable[[RunStore, WorkerOptions, Log], Launcher]


class Worker:
    """Claims queued runs in queue order and hands each to its launcher to train."""

    def __init__(
        self,
        store: RunStore,
        options: WorkerOptions,
        launcher: LauncherFactory,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.options = options
        self.stopping = False
        self._log = log or (lambda line: print(line, flush=True))
        self.launcher = launcher(store, options, self.log)
        self.watch = QueueWatch(store)  # an idle poll reads no run of the store

    def log(self, message: str) -> None:
        self._log(f"{time.strftime('%Y-%m-%d %H:%M:%S')} worker {os.getpid()}: {message}")

    def run(self) -> int:
        with writing(_lock_path(self.store)):  # read-only or full store: one clear line
            lock = _take_lock(self.store, self.options, self.launcher.devices)
        # restored when it returns: a worker run inside another program (a test, a
        # notebook) must not leave that process deaf to hang-ups
        before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)}
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a closing terminal is no reason to stop
        self.log(f"serving {self.store.root}: {self.launcher.describe()}")
        idle_since = time.monotonic()
        try:
            self.launcher.connect(self._mark)
            # a backend may take SIGTERM for itself (ray.init does); `worker stop` must
            # still stop us cleanly
            signal.signal(signal.SIGTERM, self._on_term)
            self.reconcile()
            while not self.stopping:
                self.reap()
                paused = scheduler.is_paused(self.store)
                started = 0 if paused else self.fill_slots()
                busy = self.launcher.busy()
                # idle: nothing running and nothing it may start (a paused queue waits for
                # `queue resume`, which starts a worker again)
                idle = not busy and not started and (paused or not self.queued())
                if not idle:
                    idle_since = time.monotonic()
                elif not self.options.forever and (
                    time.monotonic() - idle_since >= self.options.idle_exit
                ):
                    why = "queue paused" if paused else "queue empty"
                    self.log(f"{why} for {self.options.idle_exit:g} s: exiting")
                    break
                time.sleep(self.options.poll)
        finally:
            self.launcher.stop_all(self.reap)
            lock.close()
            for sig, handler in before.items():
                if handler is not None:
                    signal.signal(sig, handler)
        return 0

    def _on_term(self, *_: Any) -> None:
        if self.launcher.signal_is_cancel():
            return
        self.stopping = True

    # -- bookkeeping ----------------------------------------------------------------

    def reconcile(self) -> None:
        """Runs left running by a dead process become interrupted (resumable), with why."""
        for info in self.store.runs(stored=(RunStatus.RUNNING, RunStatus.QUEUED)):
            status = info.stored_status
            if status not in (RunStatus.RUNNING, RunStatus.QUEUED):
                continue
            holder = claims.holder_of(info.path)
            if holder is not None and holder.alive():
                continue
            broken = claims.break_stale(info.path)
            if status == RunStatus.RUNNING and info.status == RunStatus.INTERRUPTED:
                who = broken.describe() if broken else f"pid {info.summary.get('pid')}"
                self._mark(
                    info,
                    RunStatus.INTERRUPTED,
                    f"its process ({who}) vanished before the run ended; "
                    f"continue it with: mnist-tui resume {info.id}",
                )
        self.launcher.reconcile(self._mark)  # runs whose trainer was on another host

    def _mark(self, info: RunInfo, status: str, reason: str) -> None:
        fresh = self.store.read_run(info.experiment, info.id)
        if fresh is not None and fresh.stored_status in (
            RunStatus.RUNNING,
            RunStatus.QUEUED,
        ):
            with contextlib.suppress(StoreError):
                self.store.handle(fresh).update(status=status, reason=reason)
            self.log(f"{info.experiment}/{info.id} {status}: {reason}")

    def fill_slots(self) -> int:
        """Start queued runs in queue order while the launcher has room for them."""
        if not self.launcher.capacity():
            return 0
        started = 0
        for info in self.queued():
            if self.launcher.holds(info.id):
                continue
            placement = self.launcher.place(info)
            if isinstance(placement, Wait):
                break
            if isinstance(placement, Skip):
                continue
            if isinstance(placement, Refused):
                self._mark(info, RunStatus.FAILED, placement.reason)
                continue
            if self.start(info, placement):
                started += 1
        return started

    def queued(self) -> list[RunInfo]:
        return scheduler.queue_order(self.store, self.watch.active())

    def start(self, info: RunInfo, placement: Any) -> bool:
        claimed = claims.claim_queued(self.store, info, "worker")
        if claimed is None:
            return False
        fresh, holder = claimed
        try:
            self.launcher.launch(fresh, placement, holder)
        except LaunchFailed as exc:
            claims.release(info.path, holder, ended=exc.ended)
            self._mark(fresh, RunStatus.FAILED, exc.reason)
            return False
        return True

    def reap(self) -> None:
        for done in self.launcher.poll_finished():
            self.finish(done)
        self.launcher.cancel()

    def finish(self, done: Finished) -> None:
        """A run whose trainer ended: one still open is failed or interrupted, with why."""
        info = done.info
        fresh = self.store.read_run(info.experiment, info.id)
        status = fresh.stored_status if fresh else None
        if fresh is not None and status in (RunStatus.RUNNING, RunStatus.QUEUED):
            reason, status = done.reason, done.status
            if done.code is not None:
                reason = failure_reason(info.path / "log.txt", done.code)
                status = RunStatus.FAILED if done.code != 0 else RunStatus.INTERRUPTED
            self._mark(fresh, status, reason)
        if done.release is not None:
            claims.release(info.path, done.release, ended=f"{status} ({done.ended})")
        with contextlib.suppress(FileNotFoundError):
            (info.path / scheduler.CANCEL_FLAG).unlink()
        self.log(f"{info.experiment}/{info.id} ended {status} ({done.ended})")


# ----------------------------------------------------------------------------- control


def ensure_worker(store: RunStore, options: WorkerOptions | None = None) -> WorkerInfo | None:
    """Start a detached worker for this store unless a live one holds the lock.

    Detached: a new session, stdin from /dev/null, output appended to <store>/.worker.log,
    so it outlives the terminal, the console and the SSH session that asked for it.
    Returns the live worker's info when one was already running, else None.
    """
    live = worker_info(store)
    if live is not None:
        return live
    store.root.mkdir(parents=True, exist_ok=True)
    opts = options or WorkerOptions()
    cmd = [sys.executable, "-m", "mnist_tui", "worker", "--runs-dir", str(store.root)]
    cmd += opts.to_args()
    with (store.root / LOG).open("ab") as log:
        subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    return None


def stop_worker(store: RunStore, timeout: float = 60.0) -> WorkerInfo | None:
    """SIGTERM the live worker (its runs end as killed, resumable) and wait for it."""
    live = worker_info(store)
    if live is None:
        return None
    if live.pid <= 0 or not pid_alive(live.pid, live.start_time):
        raise StoreError(f"the worker lock of {store.root} is held, but not by pid {live.pid}")
    os.kill(live.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and worker_info(store) is not None:
        time.sleep(0.2)
    return live
