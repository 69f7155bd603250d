"""Every table and curve the two faces show, built once as plain data.

A `TableData` is column specs plus rows of `Cell`s (text, a Rich style string, a sort
key); a `Curve` is labelled series of numbers with a marker each. Neither needs Rich or
Textual: `views.render` turns them into Rich tables for the CLI, `tui.grid` into
DataTables for the console, and `views.pictures.plot` draws curves for both.

How a cell looks is decided here from the data's own fields (a change's `changed`, a
figure's kind, a run's status), never from the text of a label.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from mnist_tui.data.sources import SHORT, short_name
from mnist_tui.views import fmt
from mnist_tui.views.visible import visible

if TYPE_CHECKING:
    from mnist_tui.config.spec import ExperimentSpec
    from mnist_tui.runs.store import RunInfo
    from mnist_tui.studies.catalog import ExperimentRow, Subject
    from mnist_tui.studies.diff import Change, FigureDelta
    from mnist_tui.studies.report import ReportRow

Justify = Literal["left", "center", "right"]

STATUS_STYLE = {
    "completed": "green",
    "running": "cyan",
    "queued": "blue",
    "failed": "red",
    "killed": "yellow",
    "interrupted": "magenta",
    "damaged": "bold red",
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


def _num(x: float | None, text: str, style: str = "") -> Cell:
    return Cell(text, style, x)


def status_cell(status: str | None) -> Cell:
    """A run status in its colour; None (no run yet) is an empty cell."""
    return Cell(status or "", STATUS_STYLE.get(status or "", ""))


def shown_status(r: RunInfo) -> str:
    """The status as views show it: a running run that was asked to stop says so at
    once ("stopping"), before its trainer has seen the request and ended."""
    status = r.status
    if status == "running" and r.stop_requested:
        return "stopping"
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
                    replace(c, text=_abbreviate(c.text, limit[i])) if len(c.text) > limit[i] else c
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
    """A first column showing which rows are marked (console only)."""
    return replace(
        data,
        columns=[Column(" "), *data.columns],
        rows=[
            replace(r, cells=(Cell(MARK if r.key in marked else "", "bold"), *r.cells))
            for r in data.rows
        ],
    )


# ----------------------------------------------------------------------------- experiments


def experiments_table(rows: Sequence[ExperimentRow]) -> TableData:
    columns = [
        Column("name", keep=True),
        Column("data", drop=3),
        Column("model", drop=2),
        Column("params", "right", drop=5),
        Column("epochs", "right", drop=6),
        Column("reported", "right", drop=1),
        Column("best run", "right", drop=1),
        Column("runs", "right", drop=4),
        Column("latest", drop=2),
    ]
    out = []
    mixed = len({getattr(r, "origin", "shipped") for r in rows}) > 1
    for r in rows:
        spec = r.spec
        if spec is None:
            blank = [Cell("")] * 7
            out.append(Row(r.name, (_name_cell(r, mixed), Cell("invalid", "red"), *blank), r.name))
            continue
        best = r.best_run
        best_acc = best.final("test_acc") if best else None
        ref_acc = spec.reference.test_accuracy
        out.append(
            Row(
                r.name,
                (
                    _name_cell(r, mixed),
                    Cell(short_name(spec.data.dataset)),
                    Cell(spec.model.name),
                    _num(r.parameters, fmt.count(r.parameters)),
                    _num(spec.train.epochs, str(spec.train.epochs)),
                    _num(ref_acc, fmt.pct(ref_acc)),
                    _num(best_acc, fmt.pct(best_acc)),
                    _num(len(r.runs), _runs_text(r)),
                    status_cell(r.latest.status if r.latest else None),
                ),
                f"{r.name} {spec.data.dataset} {spec.model.name}",
            )
        )
    title = f"{len(rows)} experiments"
    yours = sum(1 for r in rows if getattr(r, "origin", "shipped") == "user")
    shadowing = sum(1 for r in rows if getattr(r, "shadows", False))
    if yours and yours < len(rows):  # only a mixed listing needs telling apart
        title += f" · {yours} yours (bold)"
    if shadowing:
        title += f", {shadowing} shadowing a shipped one (yellow)"
    return TableData(
        title,
        columns,
        out,
        empty="no experiments found: add a TOML definition to the experiments folder, "
        "or point --experiments-dir (MNIST_TUI_EXPERIMENTS) at one",
    )


def _runs_text(r: ExperimentRow) -> str:
    """All runs, and how many other variants (definitions) they hold besides the file's."""
    from mnist_tui.studies.report import variants_text

    return variants_text(len(r.runs), r.other_variants) if r.runs else ""


