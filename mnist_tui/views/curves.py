"""Curves: labelled series of numbers with a marker each, drawn by views/pictures.py."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mnist_tui.views.search_tables import metric_label

# ----------------------------------------------------------------------------- curves

# told apart without colour: one glyph per series, in this order
MARKERS = ("•", "x", "+", "o", "*", "#", "@", "%", "&", "=")
SPLIT_MARKERS = {"train": "•", "val": "+", "test": "x"}


@dataclass(frozen=True)
class Series:
    label: str
    xs: tuple[float, ...]
    ys: tuple[float, ...]
    marker: str


@dataclass(frozen=True)
class Curve:
    title: str
    series: tuple[Series, ...]
    xlabel: str = "epoch"
    percent: bool = False  # ys are fractions shown as percent

    @property
    def empty(self) -> bool:
        return not any(s.xs for s in self.series)


def series_of(
    label: str, rows: Iterable[Mapping[str, Any]], key: str, marker: str, scale: float = 1.0
) -> Series:
    pts = [(float(r["epoch"]), scale * float(r[key])) for r in rows if r.get(key) is not None]
    return Series(label, tuple(p[0] for p in pts), tuple(p[1] for p in pts), marker)


def split_curve(rows: Sequence[Mapping[str, Any]], metric: str, title: str) -> Curve:
    """train / val / test of one metric ("loss" or "acc") of one run."""
    percent = metric == "acc"
    series = tuple(
        s
        for split, marker in SPLIT_MARKERS.items()
        if (s := series_of(split, rows, f"{split}_{metric}", marker, 100 if percent else 1)).xs
    )
    return Curve(title, series, percent=percent)


def run_curves(rows: Sequence[Mapping[str, Any]], label: str) -> tuple[Curve, Curve]:
    """A run's loss and accuracy curves (the CLI's `plot` and the console's run view)."""
    return split_curve(rows, "loss", f"{label}: loss"), split_curve(rows, "acc", "accuracy %")


def overlay_curve(
    runs: Sequence[tuple[str, Sequence[Mapping[str, Any]]]], key: str = "test_acc"
) -> Curve:
    """One metric of any number of runs in one plot, a marker each."""
    percent = key.endswith("_acc")
    series = tuple(
        series_of(label, rows, key, MARKERS[i % len(MARKERS)], 100 if percent else 1)
        for i, (label, rows) in enumerate(runs)
    )
    title = key.replace("_", " ") + (" %" if percent else "")
    return Curve(title, series, percent=percent)


def group_band_curve(
    groups: Sequence[tuple[str, Sequence[Sequence[Mapping[str, Any]]]]], key: str = "test_acc"
) -> Curve:
    """One metric per group of runs (repeats, folds): the mean over the group's runs at
    each epoch, and the mean ± one sample std as two dotted edges of a band. A group of
    one run is drawn as that run."""
    percent = key.endswith("_acc")
    scale = 100.0 if percent else 1.0
    series: list[Series] = []
    for i, (label, runs) in enumerate(groups):
        marker = MARKERS[i % len(MARKERS)]
        at: dict[float, list[float]] = {}
        for rows in runs:
            for r in rows:
                if r.get(key) is not None and r.get("epoch") is not None:
                    at.setdefault(float(r["epoch"]), []).append(scale * float(r[key]))
        xs = tuple(sorted(at))
        if len(runs) < 2:
            series.append(Series(label, xs, tuple(at[x][0] for x in xs), marker))
            continue
        means = tuple(statistics.fmean(at[x]) for x in xs)
        stds = tuple(statistics.stdev(at[x]) if len(at[x]) > 1 else 0.0 for x in xs)
        series.append(Series(f"{label}: mean of {len(runs)}", xs, means, marker))
        upper = tuple(m + d for m, d in zip(means, stds, strict=True))
        lower = tuple(m - d for m, d in zip(means, stds, strict=True))
        series.append(Series(f"{label}: ± 1 std", xs, upper, "·"))
        series.append(Series("", xs, lower, "·"))  # one legend entry for both edges
    title = key.replace("_", " ") + (" %" if percent else "") + ", group mean ± std"
    return Curve(title, tuple(series), percent=percent)


def history_curve(trials: Sequence[Mapping[str, Any]], metric: str) -> Curve:
    """A search's objective per trial (trial numbers from 0, as Optuna counts them)."""
    scale = 100.0 if metric.endswith("_acc") else 1.0
    pts = [
        (float(t["number"]), scale * float(t["value"]))
        for t in trials
        if t.get("value") is not None
    ]
    label = metric_label(metric) + (" %" if scale != 1.0 else "")
    s = Series(label, tuple(p[0] for p in pts), tuple(p[1] for p in pts), MARKERS[0])
    return Curve(f"search history ({label})", (s,), xlabel="trial", percent=scale != 1.0)
