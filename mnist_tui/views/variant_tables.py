"""Tables of variants and comparisons (`variants`, `compare`, `runs --columns`, the console).

Built as `TableData` like every other table, so the CLI, Markdown, LaTeX and the console
show the same cells. Nothing here imports scipy: comparisons arrive computed.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from mnist_tui.views import fmt
from mnist_tui.views.tables import Cell, Column, Row, TableData

if TYPE_CHECKING:
    from mnist_tui.runs.record import RunInfo
    from mnist_tui.studies.report import Step
    from mnist_tui.studies.stats import Comparison, Study
    from mnist_tui.studies.variants import Variant


def _mean_std(xs: Sequence[float], metric: str) -> Cell:
    if not xs:
        return Cell("—", "dim")
    mean = statistics.fmean(xs)
    std = statistics.stdev(xs) if len(xs) > 1 else None
    if metric.endswith("acc"):
        text = f"{100 * mean:.2f}" + ("" if std is None else f" ± {100 * std:.2f}") + "%"
    else:
        text = f"{mean:.4f}" + ("" if std is None else f" ± {std:.4f}")
    return Cell(text, "", mean)


def config_text(v: Any) -> str:
    from mnist_tui.studies.variants import show_value

    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return " ".join(v) or "—"  # tags
    return "—" if v is None else show_value(v)


def config_columns(
    data: TableData, keys: Sequence[str], value_of: Callable[[str, str], Any]
) -> TableData:
    """`data` with a column per dotted key; `value_of(row key, dotted key)` gives a cell's
    value. Asked for by name, they are the last to go when narrow (the id and name never
    are): whole columns are dropped, as in every table."""
    if not keys:
        return data
    columns = [*data.columns, *(Column(k, "right", drop=1) for k in keys)]
    rows = []
    for r in data.rows:
        extra = []
        for k in keys:
            v = value_of(r.key, k)
            extra.append(Cell(config_text(v), "" if v is not None else "dim", _sortable(v)))
        rows.append(replace(r, cells=(*r.cells, *extra)))
    return replace(data, columns=columns, rows=rows)


def _sortable(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def variants_table(
    variants: Sequence[Variant], keys: Sequence[str] = (), metric_at: str = "final"
) -> TableData:
    """One row per variant: runs, mean ± std of test accuracy and loss (final and best),
    what differs from the experiment file."""
    columns = [
        Column("id", keep=True),
        Column("variant", keep=True),
        Column("runs", "right"),
        Column("final acc", "right"),
        Column("best acc", "right", drop=2),
        Column("final loss", "right", drop=3),
        Column("best loss", "right", drop=4),
    ]
    rows = []
    for v in variants:
        done = len(v.completed)
        runs_text = str(done) if done == len(v.runs) else f"{done} (+{len(v.runs) - done})"
        rows.append(
            Row(
                v.id,
                (
                    Cell(v.id, "dim"),
                    Cell(v.label, "bold" if v.own else ""),
                    Cell(runs_text, "", done),
                    _mean_std(v.values("test_acc", "final"), "test_acc"),
                    _mean_std(v.values("test_acc", "best"), "test_acc"),
                    _mean_std(v.values("test_loss", "final"), "test_loss"),
                    _mean_std(v.values("test_loss", "best"), "test_loss"),
                ),
                f"{v.id} {v.label}",
            )
        )
    data = TableData(
        fmt.plural(len(variants), "variant"),
        columns,
        rows,
        notes=[
            "runs: completed (+ others); mean ± std over the completed runs' seeds. "
            "A variant is a definition apart from the seed; bold: the experiment file's own."
        ]
        if variants
        else [],
        empty="no runs yet: `mnist-tui run EXPERIMENT` (or queue add) makes some",
    )
    by_id = {v.id: v for v in variants}
    return config_columns(data, keys, lambda row, k: by_id[row].config.get(k))


def figures_table(values: Callable[[str, str], list[float]]) -> TableData:
    """Mean ± std of each figure the completed runs have, at the final and the best epoch
    (`values(metric, "final" | "best")`: one number per completed run)."""
    columns = [
        Column("figure", keep=True),
        Column("n", "right"),
        Column("final", "right"),
        Column("best", "right"),
    ]
    rows = []
    for metric in ("test_acc", "test_loss", "val_acc", "val_loss"):
        final, best = values(metric, "final"), values(metric, "best")
        if final or best:
            rows.append(
                Row(
                    metric,
                    (
                        Cell(metric.replace("_", " ")),
                        Cell(str(len(final)), "", len(final)),
                        _mean_std(final, metric),
                        _mean_std(best, metric),
                    ),
                )
            )
    return TableData(
        "mean ± std over the completed runs",
        columns,
        rows,
        empty="no completed run yet: nothing to average",
    )


def selection_runs_table(runs: Sequence[RunInfo], show_experiment: bool = False) -> TableData:
    """The runs of a variant or a group (`show`): what tells them apart (seed, fold or
    trial; the overrides they share are said above the table), status, final and best
    test accuracy."""
    from mnist_tui.views.run_tables import run_context
    from mnist_tui.views.tables import shown_status, status_cell, without

    columns = [
        Column("id", keep=True),
        *([Column("experiment", keep=True)] if show_experiment else []),
        Column("seed", "right"),
        Column("fold / trial", drop=1),
        Column("status"),
        Column("epochs", "right", drop=2),
        Column("final acc", "right"),
        Column("best acc", "right"),
    ]
    rows = []
    for r in runs:
        done, total = r.summary.get("epochs_done", 0), r.summary.get("epochs", "?")
        final, best = r.final("test_acc"), r.best("test_acc")
        rows.append(
            Row(
                r.id,
                (
                    Cell(r.id),
                    *([Cell(r.experiment)] if show_experiment else []),
                    Cell("—" if r.seed is None else str(r.seed), "", r.seed),
                    Cell(run_context(r, overrides=False)),
                    status_cell(shown_status(r)),
                    Cell(f"{done}/{total}", "", done),
                    Cell(fmt.pct(final), "", final),
                    Cell(fmt.pct(best), "", best),
                ),
            )
        )
    data = TableData(fmt.plural(len(runs), "run"), columns, rows)
    at = data.column_index("fold / trial")
    if not any(r.cells[at].text for r in rows):  # seeds alone tell these runs apart
        data = without(data, "fold / trial")
    return data


def run_config_columns(
    data: TableData, infos: Sequence[RunInfo], keys: Sequence[str], config: Callable[..., Any]
) -> TableData:
    """The runs table with a column per key (`runs --columns`): configuration keys, and
    run fields such as group, fold, trial or tag."""
    by_id = {r.id: r for r in infos}
    return config_columns(data, keys, lambda row, k: config(by_id[row]).get(k))


# ----------------------------------------------------------------------------- compare


def _amount(metric: str, x: float | None, signed: bool = False) -> str:
    if x is None:
        return "—"
    if metric.endswith("acc"):
        return f"{100 * x:+.2f}" if signed else f"{100 * x:.2f}"
    return f"{x:+.4f}" if signed else f"{x:.4f}"


def sides_table(study: Study) -> TableData:
    """The sides ranked (more than two) or as given (two), with n and mean ± std."""
    unit = " %" if study.metric.endswith("acc") else ""
    columns = [
        Column("#", "right"),
        Column("side", keep=True),
        Column("id", drop=2),
        Column("n", "right"),
        Column(f"{study.metric} ({study.at}){unit}", "right"),
        Column("runs", drop=1),
    ]
    rows = []
    for i, s in enumerate(study.sides, 1):
        mean = _mean_std(s.values, study.metric)
        rows.append(
            Row(
                s.key or s.label,
                (
                    Cell(str(i), "", -i),
                    Cell(s.label),
                    Cell(s.key if s.key != s.label else "", "dim"),
                    Cell(str(len(s.values)), "", len(s.values)),
                    replace(mean, text=mean.text.rstrip("%")),
                    Cell(_short_ids(s.run_ids), "dim"),
                ),
            )
        )
    ranked = "ranked, best first" if len(study.sides) > 2 else "as given"
    return TableData(f"{study.metric} at the {study.at} epoch ({ranked})", columns, rows)


def _short_ids(ids: Sequence[str], limit: int = 4) -> str:
    shown = " ".join(i[:6] for i in ids[:limit])
    return shown + (f" +{len(ids) - limit}" if len(ids) > limit else "")


def pairs_table(study: Study) -> TableData:
    """Each pair: difference B − A with Welch's 95% CI (and the bootstrap's where few
    runs), p (Holm-adjusted for several pairs), Hedges' g, seeds needed, verdict."""
    from mnist_tui.studies.stats import p_text, seeds_text

    metric = study.metric
    unit = " pp" if metric.endswith("acc") else ""
    holm = len(study.pairs) > 1
    number = {side.label: i for i, side in enumerate(study.sides, 1)}
    columns = [
        Column("B − A", keep=True),
        Column(f"Δ{unit}", "right"),
        Column("95% CI (Welch)", "right"),
        Column("bootstrap CI", "right", drop=3),
        Column("p (Holm)" if holm else "p", "right"),
        Column("g", "right", drop=2),
        Column("seeds/side", "right", drop=1),
    ]
    rows = []
    for c in study.pairs:
        rows.append(
            Row(
                f"{c.b} − {c.a}",
                (
                    Cell(f"#{number[c.b]} − #{number[c.a]}"),
                    Cell(_amount(metric, c.diff, True), _diff_style(c), c.diff),
                    Cell(_interval(metric, c.ci_low, c.ci_high)),
                    Cell(_interval(metric, c.boot_low, c.boot_high), "dim"),
                    Cell(p_text(c.p_used), "", c.p_used),
                    Cell("—" if c.hedges_g is None else f"{c.hedges_g:+.2f}", "", c.hedges_g),
                    Cell(seeds_text(c.seeds_needed) if not c.significant else "", "dim"),
                ),
            )
        )
    notes = [
        f"Δ{unit}: mean of B minus mean of A (sides numbered as above); "
        "Welch's t test (unequal variances), two-sided."
        + (
            " p adjusted by Holm's method over all pairs (the intervals are each pair's own)."
            if holm
            else ""
        ),
        "bootstrap: percentile interval of 9,999 resamples, shown where a side has < 5 runs. "
        "g: Hedges' g. seeds/side: runs per side to detect this Δ at 80% power (α 0.05).",
    ]
    return TableData("pairwise" if holm else "difference", columns, rows, notes=notes)


