"""The table model every table the two faces show is built in, and its shaping.

A `TableData` is column specs plus rows of `Cell`s (text, a Rich style string, a sort
key); a `Curve` (views/curves.py) is labelled series of numbers with a marker each.
Neither needs Rich or Textual: `views.render` turns them into Rich tables for the CLI,
`tui.grid` into DataTables for the console, and `views.pictures.plot` draws curves for
both. The tables themselves are built by subject: views/run_tables.py (experiments, runs,
the queue), diff_tables.py, report_tables.py, search_tables.py.

How a cell looks is decided from the data's own fields (a change's `changed`, a figure's
kind, a run's status), never from the text of a label.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from mnist_tui.data.sources import SHORT
from mnist_tui.status import RunStatus
from mnist_tui.views.visible import visible

if TYPE_CHECKING:
    from mnist_tui.runs.record import RunInfo

Justify = Literal["left", "center", "right"]

STATUS_STYLE: dict[str, str] = {
    RunStatus.COMPLETED: "green",
    RunStatus.RUNNING: "cyan",
    RunStatus.QUEUED: "blue",
    RunStatus.FAILED: "red",
    RunStatus.KILLED: "yellow",
    RunStatus.INTERRUPTED: "magenta",
    RunStatus.DAMAGED: "bold red",
}

TRIAL_STYLE = {"complete": "green", "running": "cyan", "pruned": "yellow", "fail": "red"}

DATASET_SHORT = SHORT  # kept for callers that import it

MARK = "●"  # a marked row in the console


@dataclass(frozen=True)
class Column:
    header: str
    justify: Justify = "left"
    keep: bool = False  # ids and names: never dropped, never cut
    drop: int = 0  # when the table is too wide, higher ranks go first (0: never)


@dataclass(frozen=True)
class Cell:
    text: str
    style: str = ""  # a Rich style string ("green", "bold red", "dim")
    sort: float | None = None  # numeric sort key where the text is not one

    def __post_init__(self) -> None:
        # every table of both faces is made of cells: stored text (a note, a tag, an
        # override) never reaches a terminal with its control characters live
        object.__setattr__(self, "text", visible(self.text))


@dataclass(frozen=True)
class Row:
    key: str  # stable identity: experiment name, run id, dotted key
    cells: tuple[Cell, ...]
    search: str = ""  # what the console's filter matches (defaults to the cells' text)

    def matches(self, text: str) -> bool:
        hay = self.search or " ".join(c.text for c in self.cells)
        return text.lower() in hay.lower()


@dataclass
class TableData:
    title: str
    columns: list[Column]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)  # dim lines under the table
    empty: str = ""  # said instead of an empty table

    def __post_init__(self) -> None:
        self.title = visible(self.title)
        self.notes = [visible(n, multiline=True) for n in self.notes]
        self.empty = visible(self.empty, multiline=True)

    def column_index(self, header: str) -> int:
        return next(i for i, c in enumerate(self.columns) if c.header == header)


def cell(text: object, style: str = "", sort: float | None = None) -> Cell:
    return Cell(str(text), style, sort)


def num_cell(x: float | None, text: str, style: str = "") -> Cell:
    return Cell(text, style, x)


def status_cell(status: str | None) -> Cell:
    """A run status in its colour; None (no run yet) is an empty cell."""
    return Cell(status or "", STATUS_STYLE.get(status or "", ""))


def shown_status(r: RunInfo) -> RunStatus:
    """The status as views show it: a running run that was asked to stop says so at
    once ("stopping"), before its trainer has seen the request and ended."""
    status = r.status
    if status == RunStatus.RUNNING and r.stop_requested:
        return RunStatus.STOPPING
    return status


def eta_seconds(
    summary: Mapping[str, Any], now: float, epoch_seconds: Sequence[float] = ()
) -> float | None:
    """Seconds left of a running run, moving with every step the trainer reports: from
    the mean epoch time when epochs are done, else from the time since it started."""
    total = summary.get("epochs")
    if not isinstance(total, int):
        return None
    done = summary.get("epochs_done") or 0
    steps, step = summary.get("steps"), summary.get("step")
    fraction = 0.0
    if steps and isinstance(step, int) and (summary.get("epoch_in_progress") or 0) > done:
        fraction = min(step / steps, 1.0)
    progress = done + fraction
    if progress <= 0:
        return None
    if epoch_seconds:
        per = sum(epoch_seconds) / len(epoch_seconds)
        return max(0.0, per * (total - progress))
    started = summary.get("started")
    if not isinstance(started, int | float):
        return None
    return max(0.0, (now - started) / progress * (total - progress))


# ----------------------------------------------------------------------------- shaping


def widths(data: TableData) -> list[int]:
    """Each column's natural width: its longest cell or header."""
    out = [len(c.header) for c in data.columns]
    for r in data.rows:
        for i, c in enumerate(r.cells):
            out[i] = max(out[i], len(c.text))
    return out


