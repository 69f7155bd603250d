"""GPU memory and utilisation through NVML (NVIDIA's `nvidia-ml-py`, imported as `pynvml`).

Imported lazily and optional: without the package, the driver or a GPU, `read_gpus`
returns no GPUs and says why, and every caller carries on without GPU figures. No torch
here: the worker, the console and `mnist-tui devices` stay small processes.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

MIB = 1 << 20


@dataclass(frozen=True)
class GpuState:
    index: int  # NVML's index (the order nvidia-smi lists)
    name: str
    uuid: str
    mem_used: int  # bytes
    mem_total: int  # bytes
    util: float | None  # percent of the last sample period the GPU was busy
    processes: dict[int, int] = field(default_factory=dict)  # pid -> bytes it holds

    @property
    def mem_free(self) -> int:
        return max(0, self.mem_total - self.mem_used)


@dataclass(frozen=True)
class GpuReading:
    gpus: tuple[GpuState, ...]
    reason: str = ""  # why there are none, when there are none


_lock = threading.Lock()
_ready: ModuleType | None = None


def _module() -> tuple[ModuleType | None, str]:
    """pynvml, initialised once per process; or None and why not."""
    global _ready
    with _lock:
        if _ready is not None:
            return _ready, ""
        try:
            nv = importlib.import_module("pynvml")
        except ImportError:
            return None, "NVML is not installed (pip install 'mnist-tui[system]')"
        try:
            nv.nvmlInit()
        except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
            return None, f"NVML cannot start (no NVIDIA driver?): {_text(exc)}"
        _ready = nv
        return nv, ""


def _text(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def reset() -> None:
    """Forget the initialised module (tests swap a fake `pynvml` in)."""
    global _ready
    with _lock:
        _ready = None


def read_gpus(processes: bool = False) -> GpuReading:
    """Every GPU NVML sees, now; `processes` adds each one's per-process memory."""
    nv, reason = _module()
    if nv is None:
        return GpuReading((), reason)
    try:
        count = int(nv.nvmlDeviceGetCount())
    except Exception as exc:
        return GpuReading((), f"NVML cannot count the GPUs: {_text(exc)}")
    if count == 0:
        return GpuReading((), "NVML sees no GPU")
    out = []
    for i in range(count):
        try:
            h = nv.nvmlDeviceGetHandleByIndex(i)
            mem = nv.nvmlDeviceGetMemoryInfo(h)
            name, uuid = _text(nv.nvmlDeviceGetName(h)), _text(nv.nvmlDeviceGetUUID(h))
        except Exception:
            continue  # a GPU fallen off the bus: the others still count
        util: float | None = None
        with contextlib.suppress(Exception):
            util = float(nv.nvmlDeviceGetUtilizationRates(h).gpu)
        procs: dict[int, int] = {}
        if processes:
            with contextlib.suppress(Exception):
                for p in nv.nvmlDeviceGetComputeRunningProcesses(h):
                    procs[int(p.pid)] = int(p.usedGpuMemory or 0)
        out.append(GpuState(i, name, uuid, int(mem.used), int(mem.total), util, procs))
    return GpuReading(tuple(out), "" if out else "NVML could not read any GPU")


def gpu_for_cuda(visible: str | None, ordinal: int = 0, uuid: str | None = None) -> int | None:
    """NVML's index of a process's CUDA device `ordinal`: NVML ignores
    CUDA_VISIBLE_DEVICES, so map through it (by UUID when torch gave one)."""
    reading = read_gpus()
    if uuid:
        for g in reading.gpus:
            if g.uuid.removeprefix("GPU-") == uuid.removeprefix("GPU-"):
                return g.index
    if visible is None or not visible.strip():
        return ordinal if any(g.index == ordinal for g in reading.gpus) else None
    parts = [p.strip() for p in visible.split(",") if p.strip()]
    if ordinal >= len(parts):
        return None
    part = parts[ordinal]
    if part.isdigit():
        return int(part)
    for g in reading.gpus:  # CUDA_VISIBLE_DEVICES may name UUIDs
        if g.uuid.startswith(part) or g.uuid.removeprefix("GPU-").startswith(part):
            return g.index
    return None
