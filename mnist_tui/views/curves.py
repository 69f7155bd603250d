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
    lines: bool = True  # joined by lines; False: points alone (pruned trials)


@dataclass(frozen=True)
class Curve:
    title: str
    series: tuple[Series, ...]
    xlabel: str = "epoch"
    percent: bool = False  # ys are fractions shown as percent
    empty_note: str = ""  # why there is nothing to draw, when known ("no epochs yet")

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
    return Curve(title, series, percent=percent, empty_note=missing_note(runs, key))


def missing_note(runs: Sequence[tuple[str, Sequence[Mapping[str, Any]]]], key: str) -> str:
    """Why runs that have epochs have no `key`: a run without a validation split records
    no val_* figures; anything else was simply not recorded."""
    if not any(rows for _, rows in runs):
        return ""  # no epochs at all: "no epochs yet" says it
    if key.startswith("val_"):
        return "these runs have no validation split (set data.val_split to get one)"
    return f"these runs recorded no {key}"


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


def _pruned(t: Mapping[str, Any]) -> bool:
    return "pruned" in (t.get("state"), t.get("status"))


def history_curve(
    trials: Sequence[Mapping[str, Any]], metric: str, direction: str | None = None
) -> Curve:
    """A search's progress (trial numbers from 0, as Optuna counts them): the best value
    so far as a line, which only ever improves; each completed trial's value as a point;
    pruned trials apart, as points of their own glyph (stopped early, their figure is
    not comparable). `direction`: maximize or minimize (default from the metric)."""
    scale = 100.0 if metric.endswith("_acc") else 1.0
    if direction is None:
        direction = "minimize" if metric.endswith("_loss") else "maximize"
    better = max if direction == "maximize" else min
    done = sorted(
        (
            (float(t["number"]), scale * float(t["value"]))
            for t in trials
            if t.get("value") is not None and not _pruned(t)
        ),
        key=lambda p: p[0],
    )
    best_xs: list[float] = []
    best_ys: list[float] = []
    for x, y in done:
        best_ys.append(y if not best_ys else better(best_ys[-1], y))
        best_xs.append(x)
    pruned = [
        (float(t["number"]), scale * float(t["value"]))
        for t in trials
        if _pruned(t) and t.get("value") is not None
    ]
    n_pruned = sum(1 for t in trials if _pruned(t))
    label = metric_label(metric) + (" %" if scale != 1.0 else "")
    series = [
        Series(f"best so far ({'highest' if direction == 'maximize' else 'lowest'})",
               tuple(best_xs), tuple(best_ys), MARKERS[0]),
        Series("trial", tuple(p[0] for p in done), tuple(p[1] for p in done), "+", lines=False),
    ]  # fmt: skip
    if pruned:
        series.append(
            Series("pruned", tuple(p[0] for p in pruned), tuple(p[1] for p in pruned), "x", False)
        )
    title = f"search history ({label})"
    if n_pruned:
        title += f", {n_pruned} pruned" + ("" if pruned else " (not drawn)")
    return Curve(title, tuple(series), xlabel="trial", percent=scale != 1.0)
