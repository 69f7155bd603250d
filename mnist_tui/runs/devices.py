"""The devices a store's worker trains on, now: slots and the runs that hold them, memory
used / total and utilisation (NVML for GPUs, psutil for the CPU and host memory).

Cheap enough to call every 2 s from the console: no torch, no subprocess (nvidia-smi
is not run; NVML answers in-process), one index query for the running runs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mnist_tui.runs import nvml
from mnist_tui.runs.record import RunInfo
from mnist_tui.runs.store import RunStore
from mnist_tui.status import RunStatus


@dataclass(frozen=True)
class DeviceRow:
    key: str  # "cpu" or the GPU's NVML index as the worker names it ("0")
    label: str  # "cpu", "cuda:0"
    name: str  # the GPU's model, or the CPU's cores
    slots: int  # runs the worker may train here at once (0: the worker does not use it)
    holders: tuple[str, ...]  # "experiment/run-id" of the runs training here
    mem_used: int | None  # bytes (host memory for the CPU)
    mem_total: int | None
    util: float | None  # percent busy (all cores for the CPU)
    free_for_runs: int | None = None  # bytes: total - used (GPU) or available (host)

    @property
    def mem_fraction(self) -> float | None:
        if self.mem_used is None or not self.mem_total:
            return None
        return self.mem_used / self.mem_total


@dataclass(frozen=True)
class DevicesView:
    rows: tuple[DeviceRow, ...]
    worker: str  # who serves the store, in words
    notes: tuple[str, ...] = field(default_factory=tuple)  # e.g. why there is no GPU row


def _worker_devices(store: RunStore) -> tuple[tuple[str, ...], int, str]:
    """(devices, runs per device, who) of the live worker, else what one would serve here."""
    from mnist_tui.runs.worker import worker_info

    live = worker_info(store)
    if live is not None and live.devices:
        return tuple(live.devices), max(1, live.per_device), f"served by worker pid {live.pid}"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = tuple(x.strip() for x in visible.split(",") if x.strip() and x.strip() != "-1")
    else:
        ids = tuple(str(g.index) for g in nvml.read_gpus().gpus)
    return ids or ("cpu",), 1, "no worker running: a worker started now would serve these"


def device_of(run: RunInfo, gpu_pids: dict[int, str]) -> str | None:
    """Which device key a running run trains on: its pid in NVML's process list, else
    the device label it stored ("cuda:1", "cpu (2 threads)")."""
    pid = run.summary.get("pid")
    if isinstance(pid, int) and pid in gpu_pids:
        return gpu_pids[pid]
    label = str(run.device or "")
    if label.startswith("cpu"):
        return "cpu"
    if label.startswith("cuda:") and label[5:].split()[0].isdigit():
        return label[5:].split()[0]
    return None


def _host() -> tuple[int | None, int | None, float | None, str, int | None]:
    """Host memory used / total, all cores' use, the CPU's description, memory available."""
    cores = os.cpu_count() or 1
    try:
        import psutil
    except ImportError:
        return None, None, None, f"{cores} cores (psutil not installed)", None
    mem = psutil.virtual_memory()
    # since the previous call in this process: the console calls every 2 s; a first
    # call (or the one-shot CLI) has no previous sample, see `prime_cpu`
    util = float(psutil.cpu_percent(interval=None))
    return (
        int(mem.total - mem.available),
        int(mem.total),
        util,
        f"{cores} cores",
        int(mem.available),
    )


def prime_cpu(seconds: float = 0.0) -> None:
    """Start psutil's CPU-use interval (and wait `seconds` for a one-shot reading)."""
    with contextlib.suppress(ImportError):
        import psutil

        psutil.cpu_percent(interval=None)
        if seconds > 0:
            import time

            time.sleep(seconds)


def device_status(store: RunStore, running: Iterable[RunInfo] | None = None) -> DevicesView:
    """Every device the worker serves (and the CPU), with its runs and figures now."""
    devices, per_device, who = _worker_devices(store)
    reading = nvml.read_gpus(processes=True)
    gpus = {str(g.index): g for g in reading.gpus}
    gpu_pids = {pid: str(g.index) for g in reading.gpus for pid in g.processes}
    if running is None:
        running = [
            r for r in store.runs(stored=(RunStatus.RUNNING,)) if r.status == RunStatus.RUNNING
        ]
    holders: dict[str, list[str]] = {}
    elsewhere: list[str] = []
    for run in running:
        where = device_of(run, gpu_pids)
        name = f"{run.experiment}/{run.id}"
        if where is None:
            elsewhere.append(f"{name} ({run.device or '?'})")
        else:
            holders.setdefault(where, []).append(name)
    rows: list[DeviceRow] = []
    notes: list[str] = []
    gpu_ids = [d for d in devices if d != "cpu"]
    for d in gpu_ids:
        g = gpus.get(d)
        rows.append(
            DeviceRow(
                d,
                f"cuda:{d}",
                g.name if g else "?",
                per_device,
                tuple(holders.get(d, [])),
                g.mem_used if g else None,
                g.mem_total if g else None,
                g.util if g else None,
                g.mem_free if g else None,
            )
        )
        if g is None:
            notes.append(f"cuda:{d}: no figures ({reading.reason or 'NVML does not list it'})")
    if not gpu_ids:
        notes.append(f"no GPU row: {reading.reason or 'the worker serves the CPU only'}")
    used, total, util, desc, available = _host()
    rows.append(
        DeviceRow(
            "cpu",
            "cpu",
            desc,
            per_device if "cpu" in devices else 0,
            tuple(holders.get("cpu", [])),
            used,
            total,
            util,
            available,
        )
    )
    if elsewhere:
        notes.append("running on a device not named here: " + ", ".join(elsewhere))
    return DevicesView(tuple(rows), who, tuple(notes))


def as_json(view: DevicesView) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(view)
