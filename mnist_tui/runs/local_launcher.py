"""The local backend: each claimed run trains in a child process of the worker, slot by slot.

Device slots: each device (a GPU id, or the CPU) runs up to `per_device` runs at once. A
child sees only its GPU (`CUDA_VISIBLE_DEVICES=<id>`); on the CPU the cores are split
between the slots so concurrent runs never oversubscribe them.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mnist_tui.runs import admission, warm_pool
from mnist_tui.runs import claim as claims
from mnist_tui.runs.launcher import (
    SKIP,
    WAIT,
    Backend,
    Finished,
    LaunchFailed,
    Log,
    Mark,
    Refused,
    Skip,
    Wait,
    WorkerOptions,
    die_with_parent,
)
from mnist_tui.runs.record import RunInfo
from mnist_tui.runs.store import RunStore

STOP_WAIT = 30.0


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
    child: subprocess.Popen[bytes] | warm_pool.WarmChild | None = None
    holder: claims.Holder | None = None
    started: float = 0.0
    warm: warm_pool.WarmParent | None = None  # forks this slot's runs (cli/warm_slot.py)

    @property
    def label(self) -> str:
        return "cpu" if self.device == "cpu" else f"cuda:{self.device}"


class LocalLauncher:
    """Child processes on this machine, one per slot."""

    def __init__(self, store: RunStore, options: WorkerOptions, log: Log) -> None:
        self.store = store
        self.options = options
        self.log = log
        self._devices = options.devices or detect_devices()
        self.slots = [
            Slot(device, i) for device in self._devices for i in range(max(1, options.per_device))
        ]
        cpu_slots = sum(1 for s in self.slots if s.device == "cpu")
        self.cpu_threads = cpu_threads_per_run(cpu_slots, options.threads)

    @property
    def devices(self) -> tuple[str, ...]:
        return self._devices

    def describe(self) -> str:
        return f"slots {', '.join(s.label for s in self.slots)}" + (
            f", {self.cpu_threads} CPU threads a run" if "cpu" in self._devices else ""
        )

    def connect(self, mark: Mark) -> None:
        # nothing to join (the slots are this machine's); start the warm parents, which
        # import torch and decode the queue's datasets while the first runs are claimed
        if not warm_pool.enabled():
            return
        datasets = queued_datasets(self.store)
        for slot in self.slots:
            self._warm_up(slot, datasets)

    def _warm_up(self, slot: Slot, datasets: list[str]) -> None:
        try:
            slot.warm = warm_pool.WarmParent(self.child_env(slot), datasets, self.options.data_dir)
        except OSError as exc:
            self.log(f"no warm start on {slot.label}: {exc.strerror}")
            slot.warm = None

    def reconcile(self, mark: Mark) -> None:
        pass  # the worker's own reconcile covers runs whose trainer was on this host

    def busy(self) -> bool:
        return any(s.child is not None for s in self.slots)

    def _free(self) -> list[Slot]:
        return [s for s in self.slots if s.child is None]

    def capacity(self) -> bool:
        return bool(self._free())

    def holds(self, run_id: str) -> bool:
        return False  # a claimed run starts at once: it is never queued and held

    def place(self, info: RunInfo) -> Slot | Wait | Skip | Refused:
        free = self._free()
        if not free:
            return WAIT
        pin = info.pin_device
        fits = [s for s in free if pin in (None, s.device)]
        # on a GPU, only where its free memory covers the run's expected need
        slot = admission.place(self.store, info, fits, self.slots) if fits else None
        if slot is not None:
            return slot
        if not fits and pin not in self._devices:
            return Refused(
                f"pinned to device {pin}, which this worker "
                f"does not have (devices: {', '.join(self._devices)})"
            )
        return SKIP  # its device is busy; runs for other devices may go

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

    def launch(self, info: RunInfo, placement: Slot, holder: claims.Holder) -> None:
        slot = placement
        cmd = self.command(slot, info)
        log_path = info.path / "log.txt"
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
            raise LaunchFailed(
                f"cannot write the log: {exc.strerror}", f"cannot write {log_path}: {exc.strerror}"
            ) from None
        with log:
            warm = self._fork_warm(slot, cmd, log_path)
            try:
                child = warm or subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self.child_env(slot),
                    start_new_session=True,  # Ctrl-C or a hang-up elsewhere never reaches it
                    preexec_fn=die_with_parent,
                )
            except OSError as exc:
                raise LaunchFailed(
                    f"could not start: {exc.strerror}",
                    f"could not start the run: {exc.strerror}",
                ) from None
        slot.holder = claims.hand_over(info.path, holder, child.pid, "train", shlex.join(cmd))
        slot.run, slot.child, slot.started = info, child, time.time()
        how = "warm" if isinstance(child, warm_pool.WarmChild) else "cold"
        self.log(f"started {info.experiment}/{info.id} on {slot.label} (pid {child.pid}, {how})")

    def _fork_warm(self, slot: Slot, cmd: list[str], log_path: Path) -> warm_pool.WarmChild | None:
        """The run forked from the slot's warm parent; None: start it cold."""
        if slot.warm is None:
            return None
        if slot.warm.dead:  # restart it for the next run; this one starts cold
            self.log(f"warm parent of {slot.label} is gone: restarting it")
            self._warm_up(slot, queued_datasets(self.store))
            return None
        # the child's command line becomes `cmd`, so cancel can verify it as a trainer
        return slot.warm.fork(cmd[3:], log_path, cmd)

    def poll_finished(self) -> list[Finished]:
        done: list[Finished] = []
        for slot in self.slots:
            if slot.child is None or slot.child.poll() is None:
                continue
            code = slot.child.returncode
            assert slot.run is not None and slot.holder is not None
            done.append(Finished(slot.run, f"exit code {code}", code, slot.holder))
            slot.run = slot.child = slot.holder = None
        return done

    def cancel(self) -> None:
        pass  # train-run stops by itself on the run's cancel flag

    def signal_is_cancel(self) -> bool:
        return False  # `queue rm` signals the child itself, never the worker

    def stop_all(self, reap: Callable[[], None]) -> None:
        """Ask each child to stop (it saves and ends as killed), then wait."""
        live = [s for s in self.slots if s.child is not None and s.child.poll() is None]
        for s in live:
            assert s.child is not None
            with contextlib.suppress(ProcessLookupError):
                s.child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT
        for s in live:
            assert s.child is not None
            with contextlib.suppress(subprocess.TimeoutExpired):
                s.child.wait(timeout=max(0.1, deadline - time.monotonic()))
        reap()
        for s in self.slots:
            if s.warm is not None:
                s.warm.close()
                s.warm = None


def queued_datasets(store: RunStore, limit: int = 50) -> list[str]:
    """The datasets the first queued runs train on, from their frozen spec.toml."""
    from mnist_tui.runs.scheduler import queue_order

    keys: list[str] = []
    for info in queue_order(store)[:limit]:
        with contextlib.suppress(OSError, tomllib.TOMLDecodeError):
            data = tomllib.loads(info.spec_path().read_text(encoding="utf-8")).get("data")
            key = data.get("dataset") if isinstance(data, dict) else None
            if isinstance(key, str) and key not in keys:
                keys.append(key)
    return keys or ["mnist"]


def _check() -> None:
    pass  # child processes need nothing beyond mnist-tui itself


BACKEND = Backend("local", LocalLauncher, _check)
