"""What a training process costs the machine, for its summary.json ("system").

Peaks come from the OS and torch (`ru_maxrss`, `torch.cuda.max_memory_allocated`); the
rest is sampled every few seconds by a small daemon thread: the process's CPU use
(psutil), and its GPU's utilisation and memory (NVML, runs/nvml.py). Either package
missing just leaves its figures out, with a note saying why.
"""

from __future__ import annotations

import contextlib
import os
import resource
import sys
import threading
import time
from typing import Any

import torch

from mnist_tui.runs import nvml

MIB = 1 << 20
INTERVAL = 2.0


def peak_host_bytes() -> int:
    """The process's peak resident memory so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


class SystemMonitor:
    """Samples this process (and its GPU) every `interval` seconds while training."""

    def __init__(self, device: torch.device, interval: float = INTERVAL) -> None:
        self.device = device
        self.interval = interval
        self.notes: list[str] = []
        self.cpu: list[float] = []  # percent of one core, per sample
        self.rss: list[int] = []
        self.gpu_util: list[float] = []
        self.gpu_mem: list[int] = []
        self.gpu_total: int | None = None
        self.gpu_name: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._proc: Any = None
        self._gpu: int | None = None
        self._t0 = time.monotonic()
        self._cpu0 = 0.0
        self._last = (self._t0, 0.0)
        try:
            import psutil

            self._proc = psutil.Process()
            self._cpu0 = self._cpu_seconds()
            self._last = (self._t0, self._cpu0)
        except ImportError:
            self.notes.append("psutil is not installed: no CPU figures")
        if device.type == "cuda":
            uuid = None
            with contextlib.suppress(AttributeError, RuntimeError):
                uuid = str(torch.cuda.get_device_properties(device).uuid)
            self._gpu = nvml.gpu_for_cuda(
                os.environ.get("CUDA_VISIBLE_DEVICES"), device.index or 0, uuid
            )
            if self._gpu is None:
                reason = nvml.read_gpus().reason or "NVML does not list this GPU"
                self.notes.append(f"no GPU utilisation figures: {reason}")

    def _cpu_seconds(self) -> float:
        t = self._proc.cpu_times()
        return float(t.user + t.system)

    def start(self) -> None:
        self.sample()
        self._thread = threading.Thread(target=self._loop, name="sysmon", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        """One sample; also called at the start and the end, so a short run has figures."""
        now = time.monotonic()
        if self._proc is not None:
            try:
                cpu = self._cpu_seconds()
                t, c = self._last
                if now - t > 0.05:
                    self.cpu.append(100.0 * (cpu - c) / (now - t))
                    self._last = (now, cpu)
                self.rss.append(int(self._proc.memory_info().rss))
            except Exception:  # the process table can refuse briefly; the next sample counts
                pass
        if self._gpu is not None:
            for g in nvml.read_gpus().gpus:
                if g.index == self._gpu:
                    if g.util is not None:
                        self.gpu_util.append(g.util)
                    self.gpu_mem.append(g.mem_used)
                    self.gpu_total, self.gpu_name = g.mem_total, g.name

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.sample()

    def summary(self) -> dict[str, Any]:
        """The figures for summary.json; only what was measured."""
        out: dict[str, Any] = {
            "host_mem_peak_mb": round(peak_host_bytes() / MIB, 1),
            "samples": max(len(self.rss), len(self.gpu_mem)),
            "interval_s": self.interval,
        }
        if self._proc is not None:
            wall = time.monotonic() - self._t0
            with_cpu = self._cpu_seconds() - self._cpu0
            if wall > 0:
                out["cpu_percent_mean"] = round(100.0 * with_cpu / wall, 1)
            if self.cpu:
                out["cpu_percent_peak"] = round(max(self.cpu), 1)
        if self.device.type == "cuda":
            out["device_mem_peak_mb"] = round(torch.cuda.max_memory_allocated(self.device) / MIB, 1)
            out["device_mem_reserved_peak_mb"] = round(
                torch.cuda.max_memory_reserved(self.device) / MIB, 1
            )
        if self.gpu_mem:
            out["gpu_index"] = self._gpu
            out["gpu_mem_used_peak_mb"] = round(max(self.gpu_mem) / MIB, 1)
            out["gpu_mem_total_mb"] = round((self.gpu_total or 0) / MIB, 1)
            out["gpu_name"] = self.gpu_name
        if self.gpu_util:
            out["gpu_util_mean"] = round(sum(self.gpu_util) / len(self.gpu_util), 1)
            out["gpu_util_peak"] = round(max(self.gpu_util), 1)
        if self.notes:
            out["notes"] = list(self.notes)
        return out
