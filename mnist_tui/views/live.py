"""A run as it trains: step report lines, step curves, system figures. Plain text and
data shared by the CLI (`logs`, `plot`, `show`) and the console (no Textual here)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from mnist_tui.views import fmt
from mnist_tui.views.curves import Curve, Series

# a step report in a run's log.txt starts with this; `logs` leaves them out unless --steps
STEP_PREFIX = "  step "
STEP_MARKER = "·"  # step curves: small dots under the epochs' glyphs


def step_line(epoch: int, step: int, steps: int, epochs: int, loss: float, acc: float) -> str:
    """`  step   1.50/3  (469/938)  train loss 0.4123  acc 87.50%`."""
    x = epoch - 1 + step / max(steps, 1)
    return (
        f"{STEP_PREFIX}{x:6.2f}/{epochs}  ({step}/{steps})  "
        f"train loss {loss:.4f}  acc {fmt.pct(acc)}"
    )


def step_series(
    steps: Sequence[Mapping[str, Any]], key: str, label: str = "train (steps)", scale: float = 1.0
) -> Series:
    """One metric of a run's step reports over fractional epochs."""
    pts = [
        (float(r["x"]), scale * float(r[key]))
        for r in steps
        if r.get("x") is not None and r.get(key) is not None
    ]
    return Series(label, tuple(p[0] for p in pts), tuple(p[1] for p in pts), STEP_MARKER)


def with_steps(curve: Curve, steps: Sequence[Mapping[str, Any]], key: str) -> Curve:
    """`curve` with the step reports' `key` drawn first (under the epochs' series)."""
    if not steps:
        return curve
    s = step_series(steps, key, scale=100.0 if curve.percent else 1.0)
    if not s.xs:
        return curve
    return Curve(curve.title, (s, *curve.series), curve.xlabel, curve.percent)


def run_curves_live(
    rows: Sequence[Mapping[str, Any]], steps: Sequence[Mapping[str, Any]], label: str
) -> tuple[Curve, Curve]:
    """A run's loss and accuracy curves, with its step reports under the epochs."""
    from mnist_tui.views.curves import run_curves

    loss, acc = run_curves(rows, label)
    return with_steps(loss, steps, "train_loss"), with_steps(acc, steps, "train_acc")


def overlay_with_steps(
    curve: Curve, runs: Sequence[tuple[str, Sequence[Mapping[str, Any]]]], key: str
) -> Curve:
    """An overlay of `key` with each run's step reports under it (train figures only:
    steps carry no test or validation figures). Step series share their run's label."""
    if key not in ("train_loss", "train_acc"):
        return curve
    scale = 100.0 if curve.percent else 1.0
    extra = tuple(
        s
        for label, steps in runs
        if (s := step_series(steps, key, label="", scale=scale)).xs  # no second legend entry
    )
    return Curve(curve.title, (*extra, *curve.series), curve.xlabel, curve.percent)


def latest_train_loss(
    rows: Sequence[Mapping[str, Any]], steps: Sequence[Mapping[str, Any]]
) -> float | None:
    """The newest train loss: a step report newer than the last epoch wins."""
    last_epoch = rows[-1]["epoch"] if rows else 0
    if steps and float(steps[-1].get("x", 0)) > last_epoch:
        return float(steps[-1]["train_loss"])
    return rows[-1].get("train_loss") if rows else None


def system_lines(system: Any) -> list[str]:
    """A run's system figures (summary.json's "system"), a short line each. A hand-edited
    or damaged entry shows what still reads as a number, never a crash."""
    if not isinstance(system, Mapping) or not system:
        return []
    s = {k: v for k, v in system.items() if _is_num(v) or k in ("gpu_name", "notes")}
    out = []
    host = f"host memory peak {_mb(s.get('host_mem_peak_mb'))}"
    if "cpu_percent_mean" in s:
        host += f", CPU {s['cpu_percent_mean']:.0f}% of a core"
        if "cpu_percent_peak" in s:
            host += f" (peak {s['cpu_percent_peak']:.0f}%)"
    out.append(host)
    if "device_mem_peak_mb" in s:
        out.append(
            f"device memory peak {_mb(s['device_mem_peak_mb'])} allocated, "
            f"{_mb(s.get('device_mem_reserved_peak_mb'))} reserved"
        )
    if "gpu_mem_used_peak_mb" in s:
        util = (
            f", utilisation {s['gpu_util_mean']:.0f}% mean, {s['gpu_util_peak']:.0f}% peak"
            if "gpu_util_mean" in s and "gpu_util_peak" in s
            else ""
        )
        out.append(
            f"GPU {s.get('gpu_index', '?')} ({s.get('gpu_name') or '?'}): memory used peak "
            f"{_mb(s['gpu_mem_used_peak_mb'])} of {_mb(s.get('gpu_mem_total_mb'))}{util}"
        )
    notes = s.get("notes")
    out += (
        [f"note: {n}" for n in notes or [] if isinstance(n, str)] if isinstance(notes, list) else []
    )
    return out


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _mb(v: Any) -> str:
    if not _is_num(v):
        return "—"
    return f"{v / 1024:.2f} GiB" if v >= 1024 else f"{v:.0f} MiB"
