"""Rich renderings for the CLI: progress bars, and the tables of `views.tables` as Rich
tables (the console draws the same data as DataTables), run and experiment pages, diffs."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
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
from mnist_tui.runs.record import RunInfo
from mnist_tui.runs.store import RunStore
from mnist_tui.status import RunStatus
from mnist_tui.studies.catalog import Subject
from mnist_tui.studies.diff import Change, FigureDelta
from mnist_tui.train.events import (
    BatchProgress,
    EpochEnded,
    Event,
    RunEnded,
    RunStarted,
    StepReport,
)
from mnist_tui.views import (
    curves,
    diff_tables,
    fmt,
    report_tables,
    run_tables,
    search_tables,
    tables,
)
from mnist_tui.views.live import step_line, system_lines
from mnist_tui.views.provenance import provenance_lines
from mnist_tui.views.tables import DATASET_SHORT, STATUS_STYLE, TableData
from mnist_tui.views.visible import visible

if TYPE_CHECKING:  # (imported where used: `runs` and `show` need neither)
    from mnist_tui.studies.report import ReportRow
    from mnist_tui.studies.variants import SelectionPage

__all__ = ["DATASET_SHORT", "STATUS_STYLE"]


def status_text(status: str | None) -> Text:
    """A run status in its colour; None (no run yet) is an empty cell."""
    return Text(status or "", style=STATUS_STYLE.get(status or "", ""))


class RunProgress:
    """Epoch and batch progress bars driven by trainer events, plus one line per epoch."""

    def __init__(self, console: Console, enabled: bool = True, steps: bool = False) -> None:
        """`steps`: print a line per step report too (the worker's runs: their log)."""
        self.console = console
        self.enabled = enabled
        self.steps = steps
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
                f"{fmt.count(event.train_size)} training images, "
                f"{fmt.plural(event.epochs, 'epoch')}",
                soft_wrap=True,  # one line per event in a log file, not cut at 80 columns
            )
            self.epoch_task = self.progress.add_task(
                "epochs", total=event.epochs, completed=event.start_epoch - 1
            )
            self.batch_task = self.progress.add_task(
                f"epoch {event.start_epoch}", total=event.steps_per_epoch
            )
        elif isinstance(event, StepReport):
            if self.steps:
                self.console.print(
                    step_line(
                        event.epoch,
                        event.step,
                        event.steps,
                        self.epochs,
                        event.train_loss,
                        event.train_acc,
                    ),
                    highlight=False,
                    soft_wrap=True,
                )
            if self.batch_task is not None:
                self.progress.update(
                    self.batch_task,
                    description=f"epoch {event.epoch} loss {event.train_loss:.3f}",
                )
        elif isinstance(event, BatchProgress) and self.batch_task is not None:
            self.progress.update(self.batch_task, completed=event.step, total=event.steps)
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
        elif isinstance(event, RunEnded) and event.status != RunStatus.COMPLETED:
            self.console.print(f"[red]{event.status}[/]: {escape(visible(event.reason))}")


