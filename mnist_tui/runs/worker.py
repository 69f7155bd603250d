"""The worker: the one process that starts runs, one per run store, outliving any terminal.

It holds `<store>/.worker.lock` (an flock, so a dead worker's lock frees itself; the file
also names pid and process start time for `worker status`). It claims queued runs
atomically (runs/claim.py), starts each as a child process that trains from the run's own
spec.toml, reaps children, fails a vanished child's run with the reason from its log, and
exits once the queue has been empty for `idle_exit` seconds (unless `forever`).

Device slots: each device (a GPU id, or the CPU) runs up to `per_device` runs at once. A
child sees only its GPU (`CUDA_VISIBLE_DEVICES=<id>`); on the CPU the cores are split
between the slots so concurrent runs never oversubscribe them.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from mnist_tui.errors import StoreError
from mnist_tui.runs import admission, scheduler
from mnist_tui.runs import claim as claims
from mnist_tui.runs.env_errors import writing
from mnist_tui.runs.io import pid_alive
from mnist_tui.runs.store import RunInfo, RunStore

LOCK = ".worker.lock"
LOG = ".worker.log"
DEFAULT_IDLE_EXIT = 60.0
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class WorkerOptions:
    devices: tuple[str, ...] = ()  # GPU ids, or ("cpu",); empty = detect
    per_device: int = 1
    threads: int | None = None  # CPU threads per run; None = cores / CPU slots
    idle_exit: float = DEFAULT_IDLE_EXIT
    forever: bool = False
    poll: float = 0.5
    data_dir: Path | None = None
    backend: str = "local"  # "local": child processes here; "ray": tasks on a Ray cluster
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


def detect_devices() -> tuple[str, ...]:
    """GPU ids from CUDA_VISIBLE_DEVICES, else from nvidia-smi, else the CPU.

    Torch is not imported for this: the worker stays a small process.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = tuple(x.strip() for x in visible.split(",") if x.strip() and x.strip() != "-1")
        return ids or ("cpu",)
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ("cpu",)
    ids = tuple(line.strip() for line in out.stdout.splitlines() if line.strip().isdigit())
    return ids if out.returncode == 0 and ids else ("cpu",)


def cpu_threads_per_run(cpu_slots: int, threads: int | None = None) -> int:
    """Cores split between concurrent CPU runs: 2 cores and 2 runs give 1 thread each."""
    if threads:
        return max(1, threads)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // max(1, cpu_slots))


@dataclass
class Slot:
    device: str  # "cpu" or a GPU id
    index: int
    run: RunInfo | None = None
    child: subprocess.Popen[bytes] | None = None
    holder: claims.Holder | None = None
    started: float = 0.0

    @property
    def label(self) -> str:
        return "cpu" if self.device == "cpu" else f"cuda:{self.device}"


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


