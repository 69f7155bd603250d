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


def epoch_ticks(lo: float, hi: float, width: int) -> list[float]:
    """Whole epochs where the x range spans two or more; else fractions (0.25, 0.5, ...),
    so a first epoch drawn from its step reports has an axis to read."""
    if math.floor(hi) - math.ceil(lo) >= 1:
        return [float(t) for t in int_ticks(lo, hi, width)]
    room = max(2, width // 8)
    span = max(hi - lo, 1e-9)
    step = next((s for s in (0.1, 0.2, 0.25, 0.5, 1.0) if span / s < room), 1.0)
    first = math.ceil(lo / step - 1e-9)
    ticks = [round(i * step, 2) for i in range(first, math.floor(hi / step + 1e-9) + 1)]
    return ticks or [round(lo, 2)]


def legend_lines(curve: Curve, width: int) -> list[str]:
    """The legend as lines of text, wrapped to the width: "• train   + val   x test".

    It is drawn above the plot, never inside it: inside, it sat on data points (a 1-2
    epoch run's test point vanished under it)."""
    entries = [f"{s.marker} {s.label}" for s in curve.series if s.label and s.xs]
    lines: list[str] = []
    for entry in entries:
        if lines and len(lines[-1]) + 3 + len(entry) <= width:
            lines[-1] += "   " + entry
        else:
            lines.append(entry)
    return lines


def plot(curve: Curve, *, width: int, height: int) -> str:
    """A curve as ANSI text: a glyph per series (told apart without colour), whole-number
    ticks on the x axis, the legend on its own lines under the title (it hides nothing)."""
    curve, dropped = _plottable(curve)
    if curve.empty:
        if dropped:
            return f"{curve.title}: no plottable values"
        return f"{curve.title}: {curve.empty_note or 'no epochs yet'}"
    legend = legend_lines(curve, max(width, 20))
    import plotext as plt  # a quarter of a second: only where a curve is drawn

    fig = plt.figure
    fig.clear()
    fig.plot_size(max(width, 20), max(height - len(legend), 6))
    fig.theme("dark")
    fig.canvas("default")  # leave the terminal's own background showing
    fig.title(curve.title)
    xs_all: list[float] = []
    for s in curve.series:
        if not s.xs:
            continue
        xs_t, ys_t = thin(s.xs, s.ys, width)
        signal = fig.signal(xs_t, ys_t, marker=s.marker)
        if s.lines:
            signal.lines()
        fig.draw(signal)
        xs_all += xs_t
    lo, hi = min(xs_all), max(xs_all)
    fig.ruler(0).ticks(epoch_ticks(lo, hi, width - 8))
    fig.label(curve.xlabel)
    if dropped:  # said, not hidden: a stored figure beyond any axis is damage to look at
        fig.title(f"{curve.title} ({dropped} unplottable points left out)")
    title, *rest = str(fig.build().string()).split("\n")
    return "\n".join([title, *(line.center(max(width, 20)).rstrip() for line in legend), *rest])


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


Pixel = float | Sequence[float]  # a grey level, or [r, g, b], each 0..1


def _level(p: Pixel) -> float:
    """Brightness of a pixel (luma of a colour one)."""
    if isinstance(p, int | float):
        return float(p)
    r, g, b = p[0], p[1], p[2]
    return 0.299 * r + 0.587 * g + 0.114 * b


def _blank_like(row: Sequence[Pixel]) -> list[Pixel]:
    return [0.0 if isinstance(p, int | float) else [0.0, 0.0, 0.0] for p in row]


def glyph_grid(image: Sequence[Sequence[Pixel]], threshold: float = 0.5) -> list[str]:
    """An image (values 0..1, grey or [r, g, b]) as text: one character per two stacked
    pixels.

    Each cell shows which of its two pixels (upper, lower) are at or above `threshold`
    brightness. An odd last row is paired with a blank one.
    """
    rows = [list(r) for r in image]
    if len(rows) % 2:
        rows.append(_blank_like(rows[0]))
    out = []
    for top, bottom in zip(rows[0::2], rows[1::2], strict=True):
        out.append(
            "".join(
                HALF_BLOCKS[(_level(a) >= threshold, _level(b) >= threshold)]
                for a, b in zip(top, bottom, strict=True)
            )
        )
    return out


def image_text(image: Sequence[Sequence[Pixel]]) -> Text:
    """An image in colour: '▀' with the upper pixel as foreground, lower as background;
    grey levels on the grey ramp, colour pixels as they are (24-bit where the terminal
    has it; Rich maps them down to 256 or 16 colours where it does not)."""
    rows = [list(r) for r in image]
    if len(rows) % 2:
        rows.append(_blank_like(rows[0]))
    text = Text()
    for i, (top, bottom) in enumerate(zip(rows[0::2], rows[1::2], strict=True)):
        if i:
            text.append("\n")
        for a, b in zip(top, bottom, strict=True):
            text.append("▀", style=f"{_rgb(a)} on {_rgb(b)}")
    return text


def _rgb(p: Pixel) -> str:
    if isinstance(p, int | float):
        level = max(0, min(255, round(255 * p)))
        return f"rgb({level},{level},{level})"
    r, g, b = (max(0, min(255, round(255 * v))) for v in p[:3])
    return f"rgb({r},{g},{b})"


def images_per_row(images: Sequence[Sequence[Sequence[Pixel]]], width: int) -> int:
    """How many images fit side by side in `width` columns (each as wide as it has pixels,
    and 2 columns between)."""
    side = len(images[0][0]) if images and images[0] else 28
    return max(1, width // (side + 3))


def sample_grid(
    images: Sequence[Sequence[Sequence[Pixel]]],
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
