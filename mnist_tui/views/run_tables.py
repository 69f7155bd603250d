"""The tables of experiments, runs and the queue (views/tables.py holds the table model)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mnist_tui.data.sources import short_name
from mnist_tui.status import RunStatus
from mnist_tui.views import fmt
from mnist_tui.views.tables import (
    Cell,
    Column,
    Row,
    TableData,
    abbreviate,
    eta_seconds,
    num_cell,
    shown_status,
    status_cell,
    without,
)
from mnist_tui.views.visible import visible

if TYPE_CHECKING:
    from mnist_tui.config.spec import ExperimentSpec
    from mnist_tui.runs.record import RunInfo
    from mnist_tui.studies.catalog import ExperimentRow


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
                    num_cell(r.parameters, fmt.count(r.parameters)),
                    num_cell(spec.train.epochs, str(spec.train.epochs)),
                    num_cell(ref_acc, fmt.pct(ref_acc)),
                    num_cell(best_acc, fmt.pct(best_acc)),
                    num_cell(r.count, _runs_text(r)),
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
    from mnist_tui.views.report_tables import variants_text

    return variants_text(r.count, r.other_variants) if r.runs else ""


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
    done = r.epochs_done
    total = r.summary.get("epochs", "?")
    context = run_context(r)
    latest, best, duration, started = (
        r.latest("test_acc"),
        r.best("test_acc"),
        r.duration(),
        _started(r),
    )
    return Row(
        r.id,
        (
            Cell(r.id),
            Cell(r.experiment),
            status_cell(shown_status(r)),
            num_cell(r.seed, "—" if r.seed is None else str(r.seed)),
            num_cell(done, f"{done}/{total}"),
            num_cell(latest, fmt.pct(latest)),
            num_cell(best, fmt.pct(best)),
            num_cell(duration, fmt.seconds(duration)),
            num_cell(started, fmt.ago(started)),
            Cell(abbreviate(context, 40), "dim"),
        ),
        f"{r.id} {r.experiment} {r.status} {context}",
    )


def _started(r: RunInfo) -> float | None:
    """When training started: a queued run has not (its queueing time is not a start)."""
    started = r.started
    return float(started) if isinstance(started, int | float) else None


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
        rows.append(Row(row.key, (num_cell(-i, str(i)), *row.cells), row.search))
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
                num_cell(a, fmt.pct(a)),
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
    if status == RunStatus.RUNNING:
        left = eta_seconds(s, time.time(), [r["seconds"] for r in rows if "seconds" in r])
        eta = f"  ETA {fmt.seconds(left)}" if left is not None else ""
    lr = f"  lr {rows[-1]['lr']:.3g}" if rows else ""
    at = f"epoch {done}/{total}"
    if (
        status == RunStatus.RUNNING
        and s.get("steps")
        and (s.get("epoch_in_progress") or 0) > len(rows)
    ):
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
        done = info.epochs_done if info else 0
        total = info.summary.get("epochs", "?") if info else "?"
        eta = "—"
        if info is not None and status in (RunStatus.RUNNING, RunStatus.STOPPING):
            summary = dict(info.summary)
            summary.setdefault("started", e.started)
            left = eta_seconds(summary, now)
            eta = fmt.seconds(left) if left is not None else "—"
        progress = f"{done}/{total}"
        if (
            info is not None
            and status in (RunStatus.RUNNING, RunStatus.STOPPING)
            and info.summary.get("steps")
        ):
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
