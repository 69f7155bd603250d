"""Memory-aware admission: start a run on a GPU only where its free memory covers the
run's expected need plus a margin; otherwise the run waits in the queue, with why.

`decide` is the rule, a pure function of the devices' free memory and the need. Never
utilisation: a busy GPU with room trains a second run fine, an idle one without room
dies with CUDA out-of-memory. `place` is the worker's call: it reads NVML, works out
the need (the peak measured for runs of the same definition, else an estimate from the
model's size and batch) and keeps the reason a run waits where `queue ls` reads it.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from mnist_tui.runs import nvml
from mnist_tui.runs.io import read_json, write_json_atomic
from mnist_tui.runs.record import RunInfo
from mnist_tui.runs.store import RunStore

MIB = 1 << 20
GIB = 1 << 30
# What torch.cuda.max_memory_allocated does not count but the GPU holds for a process:
# the CUDA context, cuBLAS / cuDNN workspaces, the caching allocator's slack.
CONTEXT = 600 * MIB
MARGIN_FRACTION = 0.15  # of the need, and at least MARGIN_MIN: peaks vary between runs
MARGIN_MIN = 256 * MIB
WAITING = ".waiting.json"  # in the store: run id -> why it waits (the worker writes it)


@dataclass(frozen=True)
class Need:
    bytes: int
    source: str  # where the figure comes from, in words


@dataclass(frozen=True)
class DeviceRoom:
    key: str  # the worker's device name ("0")
    free: int  # bytes NVML reports free
    total: int
    pending: int = 0  # bytes runs started here will still take (not yet at their peak)
    runs: int = 0  # runs of this worker training here now

    @property
    def room(self) -> int:
        return self.free - self.pending


@dataclass(frozen=True)
class Decision:
    device: str | None  # where to start it, None: it waits
    reason: str  # why it waits (or, when placed, what it needed)


def margin(need: int) -> int:
    return max(MARGIN_MIN, int(need * MARGIN_FRACTION))


def decide(need: Need, rooms: Sequence[DeviceRoom]) -> Decision:
    """The device with the most room that covers need + margin, else why none does."""
    want = need.bytes + margin(need.bytes)
    fits = [r for r in rooms if r.room >= want]
    if fits:
        best = max(fits, key=lambda r: r.room)
        return Decision(best.key, f"needs {_gib(want)} ({need.source}, with margin)")
    if not rooms:
        return Decision(None, "no GPU to place it on")
    if all(r.total < want for r in rooms):
        # it can never fit by this figure: waiting would be for ever, so it tries alone
        empty = [r for r in rooms if r.runs == 0]
        if empty:
            best = max(empty, key=lambda r: r.room)
            return Decision(best.key, f"needs {_gib(want)}, more than any GPU has; tried alone")
    roomiest = max(rooms, key=lambda r: r.room)
    pending = f", {_gib(roomiest.pending)} promised to runs starting" if roomiest.pending else ""
    return Decision(
        None,
        f"waits for GPU memory: needs {_gib(want)} ({need.source}, with margin); "
        f"most room on cuda:{roomiest.key}: {_gib(roomiest.free)} free of "
        f"{_gib(roomiest.total)}{pending}",
    )


def _gib(n: int) -> str:
    return f"{n / GIB:.2f} GiB" if n >= GIB else f"{n / MIB:.0f} MiB"


# ----------------------------------------------------------------------------- the need


def measured_peak(store: RunStore, info: RunInfo) -> tuple[int, int] | None:
    """(bytes, runs): the largest device memory runs of the same definition reserved."""
    definition = info.definition_hash()
    if definition is None:
        return None
    peaks = []
    for other in store.runs(info.experiment, archived=True):
        if other.id == info.id or other.definition_hash() != definition:
            continue
        system = other.full().summary.get("system")
        if not isinstance(system, dict):
            continue
        mb = system.get("device_mem_reserved_peak_mb", system.get("device_mem_peak_mb"))
        if isinstance(mb, int | float) and not isinstance(mb, bool) and math.isfinite(mb):
            peaks.append(int(mb * MIB))
    return (max(peaks), len(peaks)) if peaks else None


def estimate(spec: dict[str, Any], parameters: int | None) -> Need:
    """A coarse need from the model's size and the batch, for a definition never measured:
    the dataset kept on the device as float32, weights, gradients and two optimizer
    moments, and activations as a multiple of the batch's input."""
    data = spec.get("data") or {}
    train = spec.get("train") or {}
    side = 28 + 2 * int(data.get("pad") or 0)
    images = int(data.get("subset") or 60000) + int(data.get("test_subset") or 10000)
    batch = int(train.get("batch_size") or 128)
    params = parameters if parameters else 5_000_000  # unknown: a generous small CNN
    need = images * side * side * 4 + params * 4 * 4 + batch * side * side * 4 * 256
    known = f"{parameters:,} parameters" if parameters else "parameters unknown"
    return Need(need + CONTEXT, f"estimate: {known}, batch {batch}")