def _name_cell(r: ExperimentRow, mixed: bool) -> Cell:
    """Beside shipped ones, a user's own experiment in bold; one that hides a shipped
    experiment of the same name in yellow."""
    if getattr(r, "shadows", False):
        return Cell(r.name, "bold yellow")
    return Cell(r.name, "bold" if mixed and getattr(r, "origin", "shipped") == "user" else "")


def spec_table(spec: ExperimentSpec) -> TableData:
    """The resolved definition; each key says where its value comes from: this file (or
    an override), a parent through `extends` (dimmed), or the schema's default (dimmed)."""
    from mnist_tui.config.spec import flatten

    rows = []
    for key, value in flatten(spec.definition()).items():
        if key in spec.inherited:
            origin = "inherited"
        elif key in spec.set_keys or not spec.set_keys:  # built in code: nothing to tell
            origin = "set here"
        else:
            origin = "default"
        style = "" if origin == "set here" else "dim"
        rows.append(
            Row(
                key,
                (
                    Cell(key, style or "bold"),
                    Cell(fmt.value(value), style),
                    Cell(origin, "dim"),
                ),
            )
        )
    return TableData(
        f"{spec.name}: resolved definition",
        [Column("key", keep=True), Column("value"), Column("from", drop=1)],
        rows,
    )


def reported_line(spec: ExperimentSpec) -> str:
    """The study's own figures, or "" when the definition has none."""
    ref = spec.reference
    if ref.test_accuracy is None and ref.test_loss is None:
        return ""
    return visible(
        f"reported ({ref.at} epoch): test acc {fmt.pct(ref.test_accuracy)}, "
        f"test loss {fmt.num(ref.test_loss)}"
        + (f", hardest class {ref.hardest_class}" if ref.hardest_class else "")
    )


# ----------------------------------------------------------------------------- runs


SEED_AND_FOLD_KEYS = ("train.seed=", "data.folds=", "data.fold=")


def run_context(r: RunInfo, overrides: bool = True) -> str:
    """Why a run exists besides its experiment: fold or trial, group, and its overrides
    (the seed and fold keys are said by their own columns and words)."""
    s = r.summary
    parts = []
    if isinstance(s.get("fold"), int):
        parts.append(f"fold {s['fold']}/{s.get('folds', '?')}")
    if isinstance(s.get("trial"), int):
        parts.append(f"trial {s['trial']}")
    if overrides:
        kept = [
            str(o) for o in s.get("overrides") or () if not str(o).startswith(SEED_AND_FOLD_KEYS)
        ]
        parts += kept
    return visible("  ".join(parts))


NO_RUNS = "no runs yet: press a on an experiment in the console, or `mnist-tui run EXPERIMENT`"
NO_QUEUE = (
    "nothing queued or running: press a on an experiment in the console, or "
    "`mnist-tui queue add EXPERIMENT`"
)

RUN_COLUMNS = [
    Column("#", "right", drop=7),
    Column("id", keep=True),
    Column("experiment", keep=True),
    Column("status"),
    Column("seed", "right", drop=6),
    Column("epochs", "right", drop=3),
    Column("test acc", "right", drop=1),
    Column("best acc", "right", drop=2),
    Column("duration", "right", drop=4),
    Column("started", drop=5),
    Column("overrides", drop=8),  # the first to go when narrow; `show RUN` says them all
]


