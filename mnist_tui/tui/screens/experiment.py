"""An experiment: its resolved definition (inherited keys dimmed) and its runs."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Static

from mnist_tui.config.loading import load_experiment
from mnist_tui.errors import MnistTuiError
from mnist_tui.runs.record import RunInfo
from mnist_tui.runs.store import RunStore
from mnist_tui.tui.grid import DataGrid, is_data_key
from mnist_tui.tui.messages import AskQueue, ExperimentLoaded, OpenRun, StoreChanged
from mnist_tui.tui.screens.base import ConsoleScreen
from mnist_tui.views import run_tables
from mnist_tui.views.provenance import provenance_lines
from mnist_tui.views.visible import visible


class ExperimentScreen(ConsoleScreen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="experiment.back"),
        Binding("a", "queue", "Queue", id="experiment.queue"),
    ]

    def __init__(self, name: str, experiments_dir: Path, store: RunStore) -> None:
        super().__init__()
        self.experiment = name
        self.experiments_dir = experiments_dir
        self.store = store

    def compose(self) -> ComposeResult:
        yield Static(Text(visible(self.experiment), style="bold"), id="exp-header")
        yield DataGrid(id="spec-table")
        yield Static("runs", classes="pane-title")
        yield DataGrid(id="exp-runs")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#spec-table", DataGrid).focus()
        self.load()

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def load(self) -> None:
        try:
            spec = load_experiment(self.experiment, self.experiments_dir)
        except MnistTuiError as exc:
            self.post_message(ExperimentLoaded(None, [], str(exc)))
            return
        self.post_message(ExperimentLoaded(spec, self.store.runs(self.experiment)))

    @on(ExperimentLoaded)
    def loaded(self, event: ExperimentLoaded) -> None:
        event.stop()
        header = self.query_one("#exp-header", Static)
        if event.spec is None:
            header.update(
                Text.assemble(
                    (visible(self.experiment), "bold"),
                    "\n",
                    (visible(event.error, multiline=True), "red"),
                )
            )
            return
        s = event.spec
        # stored text is shown with its control characters visible (views.visible)
        lines: list[str | tuple[str, str]] = [
            (visible(s.name), "bold"),
            f"  {visible(s.description, multiline=True)}",
        ]
        if s.lineage:
            lines.append(f"\nextends {visible(' → '.join(s.lineage))}")
        reported = run_tables.reported_line(s)
        if reported:
            lines.append(f"\n{reported}")
        lines += [(f"\n{line}", "dim") for line in provenance_lines(s)]
        header.update(Text.assemble(*lines))
        self.query_one("#spec-table", DataGrid).show(run_tables.spec_table(s))
        self.show_runs(event.runs)

    def show_runs(self, runs: list[RunInfo]) -> None:
        self.query_one("#exp-runs", DataGrid).show(
            run_tables.runs_table(runs, show_experiment=False)
        )

    @on(StoreChanged)
    def store_changed(self, event: StoreChanged) -> None:
        """The store changed (a run queued, started, ended): this experiment's runs as
        the app read them, so the screen never stays as it was when opened."""
        event.stop()
        if event.read.runs is not None:
            self.show_runs([r for r in event.read.runs if r.experiment == self.experiment])

    @on(DataTable.RowSelected, "#exp-runs")
    def run_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if is_data_key(event.row_key.value):
            self.post_message(OpenRun(str(event.row_key.value)))

    @on(DataTable.RowSelected, "#spec-table")
    def key_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()

    def action_queue(self) -> None:
        self.post_message(AskQueue([self.experiment]))
