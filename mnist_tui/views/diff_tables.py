"""The tables of `diff`: changed keys and compared figures, each styled by its kind."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from mnist_tui.views import fmt
from mnist_tui.views.tables import (
    Cell,
    Column,
    Row,
    TableData,
    num_cell,
)

if TYPE_CHECKING:
    from mnist_tui.studies.catalog import Subject
    from mnist_tui.studies.diff import Change, FigureDelta


# ----------------------------------------------------------------------------- diff

Kind = Literal["accuracy", "loss", "epoch", "number"]

# what each compared figure is, by the metric it reads (see studies.diff.RUN_FIGURES)
METRIC_KIND: dict[str, Kind] = {
    "test_acc": "accuracy",
    "val_acc": "accuracy",
    "train_acc": "accuracy",
    "test_loss": "loss",
    "val_loss": "loss",
    "train_loss": "loss",
}


def figure_kind(d: FigureDelta) -> Kind:
    """A figure's kind: its own `kind` field where it has one, else by the metric it reads."""
    own = getattr(d, "kind", None)
    if own in ("accuracy", "loss", "epoch", "number"):
        return own  # type: ignore[no-any-return]
    from mnist_tui.studies.diff import RUN_FIGURES

    by_label = {label: key for label, _where, key, _hib in RUN_FIGURES}
    return METRIC_KIND.get(by_label.get(d.label, ""), "number")


def show_value(kind: Kind, v: float | None) -> str:
    if v is None:
        return "—"
    if kind == "accuracy":
        return fmt.pct(v)
    if kind == "epoch":
        return str(int(v))
    return fmt.num(v)


def show_delta(kind: Kind, d: float | None) -> str:
    if d is None:
        return "—"
    if kind == "accuracy":
        return fmt.pp(d)
    if kind == "epoch":
        return f"{int(d):+d}"
    return f"{d:+.4f}"


def _absent(v: Any) -> str:
    from mnist_tui.studies.diff import MISSING

    return "(absent)" if v is MISSING else fmt.value(v)


def diff_keys_table(a_label: str, b_label: str, changes: Sequence[Change]) -> TableData:
    """Definition keys side by side: changed ones bold (old red, new green), others dim.

    When unchanged keys are shown too (`--all`), a first column marks the changed ones
    with ≠, so they stay distinguishable without colour (piped, `--md`, monochrome)."""
    mixed = any(not c.changed for c in changes)
    rows = []
    for c in changes:
        cells: tuple[Cell, ...]
        if c.changed:
            cells = (Cell(c.key, "bold"), Cell(_absent(c.a), "red"), Cell(_absent(c.b), "green"))
        else:
            cells = (Cell(c.key, "dim"), Cell(_absent(c.a), "dim"), Cell(_absent(c.b), "dim"))
        if mixed:
            cells = (Cell("≠", "bold yellow") if c.changed else Cell("=", "dim"), *cells)
        rows.append(Row(c.key, cells))
    columns = [Column("key", keep=True), Column(a_label), Column(b_label)]
    notes = []
    if mixed:
        columns.insert(0, Column(" "))
        changed = sum(1 for c in changes if c.changed)
        notes.append(f"≠ changed ({changed}), = the same ({len(changes) - changed})")
    return TableData("Definition", columns, rows, notes=notes, empty="definitions are identical")


@dataclass(frozen=True)
class Delta:
    """One compared figure, already classified (what `FigureDelta` is for the views)."""

    label: str
    kind: Kind
    a: float | None
    b: float | None
    higher_is_better: bool

    @property
    def delta(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a


def deltas_of(
    deltas: Iterable[FigureDelta], best_epochs: tuple[int | None, int | None] | None = None
) -> list[Delta]:
    out = [Delta(d.label, figure_kind(d), d.a, d.b, d.higher_is_better) for d in deltas]
    if best_epochs is not None and any(e is not None for e in best_epochs):
        a, b = best_epochs
        out.append(
            Delta(
                "best epoch",
                "epoch",
                None if a is None else float(a),
                None if b is None else float(b),
                False,
            )
        )
    return out


def delta_table(a_label: str, b_label: str, deltas: Sequence[Delta], title: str) -> TableData:
    """Headline figures of two sides and b - a, green where b is better, red where worse."""
    rows = []
    for d in deltas:
        delta = d.delta
        style = ""
        if delta and d.kind != "epoch":
            style = "green" if (delta > 0) == d.higher_is_better else "red"
        rows.append(
            Row(
                d.label,
                (
                    Cell(d.label),
                    num_cell(d.a, show_value(d.kind, d.a)),
                    num_cell(d.b, show_value(d.kind, d.b)),
                    num_cell(delta, show_delta(d.kind, delta), style),
                ),
            )
        )
    columns = [
        Column("figure", keep=True),
        Column(a_label, "right"),
        Column(b_label, "right"),
        Column("Δ", "right"),
    ]
    return TableData(title, columns, rows, empty="no figures to compare")


def diff_tables(
    a: Subject, b: Subject, changes: Sequence[Change], deltas: Iterable[FigureDelta]
) -> tuple[TableData, TableData]:
    """The definition and the figures of a diff (`diff`, `diff --md` and the console).

    An experiment's figures are the ones its study reported, a run's are reproduced
    here: the figure columns say which."""
    epochs = (_best_epoch(a), _best_epoch(b)) if a.run or b.run else None
    kinds = {s.kind for s in (a, b)}
    if kinds == {"experiment"}:
        title = "Reported results"
    elif "experiment" not in kinds:  # runs, or the mean of a variant's or group's runs
        title = "Reproduced results"
    else:
        title = "Results: reported (experiment) vs reproduced (run)"
    return (
        diff_keys_table(a.label, b.label, changes),
        delta_table(
            f"{a.label} {_figure_origin(a)}",
            f"{b.label} {_figure_origin(b)}",
            deltas_of(deltas, epochs),
            title,
        ),
    )


def _figure_origin(s: Subject) -> str:
    if s.selection is not None:
        return "mean reproduced"
    return "reproduced" if s.run is not None else "reported"


def _best_epoch(s: Subject) -> int | None:
    e = s.run.summary.get("best_epoch") if s.run is not None else None
    return e if isinstance(e, int) else None