def run_row(r: RunInfo) -> Row:
    """One run's row of the runs table, without its recency number (see `runs_table`)."""
    done = r.summary.get("epochs_done", 0)
    total = r.summary.get("epochs", "?")
    return Row(
        r.id,
        (
            Cell(r.id),
            Cell(r.experiment),
            status_cell(shown_status(r)),
            _num(r.seed, "—" if r.seed is None else str(r.seed)),
            _num(done, f"{done}/{total}"),
            _num(r.latest("test_acc"), fmt.pct(r.latest("test_acc"))),
            _num(r.best("test_acc"), fmt.pct(r.best("test_acc"))),
            _num(r.duration(), fmt.seconds(r.duration())),
            _num(_started(r), fmt.ago(_started(r))),
            Cell(_abbreviate(run_context(r), 40), "dim"),
        ),
        f"{r.id} {r.experiment} {r.status} {run_context(r)}",
    )


def _started(r: RunInfo) -> float | None:
    """When training started: a queued run has not (its queueing time is not a start)."""
    started = r.summary.get("started")
    return float(started) if isinstance(started, int | float) else None


def _abbreviate(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def runs_table(
    infos: Sequence[RunInfo],
    *,
    start: int = 1,
    show_experiment: bool = True,
    row_of: Callable[[RunInfo], Row] = run_row,
) -> TableData:
    """Runs with their recency number (`start` is the first row's, for paged listings).

    `row_of` builds one run's row; a caller that keeps rows of unchanged runs passes its
    cache here."""
    rows = []
    for i, r in enumerate(infos, start):
        row = row_of(r)
        rows.append(replace(row, cells=(_num(-i, str(i)), *row.cells)))
    data = TableData(fmt.plural(len(infos), "run"), list(RUN_COLUMNS), rows, empty=NO_RUNS)
    return data if show_experiment else without(data, "experiment")


def run_summary_table(results: Sequence[tuple[ExperimentSpec, RunInfo]]) -> TableData:
    """Reported vs reproduced after `run`/`resume`, compact enough for 80 columns."""
    columns = [
        Column("experiment", keep=True),
        Column("run", keep=True),
        Column("status", drop=1),  # whole columns go at 80, not letters of each
        Column("reported", "right"),
        Column("final", "right"),
        Column("best (ep)", "right"),
        Column("Δ pp", "right"),
        Column("time", "right", drop=2),
    ]
    rows, notes = [], []
    for spec, info in results:
        ref = spec.reference
        reproduced = info.final("test_acc") if ref.at == "final" else info.best("test_acc")
        delta = None
        if ref.test_accuracy is not None and reproduced is not None:
            delta = reproduced - ref.test_accuracy
        best_epoch = info.summary.get("best_epoch")
        rows.append(
            Row(
                info.id,
                (
                    Cell(spec.name),
                    Cell(info.id),
                    status_cell(info.status),
                    Cell(fmt.pct(ref.test_accuracy) + ("ᵇ" if ref.at == "best" else "")),
                    Cell(fmt.pct(info.final("test_acc"))),
                    Cell(f"{fmt.pct(info.best('test_acc'))} ({best_epoch})" if best_epoch else "—"),
                    Cell("—" if delta is None else f"{100 * delta:+.2f}"),
                    Cell(fmt.seconds(info.summary.get("wall_seconds"))),
                ),
            )
        )
        if ref.hardest_class:
            notes.append(
                f"{spec.name}: hardest class {info.summary.get('hardest_class', '—')} "
                f"(reported {ref.hardest_class})"
            )
    if any(spec.reference.at == "best" for spec, _ in results):
        notes.append("ᵇ reported at the study's best epoch; Δ then compares best with best")
    return TableData("Reported vs reproduced", columns, rows, notes)


def epochs_table(rows: Sequence[Mapping[str, Any]]) -> TableData:
    """One row per epoch; the validation columns only when the run kept a validation set."""
    has_val = any(r.get("val_loss") is not None for r in rows)
    headers = ["epoch", "train loss", "train acc"]
    if has_val:
        headers += ["val loss", "val acc"]
    headers += ["test loss", "test acc", "lr", "seconds", "img/s"]
    drops = {"lr": 2, "seconds": 3, "img/s": 4, "train loss": 1, "val loss": 1}
    columns = [Column(h, "right", keep=h == "epoch", drop=drops.get(h, 0)) for h in headers]
    out = []
    for r in rows:
        cells = [
            Cell(str(r["epoch"])),
            Cell(fmt.num(r["train_loss"])),
            Cell(fmt.pct(r["train_acc"])),
        ]
        if has_val:
            cells += [Cell(fmt.num(r.get("val_loss"))), Cell(fmt.pct(r.get("val_acc")))]
        cells += [
            Cell(fmt.num(r["test_loss"])),
            Cell(fmt.pct(r["test_acc"])),
            Cell(f"{r['lr']:.3g}"),
            Cell(f"{r['seconds']:.1f}"),
            Cell(f"{r['images_per_s']:,.0f}"),
        ]
        out.append(Row(str(r["epoch"]), tuple(cells)))
    return TableData("Per epoch", columns, out, empty="no epochs yet")


def per_class_table(classes: Sequence[str], acc: Sequence[float], bar: int = 30) -> TableData:
    """Per-class test accuracy with a bar each; the hardest class in bold red.

    The bars span the data's range, not 0-100%: at 90-99% a 3-point gap between two
    classes would be one character on a 0-100% scale. The header says where they start."""
    worst = min(range(len(acc)), key=acc.__getitem__) if acc else -1
    low, high = bar_range(acc)
    rows = [
        Row(
            c,
            (
                Cell(c, "bold red" if i == worst else ""),
                _num(a, fmt.pct(a)),
                Cell("▏" + "█" * round((a - low) / (high - low) * bar), "cyan"),
            ),
        )
        for i, (c, a) in enumerate(zip(classes, acc, strict=False))
    ]
    # the bars' scale in their header: the console's grid shows no notes
    scale = f"bar: {fmt.pct(low, 0)} to {fmt.pct(high, 0)}" if acc else ""
    return TableData(
        "Per-class test accuracy",
        [Column("class", keep=True), Column("accuracy", "right"), Column(scale, drop=1)],
        rows,
        empty="no per-class figures yet",
    )


def bar_range(values: Sequence[float]) -> tuple[float, float]:
    """Round bounds (whole percents, a 5-point step) around the values, never empty."""
    if not values:
        return 0.0, 1.0
    low = math.floor(min(values) * 20) / 20  # down to a multiple of 5%
    high = math.ceil(max(values) * 100) / 100
    if high - low < 0.05:
        low = max(0.0, high - 0.05)
    if high <= low:
        high = low + 0.05
    return low, high


def class_names(summary: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The run's class names, or 0..n-1 when the summary has none."""
    classes = list(summary.get("classes") or [])
    if not classes:
        per_class = summary.get("per_class_acc") or (
            rows[-1].get("test_per_class") if rows else None
        )
        classes = [str(i) for i in range(len(per_class or []) or 10)]
    return classes


def run_header(
    run: RunInfo, rows: Sequence[Mapping[str, Any]], train_loss: float | None = None
) -> str:
    """Status lines of a run: epoch, ETA, lr; its overrides and group; its headline
    figures, seed and device."""
    s = run.summary
    status = run.status
    done, total = s.get("epochs_done", len(rows)), s.get("epochs", "?")
    eta = ""
    if status == "running":
        left = eta_seconds(s, time.time(), [r["seconds"] for r in rows if "seconds" in r])
        eta = f"  ETA {fmt.seconds(left)}" if left is not None else ""
    lr = f"  lr {rows[-1]['lr']:.3g}" if rows else ""
    at = f"epoch {done}/{total}"
    if status == "running" and s.get("steps") and s.get("epoch_in_progress", 0) > len(rows):
        # the epoch under way and its step, not the last one done
        at = f"epoch {s['epoch_in_progress']}/{total} step {s.get('step')}/{s['steps']}"
    last = rows[-1] if rows else {}
    best_row = next((r for r in rows if r["epoch"] == s.get("best_epoch")), None)
    best_acc = best_row["test_acc"] if best_row else run.best("test_acc")
    context = run_context(run)
    group = f"  group {s['group']}" if s.get("group") else ""
    # the parts that change as it trains first, so that a narrow screen cuts the seed
    # and device at the end of the line, and every line keeps its place (no rewrap)
    return visible(
        f"{at}{eta}{lr}"
        + (f"\n{context}{group}".rstrip() if context or group else "")
        + f"\ntest acc {fmt.pct(last.get('test_acc'))}  best {fmt.pct(best_acc)}"
        f" (epoch {s.get('best_epoch', '—')})"
        f"  train loss {fmt.num(train_loss if train_loss is not None else last.get('train_loss'))}"
        f"  seed {s.get('seed')}  {s.get('device', '')}".rstrip(),
        multiline=True,
    )


# ----------------------------------------------------------------------------- queue


@dataclass(frozen=True)
class QueuedRun:
    """One line of the queue, whatever keeps the queue: its run (None when the run
    directory cannot be read), the overrides it was queued with, when it started."""

    run_id: str
    experiment: str
    overrides: tuple[str, ...]
    started: float | None
    info: RunInfo | None


def queue_table(entries: Sequence[QueuedRun], now: float | None = None) -> TableData:
    """Queued and running runs in order, with progress and an ETA for running ones."""
    now = time.time() if now is None else now
    rows = []
    for i, e in enumerate(entries, 1):
        info = e.info
        status = shown_status(info) if info else "?"
        done = info.summary.get("epochs_done", 0) if info else 0
        total = info.summary.get("epochs", "?") if info else "?"
        eta = "—"
        if info is not None and status in ("running", "stopping"):
            summary = dict(info.summary)
            summary.setdefault("started", e.started)
            left = eta_seconds(summary, now)
            eta = fmt.seconds(left) if left is not None else "—"
        progress = f"{done}/{total}"
        if info is not None and status in ("running", "stopping") and info.summary.get("steps"):
            progress += f" · step {info.summary.get('step')}/{info.summary['steps']}"
        rows.append(
            Row(
                e.run_id,
                (
                    Cell(str(i)),
                    Cell(e.run_id),
                    Cell(e.experiment),
                    Cell(" ".join(e.overrides)),
                    status_cell(status),
                    Cell(progress),
                    Cell(eta),
                ),
            )
        )
    columns = [
        Column("#", "right", drop=4),
        Column("run", keep=True),
        Column("experiment", keep=True),
        Column("overrides", drop=1),
        Column("status"),
        Column("progress", drop=3),
        Column("ETA", "right", drop=2),
    ]
    return TableData(f"{len(entries)} queued or running", columns, rows, empty=NO_QUEUE)


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
                    _num(d.a, show_value(d.kind, d.a)),
                    _num(d.b, show_value(d.kind, d.b)),
                    _num(delta, show_delta(d.kind, delta), style),
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
    title = {
        frozenset({"experiment"}): "Reported results",
        frozenset({"run"}): "Reproduced results",
    }.get(frozenset(kinds), "Results: reported (experiment) vs reproduced (run)")
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
    return "reproduced" if s.run is not None else "reported"


def _best_epoch(s: Subject) -> int | None:
    e = s.run.summary.get("best_epoch") if s.run is not None else None
    return e if isinstance(e, int) else None


# ----------------------------------------------------------------------------- report


def report_table(rows: Sequence[ReportRow]) -> TableData:
    """Reported vs reproduced, mean ± std over seeds (`mnist-tui report` and the console)."""
    from mnist_tui.studies.report import report_notes, runs_text

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
                    _num(
                        r.reported_acc,
                        fmt.pct(r.reported_acc) + ("ᵇ" if r.reported_at == "best" else ""),
                    ),
                    _num(r.final_acc.mean if r.final_acc else None, _stat(r.final_acc)),
                    _num(r.best_acc.mean if r.best_acc else None, _stat(r.best_acc)),
                    delta,
                    Cell(r.ci_text(), "" if r.ci_low is not None else "dim"),
                    inside_cell[r.inside],
                    _num(r.runs, runs_text(r) if r.runs or r.other_definition_runs else ""),
                    Cell(f"{r.reported_hardest}/{r.hardest or '—'}" if r.reported_hardest else ""),
                    _num(
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


def _stat(s: Any) -> str:
    return "—" if s is None else str(s.pct())


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
        _num(value, metric_text(metric, value)),
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
        Row(k, (Cell(k), _num(v, f"{v:.3f}"), Cell("█" * round(v * bar), "cyan")))
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
