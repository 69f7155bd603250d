"""Optional PNG export of a run's pictures (needs matplotlib: pip install 'mnist-tui[png]')."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnist_tui.errors import MnistTuiError

if TYPE_CHECKING:
    from mnist_tui.studies.predictions import Samples


def save_run_png(
    path: Path,
    title: str,
    rows: list[dict[str, Any]],
    summary: Mapping[str, Any],
    samples: Samples | None = None,
) -> Path:
    """Curves, per-class accuracy, confusion matrix and (optionally) sample predictions."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        # the exact command for the Python that runs this, whatever way it was installed
        # (an extra name means nothing to an editable or a copied install)
        command = f"{shlex.quote(sys.executable)} -m pip install 'matplotlib>=3.7'"
        raise MnistTuiError(f"--png needs matplotlib, which is not installed: {command}") from None
    n_samples = len(samples.images) if samples is not None else 0
    sample_rows = (n_samples + 5) // 6
    fig = plt.figure(figsize=(13, 8 + 2.2 * sample_rows))
    grid = fig.add_gridspec(2 + sample_rows, 6, height_ratios=[3, 3.5] + [1.8] * sample_rows)
    from matplotlib.ticker import MaxNLocator

    from mnist_tui.views.curves import run_curves

    # the same series as the terminal plots; matplotlib's own glyphs, one per split
    glyph = {"•": "o", "+": "s", "x": "^"}
    for col, curve in enumerate(run_curves(rows, "loss")):
        ax = fig.add_subplot(grid[0, col * 3 : col * 3 + 3])
        for series in curve.series:
            ax.plot(
                series.xs, series.ys, marker=glyph.get(series.marker, "o"), ms=3, label=series.label
            )
        ax.set_xlabel(curve.xlabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title("accuracy (%)" if curve.percent else "loss")
        ax.grid(alpha=0.3)
        if curve.series:
            ax.legend()
    classes = summary.get("classes") or [str(i) for i in range(10)]
    per_class = summary.get("per_class_acc") or []
    ax = fig.add_subplot(grid[1, :3])
    if per_class:
        ax.barh(range(len(per_class)), [100 * a for a in per_class], color="tab:cyan")
        ax.set_yticks(range(len(classes)), classes)
        ax.invert_yaxis()
        ax.set_xlim(min(100 * a for a in per_class) - 5, 100)
        ax.set_title("per-class test accuracy (%)")
    confusion = summary.get("confusion")
    ax = fig.add_subplot(grid[1, 3:])
    if confusion:
        ax.imshow(confusion, cmap="magma")
        ax.set_xticks(range(len(classes)), [c[:6] for c in classes], rotation=60)
        ax.set_yticks(range(len(classes)), [c[:6] for c in classes])
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title("confusion matrix")
    for i in range(n_samples):
        assert samples is not None
        ax = fig.add_subplot(grid[2 + i // 6, i % 6])
        ax.imshow(samples.images[i], cmap="gray")
        p, t = samples.predicted[i], samples.true[i]
        ok = p == t
        ax.set_title(
            f"{'✓' if ok else '✗'} {classes[p]}" + ("" if ok else f" (is {classes[t]})"),
            color="green" if ok else "red",
            fontsize=9,
        )
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=100)
    except OSError as exc:
        raise MnistTuiError(f"cannot write {path}: {exc.strerror}") from None
    finally:
        plt.close(fig)
    return path
