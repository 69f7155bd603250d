"""Small formatting helpers shared by the CLI and the TUI."""

from __future__ import annotations

import math
import time
from typing import Any


def pct(x: float | None, digits: int = 2) -> str:
    return "—" if x is None else f"{100 * x:.{digits}f}%"


def pp(delta: float | None) -> str:
    """A fraction difference in percentage points, signed."""
    return "—" if delta is None else f"{100 * delta:+.2f} pp"


def num(x: float | None, digits: int = 4) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def seconds(s: float | None) -> str:
    if s is None:
        return "—"
    if s < 60:
        return f"{s:.1f}s"
    m, s = divmod(int(s), 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


def count(n: int | None) -> str:
    return "—" if n is None else f"{n:,}"


def plural(n: int, word: str, many: str | None = None) -> str:
    """`1 run`, `3 runs`, `1,200 epochs`: never "1 runs"."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def ago(t: float | None) -> str:
    if not t:
        return "—"
    d = time.time() - t
    if d < 60:
        return f"{int(d)}s ago"
    if d < 3600:
        return f"{int(d // 60)}m ago"
    if d < 86400:
        return f"{int(d // 3600)}h ago"
    return time.strftime("%Y-%m-%d", time.localtime(t))


def ago_changes_at(t: float | None) -> float:
    """When `ago(t)` will read differently (a cache of shown rows keeps them till then)."""
    if not t:
        return math.inf
    d = time.time() - t
    if d < 60:
        return t + int(d) + 1
    if d < 3600:
        return t + (int(d // 60) + 1) * 60
    if d < 86400:
        return t + (int(d // 3600) + 1) * 3600
    return math.inf  # a date from then on


def value(v: Any) -> str:
    """A spec value as TOML would show it."""
    from mnist_tui.config.schema import show

    return show(v)
