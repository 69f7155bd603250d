"""Terminal pictures: curves (plotext), bars, confusion heat maps and digits drawn with
half-block characters. Plain functions returning text or Rich renderables, shared by the
CLI and the console (no Textual here).

plotext redraws the whole figure each time, so callers redraw only when the data
changed, and series are thinned to the plot's width first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotext as plt
from rich.console import Group
from rich.table import Table
from rich.text import Text

from mnist_tui.views import fmt


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
    xlabel: str = "epoch",
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
    fig.label(xlabel)
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