def fit(data: TableData, width: int, padding: int = 2) -> TableData:
    """Drop columns (highest `drop` first, then rightmost) until the table fits `width`.

    Columns marked `keep` and those with `drop` 0 stay, so an id or a name is never cut;
    `padding` is what the renderer adds around each column.
    """
    cols = list(range(len(data.columns)))
    natural = widths(data)

    def total() -> int:
        return sum(natural[i] + padding for i in cols)

    droppable = sorted(
        (i for i in cols if data.columns[i].drop and not data.columns[i].keep),
        key=lambda i: (-data.columns[i].drop, -i),
    )
    for i in droppable:
        if total() <= width:
            break
        cols.remove(i)
    out = data if len(cols) == len(data.columns) else select_columns(data, cols)
    return _shorten_text(out, width, padding) if total() > width else out


SHORTEST = 8  # a text column is never shortened below this


def abbreviate(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _shorten_text(data: TableData, width: int, padding: int) -> TableData:
    """Still too wide with every droppable column gone: shorten the widest left-aligned
    text columns (labels, keys, overrides) with an ellipsis. Numbers (right-aligned) and
    kept columns are never cut: a cut number reads as another number."""
    natural = widths(data)
    over = sum(w + padding for w in natural) - width
    text_cols = sorted(
        (i for i, c in enumerate(data.columns) if not c.keep and c.justify == "left"),
        key=lambda i: -natural[i],
    )
    limit = list(natural)
    for i in text_cols:
        if over <= 0:
            break
        cut = min(over, natural[i] - max(SHORTEST, len(data.columns[i].header)))
        if cut > 0:
            limit[i] -= cut
            over -= cut
    if limit == natural:
        return data
    return replace(
        data,
        rows=[
            replace(
                r,
                cells=tuple(
                    replace(c, text=abbreviate(c.text, limit[i])) if len(c.text) > limit[i] else c
                    for i, c in enumerate(r.cells)
                ),
            )
            for r in data.rows
        ],
    )


def select_columns(data: TableData, keep: Sequence[int]) -> TableData:
    return replace(
        data,
        columns=[data.columns[i] for i in keep],
        rows=[replace(r, cells=tuple(r.cells[i] for i in keep)) for r in data.rows],
    )


def without(data: TableData, *headers: str) -> TableData:
    return select_columns(data, [i for i, c in enumerate(data.columns) if c.header not in headers])


def filtered(data: TableData, text: str) -> TableData:
    if not text:
        return data
    return replace(data, rows=[r for r in data.rows if r.matches(text)])


def only_keys(data: TableData, keys: Collection[str]) -> TableData:
    """The rows whose key is in `keys` (a filter decided elsewhere, e.g. by an expression)."""
    return replace(data, rows=[r for r in data.rows if r.key in keys])


def sorted_by(data: TableData, index: int, reverse: bool = False) -> TableData:
    """Numbers largest first, then text A-Z, empty cells last; `reverse`: numbers
    smallest first, then text Z-A, empty cells still last."""
    sign = 1.0 if reverse else -1.0

    def key(r: Row) -> tuple[int, float, str]:
        c = r.cells[index]
        if c.sort is not None:
            return (0, sign * c.sort, "")
        if not c.text or c.text == "—":
            return (2, 0.0, "")
        return (1, 0.0, c.text.lower())

    rows = sorted(data.rows, key=key)
    if reverse:  # text Z-A within its block; numbers and empties keep their order
        texts = [r for r in rows if key(r)[0] == 1]
        texts.reverse()
        rows = [r for r in rows if key(r)[0] == 0] + texts + [r for r in rows if key(r)[0] == 2]
    return replace(data, rows=rows)


def with_marks(data: TableData, marked: Collection[str]) -> TableData:
    """A first column showing which rows are marked (console only). Two shared cells and
    plain Row calls: the runs tab of 100,000 runs takes this on every redraw."""
    cells = {True: Cell(MARK, "bold"), False: Cell("", "bold")}
    return replace(
        data,
        columns=[Column(" "), *data.columns],
        rows=[Row(r.key, (cells[r.key in marked], *r.cells), r.search) for r in data.rows],
    )