def expected_need(store: RunStore, info: RunInfo) -> Need:
    peak = measured_peak(store, info)
    if peak is not None:
        n = peak[1]
        return Need(peak[0] + CONTEXT, f"peak of {n} earlier run{'s' if n != 1 else ''}")
    import tomllib

    spec: dict[str, Any] = {}
    with contextlib.suppress(OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        spec = tomllib.loads(info.spec_path().read_text(encoding="utf-8"))
    params = info.summary.get("parameters")
    if not isinstance(params, int):
        params = next(
            (
                p
                for o in store.runs(info.experiment, archived=True)
                if isinstance(p := o.summary.get("parameters"), int)
                and o.definition_hash() == info.definition_hash()
            ),
            None,
        )
    return estimate(spec, params)


# ----------------------------------------------------------------------------- the worker


class SlotLike(Protocol):
    device: str

    @property
    def child(self) -> Any: ...

    @property
    def run(self) -> RunInfo | None: ...


S = TypeVar("S", bound=SlotLike)

_needs: dict[str, tuple[float, Need]] = {}  # run path -> (when worked out, need)
NEED_TTL = 60.0


def _cached_need(store: RunStore, info: RunInfo) -> Need:
    key = str(info.path)
    hit = _needs.get(key)
    if hit is not None and time.monotonic() - hit[0] < NEED_TTL:
        return hit[1]
    need = expected_need(store, info)
    _needs[key] = (time.monotonic(), need)
    return need


def rooms(
    store: RunStore, reading: nvml.GpuReading, busy: Sequence[SlotLike], devices: Sequence[str]
) -> list[DeviceRoom]:
    """Free memory of each of `devices`, less what its runs still starting will take:
    a run's process holds little until its data and model are on the GPU."""
    out = []
    for g in reading.gpus:
        key = str(g.index)
        if key not in devices:
            continue
        pending = runs = 0
        for s in busy:
            if s.device != key or s.run is None or s.child is None:
                continue
            runs += 1
            held = g.processes.get(int(s.child.pid), 0)
            pending += max(0, _cached_need(store, s.run).bytes - held)
        out.append(DeviceRoom(key, g.mem_free, g.mem_total, pending, runs))
    return out


def place(store: RunStore, info: RunInfo, free: Sequence[S], slots: Sequence[S]) -> S | None:
    """The free slot to start `info` in, or None (it waits; `queue ls` says why).

    CPU slots and GPUs NVML cannot read are taken as they come (nothing to judge by)."""
    gpu_free = [s for s in free if s.device != "cpu"]
    if not gpu_free:
        return free[0] if free else None
    reading = nvml.read_gpus(processes=True)
    if not reading.gpus:
        return free[0]
    busy = [s for s in slots if s.child is not None]
    devices = sorted({s.device for s in gpu_free})
    decision = decide(_cached_need(store, info), rooms(store, reading, busy, devices))
    note_waiting(store, info.id, None if decision.device else decision.reason)
    if decision.device is None:
        return None
    return next(s for s in gpu_free if s.device == decision.device)


def note_waiting(store: RunStore, run_id: str, reason: str | None) -> None:
    """Record (or clear) why a run waits; rewritten only when that changes."""
    now = waiting(store)
    if now.get(run_id) == reason or (reason is None and run_id not in now):
        return
    if reason is None:
        now.pop(run_id, None)
    else:
        now[run_id] = reason
    with contextlib.suppress(Exception):
        write_json_atomic(store.root / WAITING, now)


def waiting(store: RunStore) -> dict[str, str]:
    """Run id -> why the worker does not start it yet (runs it can start are absent)."""
    path = Path(store.root) / WAITING
    try:
        raw = read_json(path)
    except (OSError, ValueError, json.JSONDecodeError):
        return {}
    if not isinstance(raw, dict):
        return {}
    return {str(k): v for k, v in raw.items() if isinstance(v, str)}
