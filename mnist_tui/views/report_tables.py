"""Reported vs reproduced, as a table and as Markdown (the grouping is studies/report.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from mnist_tui.views import fmt
from mnist_tui.views.tables import (
    Cell,
    Column,
    Row,
    TableData,
    num_cell,
)

if TYPE_CHECKING:
    from mnist_tui.studies.report import ReportRow, Stat


# ----------------------------------------------------------------------------- report


def report_table(rows: Sequence[ReportRow]) -> TableData:
    """Reported vs reproduced, mean ± std over seeds (`mnist-tui report` and the console)."""
    columns = [
        Column("experiment", keep=True),
        Column("reported", "right"),
        Column("final", "right", drop=1),
        Column("best", "right", drop=4),
        Column("Δ pp", "right"),
        Column("95% CI", "right", drop=4),
        Column("inside", "center", drop=3),
        Column("runs", "right", drop=2),
        Column("hardest rep/ours", drop=5),
        Column("train", "right", drop=6),
    ]
    inside_cell = {
        True: Cell("yes", "green"),
        False: Cell("no", "red"),
        None: Cell("—", "dim"),
    }
    out = []
    for r in rows:
        delta = Cell("—", "dim")
        if r.delta_pp is not None:
            delta = Cell(
                f"{r.delta_pp:+.2f}", "green" if abs(r.delta_pp) <= 1 else "red", r.delta_pp
            )
        out.append(
            Row(
                r.name,
                (
                    Cell(r.name),
                    num_cell(
                        r.reported_acc,
                        fmt.pct(r.reported_acc) + ("ᵇ" if r.reported_at == "best" else ""),
                    ),
                    num_cell(r.final_acc.mean if r.final_acc else None, stat_text(r.final_acc)),
                    num_cell(r.best_acc.mean if r.best_acc else None, stat_text(r.best_acc)),
                    delta,
                    Cell(r.ci_text(), "" if r.ci_low is not None else "dim"),
                    inside_cell[r.inside],
                    num_cell(r.runs, runs_text(r) if r.runs or r.other_definition_runs else ""),
                    Cell(f"{r.reported_hardest}/{r.hardest or '—'}" if r.reported_hardest else ""),
                    num_cell(
                        r.train_seconds.mean if r.train_seconds else None,
                        fmt.seconds(r.train_seconds.mean) if r.train_seconds else "—",
                    ),
                ),
            )
        )
    return TableData(
        "Reported vs reproduced (mean ± std over seeds)",
        columns,
        out,
        report_notes(list(rows)) if rows else [],
        empty="no experiments to report",
    )


def stat_text(s: Stat | None) -> str:
    """A figure over seeds: `98.91%` for one run, `98.91 ± 0.05%` for several."""
    if s is None:
        return "—"
    if s.n == 1:
        return fmt.pct(s.mean)
    return f"{100 * s.mean:.2f} ± {100 * s.std:.2f}%"


def runs_text(r: ReportRow) -> str:
    """`3`, or `0 (+2 variants)` when runs of other definitions were left out."""
    return variants_text(r.runs, r.other_variants)


def variants_text(runs: int, other_variants: int) -> str:
    if not other_variants:
        return str(runs)
    return f"{runs} (+{other_variants} variant{'s' if other_variants > 1 else ''})"


OTHER_DEFINITION_NOTE = (
    "+N variants: runs of other definitions (-S overrides, or an earlier version of the "
    "file) are not counted here; `mnist-tui variants EXP` lists them and `mnist-tui "
    "compare` tells them apart."
)


DELTA_NOTE = (
    "Δ pp: reproduced mean − reported, from the rounded figures shown, at the epoch "
    "the study reported (final; best where ᵇ)."
)
BEST_NOTE = "ᵇ reported at the study's best epoch: compared with each run's best epoch."
INSIDE_NOTE = (
    "95% CI: the interval of the reproduced mean at the reported epoch (Student's t over "
    "the seeds; — below 2 runs); inside: the reported figure lies within it."
)
BEST_COLUMN_NOTE = (
    "best: test accuracy at each run's best epoch (lowest validation loss; highest test "
    "accuracy without a validation split)."
)


def report_notes(rows: list[ReportRow]) -> list[str]:
    """The footnotes of the markers and columns that appear in these rows."""
    notes = [DELTA_NOTE]
    if any(r.reported_at == "best" for r in rows):
        notes.append(BEST_NOTE)
    notes += [INSIDE_NOTE, BEST_COLUMN_NOTE]
    if any(r.other_definition_runs for r in rows):
        notes.append(OTHER_DEFINITION_NOTE)
    return notes


def markdown(rows: list[ReportRow]) -> str:
    lines = [
        "| experiment | data | params | epochs | reported acc | reproduced final "
        "| reproduced best | Δ pp | 95% CI | inside | reported loss | reproduced loss "
        "| hardest (rep / ours) | runs | train time |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|:-:|---:|---:|---|---:|---:|",
    ]
    for r in rows:
        at = "ᵇ" if r.reported_at == "best" else ""
        loss = r.best_loss if r.reported_at == "best" else r.final_loss
        inside = {True: "yes", False: "no", None: "—"}[r.inside]
        hardest = f"{r.reported_hardest} / {r.hardest or '—'}" if r.reported_hardest else "—"
        delta = "—" if r.delta_pp is None else f"{r.delta_pp:+.2f}"
        loss_text = "—" if loss is None else f"{loss.mean:.4f}"
        time_text = fmt.seconds(r.train_seconds.mean) if r.train_seconds else "—"
        lines.append(
            f"| {r.name} | {r.dataset} | {fmt.count(r.parameters)} | {r.epochs} "
            f"| {fmt.pct(r.reported_acc)}{at} | {stat_text(r.final_acc)} "
            f"| {stat_text(r.best_acc)} | {delta} | {r.ci_text()} | {inside} "
            f"| {fmt.num(r.reported_loss)} "
            f"| {loss_text} | {hardest} | {runs_text(r)} | {time_text} |"
        )
    lines += ["", *(f"- {note}" for note in report_notes(rows))]
    return "\n".join(lines) + "\n"
