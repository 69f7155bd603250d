"""The tables and lines of searches: trials, their values and parameter importances."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mnist_tui.views import fmt
from mnist_tui.views.tables import (
    TRIAL_STYLE,
    Cell,
    Column,
    Row,
    TableData,
    num_cell,
)

# ----------------------------------------------------------------------------- searches


def metric_text(metric: str, value: float | None) -> str:
    """A figure as everywhere else: accuracies in %, losses with four decimals."""
    if value is None:
        return "—"
    return fmt.pct(value) if metric.endswith("_acc") else fmt.num(value)


def metric_label(metric: str) -> str:
    """What a trial's value is: the metric at its run's best epoch."""
    return "value" if metric == "value" else f"best {metric.replace('_', ' ')}"


def trial_cells(trial: Mapping[str, Any], metric: str = "value") -> tuple[Cell, ...]:
    value = trial.get("value")
    return (
        Cell(str(trial["number"])),
        Cell(str(trial.get("state") or ""), TRIAL_STYLE.get(str(trial.get("state")), "")),
        num_cell(value, metric_text(metric, value)),
        Cell(trial.get("run") or ""),
    )


def trials_table(
    trials: Sequence[Mapping[str, Any]], title: str = "trials", metric: str = "value"
) -> TableData:
    """A search's trials: number, state, objective value, its run, then one column per
    sampled parameter (a value is never cut; a narrow screen drops whole columns,
    rightmost first, and the console names them)."""
    keys = sorted({k for t in trials for k in t.get("params", {})})
    columns = [
        Column("trial", "right"),
        Column("state"),
        Column(metric_label(metric), "right"),
        Column("run", keep=True),
        *(Column(k, "right", drop=i + 1) for i, k in enumerate(keys)),
    ]
    rows = []
    for t in trials:
        params = t.get("params", {})
        values = tuple(Cell(fmt.value(params[k]) if k in params else "") for k in keys)
        rows.append(Row(str(t["number"]), trial_cells(t, metric) + values))
    notes = []
    if metric != "value":
        notes.append(
            f"{metric_label(metric)}: {metric} at the epoch its run judged best; "
            "the search keeps the trial with the best such value"
        )
    return TableData(title, columns, rows, notes, empty="no trials yet")


def trial_line(trial: Mapping[str, Any], metric: str = "value") -> str:
    """One finished trial as a log line (what `tune` prints as it goes)."""
    value = trial.get("value")
    shown = metric_text(metric, value) if value is not None else str(trial.get("state", ""))
    params = "  ".join(f"{k}={fmt.value(v)}" for k, v in trial.get("params", {}).items())
    return f"trial {trial['number']:>3}  run {trial.get('run')}  {shown:>9}  {params}"


IMPORTANCE_TRIALS = 10  # fewer completed trials than this: fANOVA's figures are noise-prone


def importances_table(
    importances: Mapping[str, float], completed: int | None = None, bar: int = 30
) -> TableData:
    """fANOVA importances; from fewer than IMPORTANCE_TRIALS completed trials they carry
    a caveat (with a handful of points the forest fits noise)."""
    rows = [
        Row(k, (Cell(k), num_cell(v, f"{v:.3f}"), Cell("█" * round(v * bar), "cyan")))
        for k, v in importances.items()
    ]
    notes = []
    if completed is not None and completed < IMPORTANCE_TRIALS:
        notes.append(
            f"from {completed} completed trials only: below about {IMPORTANCE_TRIALS} these "
            "importances are mostly noise; run more trials before trusting them"
        )
    return TableData(
        "parameter importances (fANOVA)",
        [Column("parameter", keep=True), Column("importance", "right"), Column("", drop=1)],
        rows,
        notes,
        empty="importances need two completed trials",
    )
