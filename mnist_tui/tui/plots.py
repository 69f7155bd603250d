"""Terminal pictures with plotext: curves and bars as ANSI text (no Textual here).

plotext redraws the whole figure each time, so callers redraw only when the data
changed, and series are thinned to the plot's width first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotext as plt

from mnist_tui import fmt


def thin(xs: Sequence[float], ys: Sequence[float], width: int) -> tuple[list[float], list[float]]:
    """At most ~width points, always keeping the last one."""
    n = len(xs)
    step = max(1, n // max(width, 1))
    idx = list(range(0, n, step))
    if idx and idx[-1] != n - 1:
        idx.append(n - 1)
    return [xs[i] for i in idx], [ys[i] for i in idx]


def curves(
    series: list[tuple[str, list[dict[str, Any]], str]],
    *,
    title: str,
    width: int,
    height: int,
    percent: bool = False,
) -> str:
    """Lines of `key` over epochs for each (label, metric rows, key), as ANSI text."""
    fig = plt.figure
    fig.clear()
    fig.plot_size(max(width, 20), max(height, 6))
    fig.theme("dark")
    fig.canvas("default")  # leave the terminal's own background showing
    fig.title(title)
    drawn = 0
    for label, rows, key in series:
        pts = [(r["epoch"], r[key]) for r in rows if r.get(key) is not None]
        if not pts:
            continue
        xs, ys = zip(*pts, strict=True)
        ys_scaled = [100 * y for y in ys] if percent else list(ys)
        xs_t, ys_t = thin(list(xs), ys_scaled, width)
        signal = fig.signal(xs_t, ys_t, marker="braille")
        signal.label(label)
        signal.lines()
        fig.draw(signal)
        drawn += 1
    if not drawn:
        return f"{title}: no epochs yet"
    fig.label("epoch")
    return str(fig.build().string())


def class_bars(classes: list[str], acc: list[float], width: int = 30) -> str:
    """Per-class accuracy as half-width bars, worst class marked."""
    if not acc:
        return "no per-class figures yet"
    worst = min(range(len(acc)), key=acc.__getitem__)
    name_w = max(len(c) for c in classes)
    lines = []
    for i, (c, a) in enumerate(zip(classes, acc, strict=False)):
        bar = "█" * round(a * width)
        mark = " ◀ hardest" if i == worst else ""
        lines.append(f"{c:<{name_w}} {fmt.pct(a, 1):>7} {bar}{mark}")
    return "\n".join(lines)


def confusion_text(classes: list[str], confusion: list[list[int]]) -> str:
    """A compact confusion matrix (rows true, columns predicted)."""
    if not confusion:
        return "no confusion matrix yet"
    w = max(len(str(v)) for row in confusion for v in row)
    short = [c[:w] for c in classes]
    head = " " * 6 + " ".join(f"{c:>{w}}" for c in short)
    lines = [head]
    for name, row in zip(classes, confusion, strict=False):
        lines.append(f"{name[:5]:<5} " + " ".join(f"{v:>{w}}" for v in row))
    return "\n".join(lines)
