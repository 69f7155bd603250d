"""`compare A B [C ...]`: name the sides, collect their runs' figures, test them.

The statistics are in `studies.stats` (scipy, imported when a comparison is made); this
module only turns names on the command line (or in the console) into sides.
"""

from __future__ import annotations

from pathlib import Path

from mnist_tui.errors import MnistTuiError, did_you_mean
from mnist_tui.runs.store import RunStore
from mnist_tui.studies.stats import Side, Study, compare_sides
from mnist_tui.studies.variants import Variant, build_variants, resolve_selection

AT = ("final", "best")


def sides_of(
    refs: list[str],
    experiments_dir: Path,
    store: RunStore,
    metric: str = "test_acc",
    at: str = "final",
    variants: list[Variant] | None = None,
) -> list[Side]:
    """Each reference as a side: its completed runs' `metric` at the `at` epoch."""
    if at not in AT:
        raise MnistTuiError(f"expected the final or the best epoch, got '{at}'")
    if variants is None:
        variants = build_variants(experiments_dir, store)
    sides = []
    for ref in refs:
        sel = resolve_selection(ref, experiments_dir, store, variants)
        runs = sel.completed()
        values = sel.values(metric, at)
        if not runs:
            raise MnistTuiError(f"{sel.label}: no completed runs to compare")
        if not values:
            stored = sorted({k for r in runs for k in r.figures(at)})
            raise MnistTuiError(
                f"--metric: no run of {sel.label} has '{metric}' at the {at} epoch; "
                f"stored: {', '.join(stored) or 'nothing'}." + did_you_mean(metric, stored)
            )
        ids = [r.id for r in runs if isinstance(r.figures(at).get(metric), int | float)]
        sides.append(Side(sel.label, values, sel.kind, sel.key, ids))
    labels = [s.label for s in sides]
    if len(set(labels)) < len(labels):
        dup = next(x for x in labels if labels.count(x) > 1)
        raise MnistTuiError(f"'{dup}' is named twice: compare needs different sides")
    return sides


def compare_refs(
    refs: list[str],
    experiments_dir: Path,
    store: RunStore,
    metric: str = "test_acc",
    at: str = "final",
    delta: float | None = None,
    variants: list[Variant] | None = None,
) -> Study:
    """The comparison of `refs` (two or more) on `metric` at the final or best epoch;
    `delta` (in the metric's units) is the difference seeds-needed aims at."""
    if len(refs) < 2:
        raise MnistTuiError("compare needs at least two sides (experiments, variants or groups)")
    sides = sides_of(refs, experiments_dir, store, metric, at, variants)
    return compare_sides(sides, metric, at, delta=delta)