class Worker:
    """Claims queued runs and trains each in a child process, slot by slot."""

    def __init__(
        self,
        store: RunStore,
        options: WorkerOptions,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.options = options
        self.devices = options.devices or detect_devices()
        self.slots = [
            Slot(device, i) for device in self.devices for i in range(max(1, options.per_device))
        ]
        cpu_slots = sum(1 for s in self.slots if s.device == "cpu")
        self.cpu_threads = cpu_threads_per_run(cpu_slots, options.threads)
        self.stopping = False
        self._log = log or (lambda line: print(line, flush=True))

    def log(self, message: str) -> None:
        self._log(f"{time.strftime('%Y-%m-%d %H:%M:%S')} worker {os.getpid()}: {message}")

    def run(self) -> int:
        with writing(_lock_path(self.store)):  # read-only or full store: one clear line
            lock = _take_lock(self.store, self.options, self.devices)
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a closing terminal is no reason to stop
        self.log(f"serving {self.store.root}: {self.describe()}")
        idle_since = time.monotonic()
        try:
            self.prepare()
            self.reconcile()
            while not self.stopping:
                self.reap()
                paused = scheduler.is_paused(self.store)
                started = 0 if paused else self.fill_slots()
                busy = self.busy()
                # idle: nothing running and nothing it may start (a paused queue waits for
                # `queue resume`, which starts a worker again)
                idle = (
                    not busy and not started and (paused or not scheduler.queue_order(self.store))
                )
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
            self.stop_children()
            lock.close()
        return 0

    def _on_term(self, *_: Any) -> None:
        self.stopping = True

    def describe(self) -> str:
        """Where this worker trains, for its log."""
        return f"slots {', '.join(s.label for s in self.slots)}" + (
            f", {self.cpu_threads} CPU threads a run" if "cpu" in self.devices else ""
        )

    def prepare(self) -> None:
        """Called once the lock is held, before the first claim (a backend connects here)."""

    def busy(self) -> bool:
        """Whether any run this worker started is still going."""
        return any(s.child is not None for s in self.slots)

    # -- bookkeeping ----------------------------------------------------------------

    def reconcile(self) -> None:
        """Runs left running by a dead process become interrupted (resumable), with why."""
        for info in self.store.runs(stored=("running", "queued")):
            status = info.summary.get("status")
            if status not in ("running", "queued"):
                continue
            holder = claims.holder_of(info.path)
            if holder is not None and holder.alive():
                continue
            broken = claims.break_stale(info.path)
            if status == "running" and info.status == "interrupted":
                who = broken.describe() if broken else f"pid {info.summary.get('pid')}"
                self._mark(
                    info,
                    "interrupted",
                    f"its process ({who}) vanished before the run ended; "
                    f"continue it with: mnist-tui resume {info.id}",
                )

    def _mark(self, info: RunInfo, status: str, reason: str) -> None:
        fresh = self.store.read_run(info.experiment, info.id)
        if fresh is not None and fresh.summary.get("status") in ("running", "queued"):
            with contextlib.suppress(StoreError):
                self.store.handle(fresh).update(status=status, reason=reason)
            self.log(f"{info.experiment}/{info.id} {status}: {reason}")

    def fill_slots(self) -> int:
        started = 0
        free = [s for s in self.slots if s.child is None]
        if not free:
            return 0
        for info in scheduler.queue_order(self.store):
            if not free:
                break
            pin = info.summary.get("pin_device")
            fits = [s for s in free if pin in (None, s.device)]
            # on a GPU, only where its free memory covers the run's expected need
            slot = admission.place(self.store, info, fits, self.slots) if fits else None
            if slot is None:
                if not fits and pin not in self.devices:
                    self._mark(
                        info,
                        "failed",
                        f"pinned to device {pin}, which this worker "
                        f"does not have (devices: {', '.join(self.devices)})",
                    )
                continue
            if self.start(slot, info):
                free.remove(slot)
                started += 1
        return started

    def command(self, slot: Slot, info: RunInfo) -> list[str]:
        cmd = [sys.executable, "-m", "mnist_tui", "train-run", str(info.path)]
        cmd += ["--device", slot.label]
        if slot.device == "cpu":
            cmd += ["--threads", str(self.cpu_threads)]
        if self.options.data_dir is not None:
            cmd += ["--data-dir", str(self.options.data_dir)]
        return cmd

    def child_env(self, slot: Slot) -> dict[str, str]:
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "MNIST_TUI_SLOT": f"{slot.label}#{slot.index}",
        }
        if slot.device == "cpu":
            env["CUDA_VISIBLE_DEVICES"] = ""
            for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                env[var] = str(self.cpu_threads)
        else:
            env["CUDA_VISIBLE_DEVICES"] = slot.device
        return env

    def start(self, slot: Slot, info: RunInfo) -> bool:
        try:
            holder = claims.claim(info.path, "worker")
        except claims.ClaimedError:
            return False  # another worker or a console took it first
        fresh = self.store.read_run(info.experiment, info.id)
        if fresh is None or fresh.summary.get("status") != "queued":
            claims.release(info.path, holder, ended="no longer queued")
            return False
        cmd = self.command(slot, fresh)
        log_path = fresh.path / "log.txt"
        try:
            log = log_path.open("ab")
            # the command and a starting line go to the log before the child exists, so a
            # child that dies at once still leaves a trace of what was attempted
            log.write(
                f"{time.strftime('%Y-%m-%d %H:%M:%S')} starting on {slot.label} "
                f"(worker {os.getpid()}): {shlex.join(cmd)}\n".encode()
            )
            log.flush()
        except OSError as exc:
            claims.release(info.path, holder, ended=f"cannot write the log: {exc.strerror}")
            self._mark(fresh, "failed", f"cannot write {log_path}: {exc.strerror}")
            return False
        with log:
            try:
                child = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self.child_env(slot),
                    start_new_session=True,  # Ctrl-C or a hang-up elsewhere never reaches it
                    preexec_fn=_die_with_parent,
                )
            except OSError as exc:
                claims.release(info.path, holder, ended=f"could not start: {exc.strerror}")
                self._mark(fresh, "failed", f"could not start the run: {exc.strerror}")
                return False
        slot.holder = claims.hand_over(info.path, holder, child.pid, "train", shlex.join(cmd))
        slot.run, slot.child, slot.started = fresh, child, time.time()
        self.log(f"started {fresh.experiment}/{fresh.id} on {slot.label} (pid {child.pid})")
        return True

    def reap(self) -> None:
        for slot in self.slots:
            if slot.child is None or slot.child.poll() is None:
                continue
            code = slot.child.returncode
            info = slot.run
            assert info is not None and slot.holder is not None
            fresh = self.store.read_run(info.experiment, info.id)
            status = fresh.summary.get("status") if fresh else None
            if status in ("running", "queued"):
                reason = failure_reason(info.path / "log.txt", code)
                self._mark(info, "failed" if code not in (0, None) else "interrupted", reason)
                status = "failed"
            claims.release(info.path, slot.holder, ended=f"{status} (exit code {code})")
            with contextlib.suppress(FileNotFoundError):
                (info.path / scheduler.CANCEL_FLAG).unlink()
            self.log(f"{info.experiment}/{info.id} ended {status} (exit code {code})")
            slot.run = slot.child = slot.holder = None

    def stop_children(self) -> None:
        """On SIGTERM: ask each child to stop (it saves and ends as killed), then wait."""
        live = [s for s in self.slots if s.child is not None and s.child.poll() is None]
        for s in live:
            assert s.child is not None
            with contextlib.suppress(ProcessLookupError):
                s.child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for s in live:
            assert s.child is not None
            with contextlib.suppress(subprocess.TimeoutExpired):
                s.child.wait(timeout=max(0.1, deadline - time.monotonic()))
        self.reap()


def _die_with_parent() -> None:
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