class FitTable(Table):
    """A Rich table that drops its least needed columns, not its digits, when the
    terminal is narrower than the table (the ranks come from `views.tables`)."""

    def __init__(self, data: TableData, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data = data

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        fitted = tables.fit(self.data, options.max_width - 1, padding=3)
        if len(fitted.columns) == len(self.data.columns):
            yield from super().__rich_console__(console, options)
            return
        kept = {id(c) for c in fitted.columns}
        narrow = copy.copy(self)
        narrow.columns = [
            col
            for col, spec in zip(self.columns, self.data.columns, strict=True)
            if id(spec) in kept
        ]
        # said, not silent: which columns this width left out
        gone = ", ".join(c.header for c in self.data.columns if id(c) not in kept)
        said = f"not shown at {options.max_width} columns: {gone} (a wider terminal shows them)"
        narrow.caption = f"{self.caption}\n{said}" if self.caption else said
        narrow.caption_justify = "left"
        yield from Table.__rich_console__(narrow, console, options)


def rich_table(data: TableData) -> Table:
    """A `TableData` as a Rich table; ids and names (`keep`) are never wrapped or cut, and
    at a narrow width whole columns go (highest `drop` rank first)."""
    t = FitTable(
        data,
        title=data.title or None,
        title_justify="left",
        caption="\n".join(data.notes) or None,
        caption_justify="left",
    )
    natural = tables.widths(data)
    for col, w in zip(data.columns, natural, strict=True):
        t.add_column(
            escape(col.header),  # a variant's label in a header: `[optim.lr=0.05]` is text
            justify=col.justify,
            no_wrap=col.keep,
            min_width=w if col.keep else None,
            # a long word (an override, a class name) folds onto the next line whole
            # instead of ending in an ellipsis
            overflow="fold",
        )
    for r in data.rows:
        t.add_row(*(Text(c.text, style=c.style) for c in r.cells))
    return t


def print_table(console: Console, data: TableData) -> None:
    """The table, or its `empty` sentence when it has no rows and says one."""
    if not data.rows and data.empty:
        console.print(data.empty)
    else:
        console.print(rich_table(data))


def markdown_table(data: TableData, code_first: bool = False) -> str:
    """A GitHub table of the same cells (styles dropped)."""
    align = {"left": "---", "right": "---:", "center": ":-:"}
    lines = [
        "| " + " | ".join(c.header for c in data.columns) + " |",
        "|" + "|".join(align[c.justify] for c in data.columns) + "|",
    ]
    code_at = next((i for i, c in enumerate(data.columns) if c.keep), 0)
    for r in data.rows:
        cells = [c.text for c in r.cells]
        if code_first:
            cells[code_at] = f"`{cells[code_at]}`"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_summary_table(results: list[tuple[ExperimentSpec, RunInfo]]) -> Table:
    """Reported vs reproduced, compact enough for an 80-column terminal."""
    return rich_table(run_tables.run_summary_table(results))


def runs_table(infos: list[RunInfo], *, start: int = 1) -> Table:
    """Runs, numbered by recency from `start` (pass the offset + 1 of a later page)."""
    return rich_table(run_tables.runs_table(infos, start=start))


def spec_table(spec: ExperimentSpec) -> Table:
    """The resolved definition; keys inherited through `extends` are dimmed and marked."""
    return rich_table(run_tables.spec_table(spec))


def per_class_table(classes: list[str], acc: list[float]) -> Table:
    return rich_table(run_tables.per_class_table(classes, acc))


def epochs_table(rows: list[dict[str, Any]]) -> Table:
    return rich_table(run_tables.epochs_table(rows))


def tune_summary(
    trials: list[dict[str, Any]],
    importances: dict[str, float],
    metric: str,
    width: int,
    completed: int | None = None,
    direction: str | None = None,
) -> list[RenderableType]:
    """After `tune`: the objective per trial and the parameter importances (the console's
    searches view shows the same curve and table)."""
    # plotext costs 0.2 s to import: only where a picture is drawn
    from mnist_tui.views.pictures import plot

    curve = curves.history_curve(trials, metric, direction)
    out: list[RenderableType] = [Text.from_ansi(plot(curve, width=width, height=12))]
    if importances:
        out.append(rich_table(search_tables.importances_table(importances, completed)))
    return out


def report_table(rows: list[ReportRow]) -> Table:
    """`mnist-tui report`: reported vs reproduced, mean ± std over seeds."""
    return rich_table(report_tables.report_table(rows))


def show_subject(console: Console, subject: Subject, store: RunStore) -> None:
    # plotext costs 0.2 s to import: only where a picture is drawn
    from mnist_tui.studies.diagnose import chance_note
    from mnist_tui.views.pictures import confusion_heatmap

    spec = subject.spec
    if subject.run is None:
        console.print(
            f"[bold]{escape(visible(spec.name))}[/]  "
            f"{escape(visible(spec.description, multiline=True))}"
        )
        if spec.lineage:
            console.print(escape(visible(f"extends: {' → '.join(spec.lineage)}")))
        console.print(spec_table(spec))
        reported = run_tables.reported_line(spec)
        if reported:
            source = (
                f"  [dim]{escape(visible(spec.reference.source))}[/]"
                if spec.reference.source
                else ""
            )
            console.print(escape(reported) + source)
        for line in provenance_lines(spec):
            console.print(f"[dim]{escape(line)}[/]", soft_wrap=True)
        runs = store.runs(spec.name)
        if runs:
            console.print(runs_table(runs))
        return
    run = subject.run
    s = run.summary
    console.print(
        f"[bold]{escape(visible(subject.label))}[/]  ",
        status_text(visible(run.status)),
        f"  seed {escape(visible(s.get('seed')))}  on {escape(visible(s.get('device', '?')))}  "
        f"{s.get('epochs_done', 0)}/{s.get('epochs', '?')} epochs  "
        f"{fmt.seconds(s.get('wall_seconds'))}",
    )
    note = chance_note(spec, run)
    if note:
        console.print(f"[yellow]note:[/] {escape(note)}")
    context = run_tables.run_context(run)
    if context or s.get("group"):
        group = f"group {s['group']}  " if s.get("group") else ""
        console.print(f"[dim]{escape(visible(group + context))}[/]")
    if s.get("reason"):
        console.print(f"reason: {escape(visible(s['reason'], multiline=True))}")
    if spec.model.source is not None:  # what it trained: the copy, not today's file
        src = spec.model.source
        console.print(
            f"[dim]model {escape(visible(spec.model.name))} from {escape(visible(src.file))} "
            f"(sha256 {src.sha256[:12]}…, copied in model.py)[/]",
            soft_wrap=True,
        )
    if run.tags or run.note:
        tags = "  ".join(f"#{t}" for t in run.tags)
        console.print(escape(visible(f"{tags}  {run.note}".strip(), multiline=True)))
    rows = run.metrics()
    if run.damaged:
        console.print(f"[bold red]damaged[/]: {escape(visible(run.damaged))}")
    for note in run.notes:
        console.print(f"[yellow]note[/]: {escape(visible(note))}")
    if rows:
        console.print(epochs_table(rows))
    if s.get("best_epoch"):
        console.print(
            f"best epoch {s['best_epoch']} by {s.get('best_metric')}: test acc "
            f"{fmt.pct(run.best('test_acc'))}, loss {fmt.num(run.best('test_loss'))}"
        )
    for line in system_lines(s.get("system")):
        console.print(f"[dim]{escape(line)}[/]", soft_wrap=True)
    classes = run_tables.class_names(s, rows)
    if per_class := s.get("per_class_acc"):
        console.print(per_class_table(classes, per_class))
    if confusion := s.get("confusion"):
        console.print(confusion_heatmap(classes, confusion))


def show_selection(console: Console, page: SelectionPage) -> None:
    """`show GROUP` / `show VARIANT`: what made the runs, the variants or groups they
    belong to, mean ± std, then the runs."""
    from mnist_tui.views.variant_tables import figures_table, selection_runs_table

    sel = page.selection
    done = len(sel.completed())
    head = f"[bold]{sel.kind} {escape(visible(sel.key))}[/]"
    if sel.label != sel.key:
        head += f"  {escape(visible(sel.label))}"
    console.print(f"{head}  [dim]{fmt.plural(len(page.runs), 'run')}, {done} completed[/]")
    console.print(f"experiment {escape(visible(', '.join(page.experiments)))}")
    if page.made_with:
        made = "  ".join(f"-S {o}" for o in page.made_with)
    elif sel.variant is not None and sel.variant.own:
        made = "the experiment file's own definition"
    else:
        made = "no overrides"
    console.print(f"made with: {escape(visible(made))}", soft_wrap=True)
    if sel.kind == "group":
        # one variant for seeds; folds and trials are each their own definition
        for v in page.variants:
            console.print(
                f"variant {escape(visible(v.id))}  {escape(visible(v.label))}", soft_wrap=True
            )
    elif page.groups:
        console.print(f"groups: {escape(visible(', '.join(page.groups)))}", soft_wrap=True)
    print_table(console, figures_table(sel.values))
    print_table(console, selection_runs_table(page.runs, len(page.experiments) > 1))


def print_diff(
    console: Console, a: Subject, b: Subject, changes: list[Change], deltas: list[FigureDelta]
) -> None:
    console.print(
        f"[bold]diff[/] {escape(visible(a.label))} ({a.kind}) → "
        f"{escape(visible(b.label))} ({b.kind})"
    )
    keys, figures = diff_tables.diff_tables(a, b, changes, deltas)
    if keys.rows:
        console.print(rich_table(keys))
    if not any(c.changed for c in changes):
        console.print(keys.empty)
    if figures.rows:
        console.print(rich_table(figures))


def print_source_diff(
    console: Console, a: ExperimentSpec, b: ExperimentSpec, lines: list[str] | None
) -> None:
    """Say that the model sources differ; with `lines` (diff --all), which lines changed."""
    sa, sb = a.model.source, b.model.source
    ha = f"{sa.sha256[:12]}… ({sa.file})" if sa else "shipped"
    hb = f"{sb.sha256[:12]}… ({sb.file})" if sb else "shipped"
    more = "" if lines is not None else "; --all shows the changed lines"
    console.print(
        f"[bold]model source differs[/]: {escape(visible(ha))} → {escape(visible(hb))}{more}"
    )
    for line in lines or []:
        style = "green" if line.startswith("+") else "red" if line.startswith("-") else None
        console.print(visible(line, multiline=True), style=style, markup=False, highlight=False)


def diff_markdown(a: Subject, b: Subject, changes: list[Change], deltas: list[FigureDelta]) -> str:
    keys, figures = diff_tables.diff_tables(a, b, changes, deltas)
    parts = [visible(f"### {a.label} → {b.label}"), ""]
    parts += [markdown_table(keys, code_first=True)] if keys.rows else [keys.empty]
    parts += ["", *keys.notes] if keys.notes else []
    if figures.rows:
        parts += ["", markdown_table(figures)]
    return "\n".join(parts) + "\n"
