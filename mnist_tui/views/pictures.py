"""Terminal pictures: curves (plotext), confusion heat maps and digits drawn with
half-block characters. Plain functions returning text or Rich renderables, shared by the
CLI and the console (no Textual here).

plotext redraws the whole figure each time, so callers redraw only when the data
changed, and series are thinned to the plot's width first.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import plotext as plt
from rich.console import Group
from rich.table import Table
from rich.text import Text

from mnist_tui.views.curves import MARKERS, Curve, series_of


def thin(xs: Sequence[float], ys: Sequence[float], width: int) -> tuple[list[float], list[float]]:
    """At most ~width points, always keeping the last one."""
    n = len(xs)
    step = max(1, n // max(width, 1))
    idx = list(range(0, n, step))
    if idx and idx[-1] != n - 1:
        idx.append(n - 1)
    return [xs[i] for i in idx], [ys[i] for i in idx]


def int_ticks(lo: float, hi: float, width: int) -> list[int]:
    """Whole-number ticks from lo to hi, about one per 8 columns, on a 1-2-5 step."""
    first, last = math.ceil(lo), math.floor(hi)
    if last < first:
        return [round(lo)]
    room = max(2, width // 8)
    step = 1
    for base in itertools.count():
        step = next((m * 10**base for m in (1, 2, 5) if (last - first) / (m * 10**base) < room), 0)
        if step:
            break
    start = first if step == 1 else math.ceil(first / step) * step
    ticks = list(range(start, last + 1, step))
    return ticks or [first]


def _legend_corner(curve: Curve) -> tuple[str, str]:
    """The right-hand corner (top or bottom) that the curves cross least."""
    xs = [x for s in curve.series for x in s.xs]
    ys = [y for s in curve.series for y in s.ys]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    right = [y for x, y in zip(xs, ys, strict=True) if x1 == x0 or (x - x0) / (x1 - x0) > 0.55]
    mid = (y0 + y1) / 2
    top = sum(1 for y in right if y > mid)
    return ("top", "bottom") if top <= len(right) - top else ("bottom", "top")


def plot(curve: Curve, *, width: int, height: int) -> str:
    """A curve as ANSI text: a glyph per series (told apart without colour), whole-number
    ticks on the x axis, the legend in the right-hand corner the lines leave free."""
    curve, dropped = _plottable(curve)
    if curve.empty:
        return (
            f"{curve.title}: no epochs yet"
            if not dropped
            else f"{curve.title}: no plottable values"
        )
    fig = plt.figure
    fig.clear()
    fig.plot_size(max(width, 20), max(height, 6))
    fig.theme("dark")
    fig.canvas("default")  # leave the terminal's own background showing
    fig.title(curve.title)
    xs_all: list[float] = []
    ys_all: list[float] = []
    for s in curve.series:
        if not s.xs:
            continue
        xs_t, ys_t = thin(s.xs, s.ys, width)
        signal = fig.signal(xs_t, ys_t, marker=s.marker)
        if s.label:  # an unlabelled series (a band's second edge) has no legend entry
            signal.label(s.label)
        signal.lines()
        fig.draw(signal)
        xs_all += xs_t
        ys_all += ys_t
    lo, hi = min(xs_all), max(xs_all)
    fig.ruler(0).ticks(int_ticks(lo, hi, width - 8))
    along, _ = _legend_corner(curve)
    fig.legend(
        x=hi, y=max(ys_all) if along == "top" else min(ys_all), relative=True, ha="right", va=along
    )
    fig._legend.frame(False)  # no public switch; the box costs 4 rows a small plot lacks
    fig.label(curve.xlabel)
    if dropped:  # said, not hidden: a stored figure beyond any axis is damage to look at
        fig.title(f"{curve.title} ({dropped} unplottable points left out)")
    return str(fig.build().string())


PLOTTABLE = 1e12  # beyond this a tick label means nothing and plotext's ranges overflow


def _plottable(curve: Curve) -> tuple[Curve, int]:
    """The curve without points plotext cannot place (NaN, inf, astronomically large:
    a damaged but finite stored figure, scaled to percent, overflows), and how many."""
    kept, dropped = [], 0
    for s in curve.series:
        pts = [
            (x, y)
            for x, y in zip(s.xs, s.ys, strict=True)
            if math.isfinite(x) and math.isfinite(y) and abs(y) <= PLOTTABLE and abs(x) <= PLOTTABLE
        ]
        dropped += len(s.xs) - len(pts)
        kept.append(replace(s, xs=tuple(p[0] for p in pts), ys=tuple(p[1] for p in pts)))
    return replace(curve, series=tuple(kept)), dropped


def curves(
    series: list[tuple[str, list[dict[str, Any]], str]],
    *,
    title: str,
    width: int,
    height: int,
    percent: bool = False,
    xlabel: str = "epoch",
) -> str:
    """Lines of `key` over epochs for each (label, metric rows, key), as ANSI text."""
    scale = 100.0 if percent else 1.0
    built = tuple(
        series_of(label, rows, key, MARKERS[i % len(MARKERS)], scale)
        for i, (label, rows, key) in enumerate(series)
    )
    return plot(Curve(title, built, xlabel, percent), width=width, height=height)


# ------------------------------------------------------------------ images in half blocks

HALF_BLOCKS = {(False, False): " ", (True, False): "▀", (False, True): "▄", (True, True): "█"}


def glyph_grid(image: Sequence[Sequence[float]], threshold: float = 0.5) -> list[str]:
    """A 2D image (values 0..1) as text: one character per two stacked pixels.

    Each cell shows which of its two pixels (upper, lower) are at or above `threshold`.
    An odd last row is paired with a blank one.
    """
    rows = [list(r) for r in image]
    if len(rows) % 2:
        rows.append([0.0] * len(rows[0]))
    out = []
    for top, bottom in zip(rows[0::2], rows[1::2], strict=True):
        out.append(
            "".join(
                HALF_BLOCKS[(a >= threshold, b >= threshold)]
                for a, b in zip(top, bottom, strict=True)
            )
        )
    return out


def image_text(image: Sequence[Sequence[float]]) -> Text:
    """A grey-level image in colour: '▀' with the upper pixel as foreground, lower as
    background, on the 24-step grey ramp of 256-colour terminals."""
    rows = [list(r) for r in image]
    if len(rows) % 2:
        rows.append([0.0] * len(rows[0]))
    text = Text()
    for i, (top, bottom) in enumerate(zip(rows[0::2], rows[1::2], strict=True)):
        if i:
            text.append("\n")
        for a, b in zip(top, bottom, strict=True):
            text.append("▀", style=f"{_grey(a)} on {_grey(b)}")
    return text


def _grey(v: float) -> str:
    level = max(0, min(255, round(255 * v)))
    return f"rgb({level},{level},{level})"


def sample_grid(
    images: Sequence[Sequence[Sequence[float]]],
    predicted: Sequence[int],
    true: Sequence[int],
    classes: Sequence[str],
    per_row: int = 6,
    color: bool = True,
) -> Table:
    """Test images with "pred / true" captions; mistakes captioned in red with ✗.

    Without colour the images are drawn as black-and-white half-block glyphs."""
    grid = Table.grid(padding=(0, 2))
    for _ in range(per_row):
        grid.add_column()
    cells = []
    for img, p, t in zip(images, predicted, true, strict=True):
        ok = p == t
        caption = Text(
            f"{'✓' if ok else '✗'} {classes[p][:9]}", style="green" if ok else "bold red"
        )
        if not ok:
            caption.append(f" (is {classes[t][:9]})", style="red")
        picture = image_text(img) if color else Text("\n".join(glyph_grid(img, 0.35)))
        cells.append(Group(picture, caption))
    for start in range(0, len(cells), per_row):
        row = cells[start : start + per_row]
        grid.add_row(*row, *[""] * (per_row - len(row)))
    return grid


def confusion_heatmap(classes: Sequence[str], confusion: Sequence[Sequence[int]]) -> Table:
    """Confusion matrix with each off-diagonal cell shaded by its share of the row."""
    t = Table(
        title="Confusion matrix (rows: true, columns: predicted)",
        title_justify="left",
        box=None,
        padding=(0, 1),
    )
    t.add_column("")
    for c in classes:
        t.add_column(c[:5], justify="right")
    for name, row in zip(classes, confusion, strict=True):
        total = max(sum(row), 1)
        cells = []
        for j, v in enumerate(row):
            share = v / total
            if classes[j] == name:
                cells.append(Text(str(v), style="bold black on green"))
            else:
                level = min(255, round(60 + 195 * min(share * 8, 1))) if v else 0
                style = f"white on rgb({level},0,0)" if v else "dim"
                cells.append(Text(str(v), style=style))
        t.add_row(name[:12], *cells)
    return t
