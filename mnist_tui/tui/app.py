"""The console app: experiments, runs and queue tables; opens run, experiment and diff views.

All data comes from the headless core (catalog, store, queue, diff). Training happens
in child processes started by `QueueRunner`; the app polls the run store once a second
and redraws only what changed.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Input, Static, TabbedContent, TabPane

from mnist_tui.config.loading import default_experiments_dir, load_experiment
from mnist_tui.errors import MnistTuiError, SpecError
from mnist_tui.runs.queue import QueueRunner, RunQueue
from mnist_tui.runs.store import ACTIVE, RunInfo, RunStore, default_runs_dir
from mnist_tui.studies.catalog import ExperimentRow, Subject, experiment_rows, resolve_subject
from mnist_tui.tui.screens import (
    DiffScreen,
    ExperimentScreen,
    HelpScreen,
    QueueDialog,
    QuitDialog,
    RunScreen,
)
from mnist_tui.views import fmt
from mnist_tui.views.render import DATASET_SHORT, status_text

# the columns of the experiments table (after the mark column); `s` sorts by them
EXPERIMENT_COLUMNS = (
    "name",
    "data",
    "model",
    "params",
    "epochs",
    "reported",
    "best run",
    "runs",
    "latest",
)


class MnistTuiApp(App[None]):
    TITLE = "mnist-tui"
    CSS_PATH = "app.tcss"
    BINDINGS = [
        Binding("question_mark", "help", "Help", id="help"),
        Binding("slash", "filter", "Filter", id="filter"),
        Binding("space", "mark", "Mark", id="mark"),
        Binding("a", "queue", "Queue", id="queue"),
        Binding("d", "diff", "Diff marked", id="diff"),
        Binding("x", "cancel", "Cancel run", id="cancel"),
        Binding("s", "sort", "Sort", id="sort"),
        Binding("K", "move(-1)", "Move up", id="move_up"),
        Binding("J", "move(1)", "Move down", id="move_down"),
        Binding("1", "tab('experiments')", "Experiments", show=False),
        Binding("2", "tab('runs')", "Runs", show=False),
        Binding("3", "tab('queue')", "Queue", show=False),
        Binding("4", "tab('report')", "Report", show=False),
        Binding("S", "searches", "Searches", id="searches"),
        Binding("q", "quit_app", "Quit", id="quit"),
    ]

    def __init__(
        self,
        *,
        data_dir: Path | None = None,
        runs_dir: Path | None = None,
        experiments_dir: Path | None = None,
        device: str = "auto",
        concurrency: int = 1,
        poll_interval: float = 1.0,
    ) -> None:
        super().__init__()
        self.experiments_dir = experiments_dir or default_experiments_dir()
        self.store = RunStore(default_runs_dir(runs_dir))
        self.queue = RunQueue(self.store)
        self.runner = QueueRunner(
            self.queue,
            data_dir=data_dir,
            experiments_dir=experiments_dir,
            device=device,
            concurrency=concurrency,
        )
        self.poll_interval = poll_interval
        self.rows: list[ExperimentRow] = []
        self.runs: list[RunInfo] = []
        self.marked: dict[str, set[str]] = {"experiments": set(), "runs": set()}
        self.filter_text = ""
        self.sort_column: dict[str, int] = {"experiments": 0, "runs": -1}
        self._signature: Any = None  # what the experiments/runs tables last showed
        self._queue_signature: Any = None  # what the queue table and status line showed
        self._report_stale = True  # the report reads every run's spec: only when shown

    # -- layout ----------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="filter (esc clears)", id="filter")
        with TabbedContent(initial="experiments", id="tabs"):
            with TabPane("Experiments [1]", id="experiments"):
                yield DataTable(id="experiments-table", cursor_type="row", zebra_stripes=True)
            with TabPane("Runs [2]", id="runs"):
                yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
            with TabPane("Queue [3]", id="queue"):
                yield DataTable(id="queue-table", cursor_type="row", zebra_stripes=True)
            with TabPane("Report [4]", id="report"):
                yield DataTable(id="report-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="status-line")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#experiments-table", DataTable).add_columns(" ", *EXPERIMENT_COLUMNS)
        self.query_one("#runs-table", DataTable).add_columns(
            " ",
            "id",
            "experiment",
            "status",
            "seed",
            "epochs",
            "test acc",
            "best acc",
            "duration",
            "started",
        )
        self.query_one("#queue-table", DataTable).add_columns(
            "#", "run", "experiment", "overrides", "status", "progress", "ETA"
        )
        self.query_one("#report-table", DataTable).add_columns(
            "experiment",
            "reported",
            "final (mean ± std)",
            "best (mean ± std)",
            "Δ pp",
            "inside",
            "runs",
            "hardest rep/ours",
            "train",
        )
        self.load_experiments()
        self.poll()
        self.set_interval(self.poll_interval, self.poll)
        self.query_one("#experiments-table", DataTable).focus()

    # -- data ------------------------------------------------------------------------

    def load_experiments(self) -> None:
        self.rows = experiment_rows(self.experiments_dir, self.store)

    def poll(self) -> None:
        """Advance the queue, re-read the store, redraw tables whose content changed."""
        try:
            self.runner.poll()
        except MnistTuiError as exc:
            self.notify(str(exc), severity="error")
        self.runs = self.store.runs()
        # the step counter moves every second during a run: it only redraws the queue
        runs_state = (
            tuple((r.id, r.status, r.summary.get("epochs_done")) for r in self.runs),
            self.filter_text,
            tuple(sorted(self.marked["experiments"])),
            tuple(sorted(self.marked["runs"])),
            tuple(self.sort_column.items()),
        )
        queue_state = (
            tuple((e.run_id, e.pid) for e in self.queue.entries),
            tuple(r.summary.get("step") for r in self.runs if r.status == "running"),
            runs_state[0],
        )
        if runs_state != self._signature:
            self._signature = runs_state
            by_exp: dict[str, list[RunInfo]] = {}
            for r in self.runs:
                by_exp.setdefault(r.experiment, []).append(r)
            for row in self.rows:
                row.runs = by_exp.get(row.name, [])
            self.fill_experiments()
            self.fill_runs()
            self._report_stale = True
            if self.active_tab() == "report":
                self.fill_report()
        if queue_state != self._queue_signature:
            self._queue_signature = queue_state
            self.fill_queue()
            active = sum(1 for r in self.runs if r.status in ACTIVE)
            self.query_one("#status-line", Static).update(
                f"{len(self.rows)} experiments · {len(self.runs)} runs · {active} active · "
                f"{len(self.queue.entries)} in queue · ? for help"
            )

    def _visible(self, text: str) -> bool:
        return not self.filter_text or self.filter_text.lower() in text.lower()

    @staticmethod
    def _refill(table: DataTable[Any], rows: list[tuple[str, list[Any]]]) -> None:
        """Replace a table's rows, keeping the cursor on the same key."""
        key = None
        if table.row_count and table.cursor_row < table.row_count:
            key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value  # type: ignore[arg-type]
        table.clear()
        for row_key, cells in rows:
            table.add_row(*cells, key=row_key)
        if key is not None:
            with contextlib.suppress(Exception):  # the row is gone (filtered or removed)
                table.move_cursor(row=table.get_row_index(key))

    def fill_experiments(self) -> None:
        marked = self.marked["experiments"]
        rows = []
        for r in self.rows:
            spec = r.spec
            text = f"{r.name} {spec.data.dataset if spec else ''} {spec.model.name if spec else ''}"
            if not self._visible(text):
                continue
            best = r.best_run
            cells: list[Any] = [
                "●" if r.name in marked else "",
                r.name,
                DATASET_SHORT.get(spec.data.dataset, spec.data.dataset)
                if spec
                else Text("invalid", style="red"),
                spec.model.name if spec else "",
                fmt.count(r.parameters),
                str(spec.train.epochs) if spec else "",
                fmt.pct(spec.reference.test_accuracy) if spec else "",
                fmt.pct(best.final("test_acc")) if best else "—",
                str(len(r.runs)) if r.runs else "",
                status_text(r.latest.status if r.latest else None),
            ]
            rows.append((r.name, cells))
        col = self.sort_column["experiments"]
        if col > 0:
            rows.sort(key=lambda kv: _sort_key(kv[1][col + 1]))
        self._refill(self.query_one("#experiments-table", DataTable), rows)

    def fill_runs(self) -> None:
        marked = self.marked["runs"]
        rows = []
        for r in self.runs:
            if not self._visible(f"{r.id} {r.experiment} {r.status}"):
                continue
            rows.append(
                (
                    r.id,
                    [
                        "●" if r.id in marked else "",
                        r.id,
                        r.experiment,
                        status_text(r.status),
                        str(r.seed),
                        f"{r.summary.get('epochs_done', 0)}/{r.summary.get('epochs', '?')}",
                        fmt.pct(r.final("test_acc")),
                        fmt.pct(r.best("test_acc")),
                        fmt.seconds(r.duration()),
                        fmt.ago(r.created),
                    ],
                )
            )
        self._refill(self.query_one("#runs-table", DataTable), rows)

    def fill_queue(self) -> None:
        rows = []
        for i, e in enumerate(self.queue.entries, 1):
            info = self.queue.run_info(e)
            status = info.status if info else "?"
            done = info.summary.get("epochs_done", 0) if info else 0
            total = info.summary.get("epochs", "?") if info else "?"
            eta = "—"
            if info is not None and status == "running" and done and isinstance(total, int):
                elapsed = time.time() - (e.started or time.time())
                eta = fmt.seconds(elapsed / done * (total - done))
            progress = f"{done}/{total}"
            if info is not None and status == "running" and info.summary.get("steps"):
                progress += f" · step {info.summary.get('step')}/{info.summary['steps']}"
            rows.append(
                (
                    e.run_id,
                    [
                        str(i),
                        e.run_id,
                        e.experiment,
                        " ".join(e.overrides),
                        status_text(status),
                        progress,
                        eta,
                    ],
                )
            )
        self._refill(self.query_one("#queue-table", DataTable), rows)

    def fill_report(self) -> None:
        """Reported vs reproduced; computed only while its tab is shown (it reads specs)."""
        from mnist_tui.studies.report import report_rows
        from mnist_tui.views.tables import report_table

        if not self._report_stale:
            return
        self._report_stale = False
        data = report_table(report_rows(self.rows))
        rows = [(r.key, [Text(c.text, style=c.style) for c in r.cells]) for r in data.rows]
        self._refill(self.query_one("#report-table", DataTable), rows)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if self.active_tab() == "report":
            self.fill_report()

    # -- helpers used by screens -----------------------------------------------------

    def active_tab(self) -> str:
        return self.query_one("#tabs", TabbedContent).active or "experiments"

    def current_key(self) -> str | None:
        table = self.query_one(f"#{self.active_tab()}-table", DataTable)
        if not table.row_count:
            return None
        return str(table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value)  # type: ignore[arg-type]

    def check_overrides(self, names: list[str], overrides: list[str]) -> str | None:
        for name in names:
            try:
                load_experiment(name, self.experiments_dir, overrides)
            except SpecError as exc:
                return str(exc)
        return None

    def queue_experiments(self, names: list[str]) -> None:
        def done(overrides: list[str] | None) -> None:
            if overrides is None:
                return
            for name in names:
                spec = load_experiment(name, self.experiments_dir, overrides)
                self.queue.add(spec, overrides)
            self.notify(
                f"queued {', '.join(names)}" + (f" with {' '.join(overrides)}" if overrides else "")
            )
            self.marked["experiments"].clear()
            self.poll()

        self.push_screen(QueueDialog(names), done)

    def open_run(self, run_id: str) -> None:
        try:
            info = self.store.resolve(run_id)
        except MnistTuiError as exc:
            self.notify(str(exc), severity="error")
            return
        self.push_screen(RunScreen(info))

    def cancel_run(self, run_id: str) -> None:
        entry = self.queue.find(run_id)
        if entry is None:
            self.notify(
                f"run {run_id} is not queued or running from this console", severity="warning"
            )
            return
        self.queue.cancel(run_id)
        self.notify(f"cancelling {run_id}")
        self.poll()

    # -- actions ---------------------------------------------------------------------

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        key = str(event.row_key.value)
        table_id = event.data_table.id
        if table_id in ("experiments-table", "report-table"):
            try:
                spec = load_experiment(key, self.experiments_dir)
            except SpecError as exc:
                self.notify(str(exc), severity="error", timeout=10)
                return
            self.push_screen(ExperimentScreen(spec, self.store.runs(key)))
        elif table_id in ("runs-table", "queue-table"):
            self.open_run(key)

    def action_searches(self) -> None:
        from mnist_tui.tui.screens import SearchScreen

        self.push_screen(SearchScreen())

    def action_tab(self, tab: str) -> None:
        self.query_one("#tabs", TabbedContent).active = tab
        self.query_one(f"#{tab}-table", DataTable).focus()

    def action_help(self) -> None:
        lines = ["mnist-tui keys", ""]
        for b in self.BINDINGS:
            if isinstance(b, Binding):
                lines.append(f"  {b.key:<14} {b.description}")
        lines += [
            "",
            "  enter          open the highlighted experiment or run",
            "  esc            back / clear filter",
            "  1 2 3          experiments, runs, queue",
            "  in a diff: a   all keys / changed keys",
            "  in a run: x    cancel it",
            "",
            "Runs train in child processes; the queue survives restarts.",
            f"Run store: {self.store.root}",
            f"Experiments: {self.experiments_dir}",
        ]
        self.push_screen(HelpScreen("\n".join(lines)))

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.add_class("visible")
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self.filter_text = event.value.strip()
            self.poll()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            self.query_one(f"#{self.active_tab()}-table", DataTable).focus()

    def on_key(self, event: Any) -> None:
        if event.key == "escape":
            box = self.query_one("#filter", Input)
            if box.has_class("visible"):
                box.value = ""
                box.remove_class("visible")
                self.filter_text = ""
                self.poll()
                self.query_one(f"#{self.active_tab()}-table", DataTable).focus()

    def action_mark(self) -> None:
        tab = self.active_tab()
        key = self.current_key()
        if key is None or tab not in self.marked:
            return
        marks = self.marked[tab]
        marks.symmetric_difference_update({key})
        self.poll()

    def action_queue(self) -> None:
        if self.active_tab() != "experiments":
            self.action_tab("experiments")
            return
        names = sorted(self.marked["experiments"]) or [k for k in [self.current_key()] if k]
        if names:
            self.queue_experiments(names)

    def action_diff(self) -> None:
        tab = self.active_tab()
        marks = sorted(self.marked.get(tab, set()))
        if tab == "runs":
            order = {r.id: i for i, r in enumerate(self.runs)}
            marks.sort(key=lambda k: -order.get(k, 0))  # older first
        if len(marks) != 2:
            self.notify(
                "mark exactly two experiments or two runs with space, then press d",
                severity="warning",
            )
            return
        try:
            a: Subject = resolve_subject(marks[0], self.experiments_dir, self.store)
            b: Subject = resolve_subject(marks[1], self.experiments_dir, self.store)
        except MnistTuiError as exc:
            self.notify(str(exc), severity="error")
            return
        self.push_screen(DiffScreen(a, b))

    def action_cancel(self) -> None:
        key = self.current_key()
        if key is not None and self.active_tab() in ("runs", "queue"):
            self.cancel_run(key)

    def action_move(self, delta: int) -> None:
        key = self.current_key()
        if key is not None and self.active_tab() == "queue":
            self.queue.move(key, delta)
            self.poll()

    def action_sort(self) -> None:
        tab = self.active_tab()
        if tab != "experiments":
            return
        self.sort_column[tab] = (self.sort_column[tab] + 1) % len(EXPERIMENT_COLUMNS)
        self.notify(f"sorted by {EXPERIMENT_COLUMNS[self.sort_column[tab]]}")
        self.poll()

    def action_quit_app(self) -> None:
        in_flight = len(self.queue.entries)
        if not in_flight:
            self.exit()
            return

        def chosen(what: str | None) -> None:
            if what == "kill":
                for entry in list(self.queue.entries):
                    self.queue.cancel(entry.run_id)
                self.exit()
            elif what == "keep":
                self.exit()

        self.push_screen(QuitDialog(in_flight), chosen)


def _sort_key(cell: Any) -> Any:
    text = cell.plain if isinstance(cell, Text) else str(cell)
    cleaned = text.replace(",", "").replace("%", "")
    try:
        return (0, -float(cleaned))
    except ValueError:
        return (1, text)


def run_app(
    *,
    data_dir: Path | None = None,
    runs_dir: Path | None = None,
    experiments_dir: Path | None = None,
    device: str = "auto",
    concurrency: int = 1,
) -> None:
    from mnist_tui.train.setup import resolve_device

    resolve_device(device)  # a bad --device is an error now, not in every queued run
    MnistTuiApp(
        data_dir=data_dir,
        runs_dir=runs_dir,
        experiments_dir=experiments_dir,
        device=device,
        concurrency=concurrency,
    ).run()
