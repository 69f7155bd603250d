"""Rich renderings for the CLI: progress, tables, run and experiment pages, diffs."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from mnist_tui.config.spec import ExperimentSpec
from mnist_tui.runs.store import RunInfo, RunStore
from mnist_tui.studies.catalog import ExperimentRow, Subject
from mnist_tui.studies.diff import MISSING, Change, FigureDelta
from mnist_tui.studies.report import OTHER_DEFINITION_NOTE, runs_text
from mnist_tui.train.events import BatchProgress, EpochEnded, Event, RunEnded, RunStarted
from mnist_tui.views import fmt
from mnist_tui.views.pictures import confusion_heatmap

STATUS_STYLE = {
    "completed": "green",
    "running": "cyan",
    "queued": "blue",
    "failed": "red",
    "killed": "yellow",
    "interrupted": "magenta",
}


DATASET_SHORT = {"mnist": "MNIST", "fashion_mnist": "Fashion"}


def status_text(status: str | None) -> Text:
    """A run status in its colour; None (no run yet) is an empty cell."""
    return Text(status or "", style=STATUS_STYLE.get(status or "", ""))


class RunProgress:
    """Epoch and batch progress bars driven by trainer events, plus one line per epoch."""

    def __init__(self, console: Console, enabled: bool = True) -> None:
        self.console = console
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=not enabled,  # bars only: epoch lines are printed either way
        )
        self.epoch_task: TaskID | None = None
        self.batch_task: TaskID | None = None
        self.epochs = 0

    def __enter__(self) -> RunProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)  # type: ignore[arg-type]

    def on_event(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.epochs = event.epochs
            self.console.print(
                f"[bold]{escape(event.experiment)}[/] run [cyan]{event.run_id}[/] on "
                f"{escape(event.device)}: {fmt.count(event.parameters)} parameters, "
                f"{fmt.count(event.train_size)} training images, {event.epochs} epochs",
                soft_wrap=True,  # one line per event in a log file, not cut at 80 columns
            )
            self.epoch_task = self.progress.add_task(
                "epochs", total=event.epochs, completed=event.start_epoch - 1
            )
            self.batch_task = self.progress.add_task(
                f"epoch {event.start_epoch}", total=event.steps_per_epoch
            )
        elif isinstance(event, BatchProgress) and self.batch_task is not None:
            self.progress.update(
                self.batch_task,
                completed=event.step,
                total=event.steps,
                description=f"epoch {event.epoch}",
            )
        elif isinstance(event, EpochEnded):
            m = event.metrics
            val = f"  val {m.val_loss:.4f} {fmt.pct(m.val_acc)}" if m.val_loss is not None else ""
            star = " *" if event.improved else ""
            self.console.print(
                f"epoch {m.epoch:>3}/{self.epochs}  train {m.train_loss:.4f} "
                f"{fmt.pct(m.train_acc)}{val}  test {m.test_loss:.4f} {fmt.pct(m.test_acc)}  "
                f"lr {m.lr:.3g}  {m.seconds:.1f}s  {m.images_per_s:,.0f} img/s{star}",
                highlight=False,
                soft_wrap=True,
            )
            if self.epoch_task is not None:
                self.progress.update(self.epoch_task, completed=m.epoch)
            if self.batch_task is not None:
                self.progress.reset(self.batch_task, description=f"epoch {m.epoch + 1}")
        elif isinstance(event, RunEnded) and event.status != "completed":
            self.console.print(f"[red]{event.status}[/]: {escape(event.reason)}")


def run_summary_table(results: list[tuple[ExperimentSpec, RunInfo]]) -> Group:
    """Reported vs reproduced, compact enough for an 80-column terminal."""
    t = Table(title="Reported vs reproduced", title_justify="left")
    for col in ("experiment", "run", "status", "reported", "final", "best (ep)", "Δ", "time"):
        t.add_column(col, justify="left" if col in ("experiment", "run", "status") else "right")
    notes: list[str] = []
    for spec, info in results:
        ref = spec.reference
        reproduced = info.final("test_acc") if ref.at == "final" else info.best("test_acc")
        delta = None
        if ref.test_accuracy is not None and reproduced is not None:
            delta = reproduced - ref.test_accuracy
        best_epoch = info.summary.get("best_epoch")
        t.add_row(
            spec.name,
            info.id,
            status_text(info.status),
            fmt.pct(ref.test_accuracy) + ("ᵇ" if ref.at == "best" else ""),
            fmt.pct(info.final("test_acc")),
            f"{fmt.pct(info.best('test_acc'))} ({best_epoch})" if best_epoch else "—",
            fmt.pp(delta),
            fmt.seconds(info.summary.get("wall_seconds")),
        )
        if ref.hardest_class:
            notes.append(
                f"{spec.name}: hardest class {info.summary.get('hardest_class', '—')} "
                f"(reported {ref.hardest_class})"
            )
    if any(spec.reference.at == "best" for spec, _ in results):
        notes.append("ᵇ reported at the study's best epoch; Δ then compares best with best")
    return Group(t, *[Text(n, style="dim") for n in notes])


def experiments_table(rows: list[ExperimentRow]) -> Table:
    t = Table(title=f"{len(rows)} experiments", title_justify="left")
    for col, just in (
        ("name", "left"),
        ("data", "left"),
        ("model", "left"),
        ("params", "right"),
        ("ep", "right"),
        ("reported", "right"),
        ("best run", "right"),
        ("runs", "right"),
        ("latest", "left"),
    ):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in rows:
        if r.spec is None:
            t.add_row(r.name, Text("invalid definition", style="red"), *[""] * 7)
            continue
        best = r.best_run
        t.add_row(
            r.name,
            DATASET_SHORT.get(r.spec.data.dataset, r.spec.data.dataset),
            r.spec.model.name,
            fmt.count(r.parameters),
            str(r.spec.train.epochs),
            fmt.pct(r.spec.reference.test_accuracy),
            fmt.pct(best.final("test_acc")) if best else "—",
            str(len(r.runs)) if r.runs else "",
            status_text(r.latest.status) if r.latest else Text(""),
        )
    return t


def runs_table(infos: list[RunInfo]) -> Table:
    t = Table(title=f"{len(infos)} runs", title_justify="left")
    for col, just in (
        ("#", "right"),
        ("id", "left"),
        ("experiment", "left"),
        ("status", "left"),
        ("seed", "right"),
        ("epochs", "right"),
        ("test acc", "right"),
        ("best acc", "right"),
        ("duration", "right"),
        ("started", "left"),
    ):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for i, r in enumerate(infos, 1):
        done = r.summary.get("epochs_done", 0)
        total = r.summary.get("epochs", "?")
        t.add_row(
            str(i),
            r.id,
            r.experiment,
            status_text(r.status),
            str(r.seed if r.seed is not None else "—"),
            f"{done}/{total}",
            fmt.pct(r.final("test_acc")),
            fmt.pct(r.best("test_acc")),
            fmt.seconds(r.duration()),
            fmt.ago(r.created),
        )
    return t


def spec_table(spec: ExperimentSpec) -> Table:
    """The resolved definition; keys inherited through `extends` are dimmed and marked."""
    from mnist_tui.config.spec import flatten

    t = Table(title=f"{spec.name}: resolved definition", title_justify="left", show_header=True)
    t.add_column("key")
    t.add_column("value")
    t.add_column("from")
    for key, value in flatten(spec.definition()).items():
        inherited = key in spec.inherited
        style = "dim" if inherited else ""
        t.add_row(
            Text(key, style=style),
            Text(fmt.value(value), style=style),
            Text("inherited" if inherited else "", style="dim"),
        )
    return t


def per_class_table(classes: list[str], acc: list[float]) -> Table:
    t = Table(title="Per-class test accuracy (final epoch)", title_justify="left")
    t.add_column("class")
    t.add_column("accuracy", justify="right")
    t.add_column("")
    worst = min(range(len(acc)), key=acc.__getitem__) if acc else -1
    for i, (c, a) in enumerate(zip(classes, acc, strict=False)):
        bar = "█" * round(a * 30)
        t.add_row(
            Text(c, style="bold red" if i == worst else ""), fmt.pct(a), Text(bar, style="cyan")
        )
    return t


def epochs_table(rows: list[dict[str, Any]]) -> Table:
    t = Table(title="Per epoch", title_justify="left")
    has_val = any(r.get("val_loss") is not None for r in rows)
    cols = ["epoch", "train loss", "train acc"]
    if has_val:
        cols += ["val loss", "val acc"]
    cols += ["test loss", "test acc", "lr", "seconds", "img/s"]
    for c in cols:
        t.add_column(c, justify="right")
    for r in rows:
        cells = [str(r["epoch"]), fmt.num(r["train_loss"]), fmt.pct(r["train_acc"])]
        if has_val:
            cells += [fmt.num(r.get("val_loss")), fmt.pct(r.get("val_acc"))]
        cells += [
            fmt.num(r["test_loss"]),
            fmt.pct(r["test_acc"]),
            f"{r['lr']:.3g}",
            f"{r['seconds']:.1f}",
            f"{r['images_per_s']:,.0f}",
        ]
        t.add_row(*cells)
    return t


def show_subject(console: Console, subject: Subject, store: RunStore) -> None:
    spec = subject.spec
    if subject.run is None:
        console.print(f"[bold]{spec.name}[/]  {escape(spec.description)}")
        if spec.lineage:
            console.print(f"extends: {' → '.join(spec.lineage)}")
        console.print(spec_table(spec))
        ref = spec.reference
        if ref.test_accuracy is not None or ref.test_loss is not None:
            console.print(
                f"reported ({ref.at} epoch): test acc {fmt.pct(ref.test_accuracy)}, "
                f"test loss {fmt.num(ref.test_loss)}"
                + (f", hardest class {ref.hardest_class}" if ref.hardest_class else "")
                + (f"  [dim]{escape(ref.source)}[/]" if ref.source else "")
            )
        runs = store.runs(spec.name)
        if runs:
            console.print(runs_table(runs))
        return
    run = subject.run
    s = run.summary
    console.print(
        f"[bold]{escape(subject.label)}[/]  ",
        status_text(run.status),
        f"  seed {s.get('seed')}  on {escape(str(s.get('device', '?')))}  "
        f"{s.get('epochs_done', 0)}/{s.get('epochs', '?')} epochs  "
        f"{fmt.seconds(s.get('wall_seconds'))}",
    )
    if s.get("reason"):
        console.print(f"reason: {escape(str(s['reason']))}")
    rows = run.metrics()
    if rows:
        console.print(epochs_table(rows))
    if s.get("best_epoch"):
        console.print(
            f"best epoch {s['best_epoch']} by {s.get('best_metric')}: test acc "
            f"{fmt.pct(run.best('test_acc'))}, loss {fmt.num(run.best('test_loss'))}"
        )
    classes = s.get("classes") or []
    if s.get("per_class_acc"):
        console.print(per_class_table(classes, s["per_class_acc"]))
    if s.get("confusion"):
        console.print(confusion_heatmap(classes, s["confusion"]))


def _cell(v: Any) -> str:
    return "(absent)" if v is MISSING else fmt.value(v)


def print_diff(
    console: Console, a: Subject, b: Subject, changes: list[Change], deltas: list[FigureDelta]
) -> None:
    console.print(f"[bold]diff[/] {escape(a.label)} ({a.kind}) → {escape(b.label)} ({b.kind})")
    t = Table(title="Definition", title_justify="left")
    t.add_column("key")
    t.add_column(a.label)
    t.add_column(b.label)
    changed = 0
    for c in changes:
        style = "" if c.changed else "dim"
        changed += c.changed
        t.add_row(
            Text(c.key, style="bold" if c.changed else "dim"),
            Text(_cell(c.a), style=style or "red"),
            Text(_cell(c.b), style=style or "green"),
        )
    if changes:
        console.print(t)
    if not changed:
        console.print("definitions are identical")
    if deltas:
        r = Table(title="Results" if a.run or b.run else "Reported results", title_justify="left")
        for col in ("figure", a.label, b.label, "Δ"):
            r.add_column(col, justify="left" if col == "figure" else "right")
        for d in deltas:
            is_acc = "acc" in d.label
            show = fmt.pct if is_acc else fmt.num
            delta = d.delta
            dtext = Text("—")
            if delta is not None:
                good = (delta > 0) == d.higher_is_better
                dtext = Text(
                    fmt.pp(delta) if is_acc else f"{delta:+.4f}",
                    style="green" if good and delta else "red" if delta else "",
                )
            r.add_row(d.label, show(d.a), show(d.b), dtext)
        console.print(r)
    for s in (a, b):
        if s.run is not None and s.run.summary.get("best_epoch"):
            console.print(f"{escape(s.label)}: best epoch {s.run.summary['best_epoch']}")


def diff_markdown(a: Subject, b: Subject, changes: list[Change], deltas: list[FigureDelta]) -> str:
    lines = [f"### {a.label} → {b.label}", "", f"| key | {a.label} | {b.label} |", "|---|---|---|"]
    lines += [f"| `{c.key}` | {_cell(c.a)} | {_cell(c.b)} |" for c in changes]
    if deltas:
        lines += ["", f"| figure | {a.label} | {b.label} | Δ |", "|---|---:|---:|---:|"]
        for d in deltas:
            show = fmt.pct if "acc" in d.label else fmt.num
            delta = fmt.pp(d.delta) if "acc" in d.label else fmt.num(d.delta)
            lines.append(f"| {d.label} | {show(d.a)} | {show(d.b)} | {delta} |")
    return "\n".join(lines) + "\n"


def report_table(rows: list[Any]) -> Table:
    """`mnist-tui report`: reported vs reproduced, mean ± std over seeds."""
    t = Table(title="Reported vs reproduced (mean ± std over seeds)", title_justify="left")
    for col, just in (
        ("experiment", "left"),
        ("reported", "right"),
        ("final", "right"),
        ("best", "right"),
        ("Δ pp", "right"),
        ("in", "center"),
        ("runs", "right"),
        ("hardest rep/ours", "left"),
        ("train", "right"),
    ):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in rows:
        t.add_row(*report_cells(r))
    if any(r.other_definition_runs for r in rows):
        t.caption, t.caption_justify = OTHER_DEFINITION_NOTE, "left"
    return t


def report_cells(r: Any) -> list[Any]:
    """One report row as table cells (shared by `mnist-tui report` and the console)."""
    inside = {
        True: Text("yes", style="green"),
        False: Text("no", style="red"),
        None: Text("—", style="dim"),
    }[r.inside]
    delta = Text("—", style="dim")
    if r.delta_pp is not None:
        delta = Text(f"{r.delta_pp:+.2f}", style="green" if abs(r.delta_pp) <= 1 else "red")
    return [
        r.name,
        fmt.pct(r.reported_acc) + ("ᵇ" if r.reported_at == "best" else ""),
        r.final_acc.pct() if r.final_acc else "—",
        r.best_acc.pct() if r.best_acc else "—",
        delta,
        inside,
        runs_text(r) if r.runs or r.other_definition_runs else "",
        f"{r.reported_hardest}/{r.hardest or '—'}" if r.reported_hardest else "",
        fmt.seconds(r.train_seconds.mean) if r.train_seconds else "—",
    ]