def _interval(metric: str, lo: float | None, hi: float | None) -> str:
    if lo is None or hi is None:
        return "—"
    return f"{_amount(metric, lo, True)} to {_amount(metric, hi, True)}"


def _diff_style(c: Comparison) -> str:
    if not c.significant:
        return ""
    return "green" if (c.diff > 0) == c.higher_is_better else "red"


def study_markdown(study: Study, render: Callable[[TableData], str]) -> str:
    """Both tables in Markdown (or LaTeX) via `render`, with the verdicts as a list."""
    from mnist_tui.studies.stats import verdict

    parts = [render(sides_table(study)).rstrip(), render(pairs_table(study)).rstrip()]
    parts.append("\n".join(f"- {verdict(c, study.metric)}" for c in study.pairs))
    return "\n\n".join(parts) + "\n"


def latex_table(data: TableData) -> str:
    """A booktabs table of the same cells (styles dropped, LaTeX specials escaped)."""
    align = {"left": "l", "right": "r", "center": "c"}
    spec = "".join(align[c.justify] for c in data.columns)
    lines = [
        "\\begin{table}[ht]",
        "\\centering",
        f"\\caption{{{latex_escape(data.title)}}}" if data.title else "",
        f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule",
        " & ".join(latex_escape(c.header) for c in data.columns) + " \\\\",
        "\\midrule",
    ]
    for r in data.rows:
        lines.append(" & ".join(latex_escape(c.text) for c in r.cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(line for line in lines if line) + "\n"


_LATEX = {
    "\\": "\\textbackslash{}",
    "&": "\\&",
    "%": "\\%",
    "$": "\\$",
    "#": "\\#",
    "_": "\\_",
    "{": "\\{",
    "}": "\\}",
    "~": "\\textasciitilde{}",
    "^": "\\textasciicircum{}",
    "±": "$\\pm$",
    "−": "$-$",
    "Δ": "$\\Delta$",
    "α": "$\\alpha$",
    "—": "---",
    "ᵇ": "$^b$",
    "→": "$\\to$",
    "<": "$<$",
    ">": "$>$",
    "•": "$\\bullet$",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in text)


def steps_table(steps: Sequence[Step]) -> TableData:
    """The report's steps: each experiment against the one it extends."""
    from mnist_tui.studies.stats import p_text, verdict

    columns = [
        Column("step", keep=True),
        Column("at"),
        Column("runs", "right", drop=3),
        Column("Δ pp", "right"),
        Column("95% CI (Welch)", "right", drop=1),
        Column("p (Holm)", "right", drop=2),
        Column("verdict", drop=4),
    ]
    rows = []
    for s in steps:
        c = s.comparison
        rows.append(
            Row(
                f"{s.parent}->{s.child}",
                (
                    Cell(f"{s.parent} → {s.child}"),
                    Cell(s.at),
                    Cell(f"{c.n_a} / {c.n_b}"),
                    Cell(_amount("test_acc", c.diff, True), _diff_style(c), c.diff),
                    Cell(_interval("test_acc", c.ci_low, c.ci_high)),
                    Cell(p_text(c.p_used), "", c.p_used),
                    Cell(verdict(c, "test_acc"), "green" if c.significant else "dim"),
                ),
            )
        )
    return TableData(
        "Steps: each experiment against the one it extends (test accuracy)",
        columns,
        rows,
        notes=[
            "Δ pp: the experiment's mean minus its parent's; p adjusted by Holm's method "
            "over all the steps shown (the intervals are each step's own)."
        ]
        if rows
        else [],
        empty="no experiment that extends another has runs on both sides",
    )
