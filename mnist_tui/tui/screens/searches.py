"""Hyper-parameter searches in this run store: trials, history, importances.

Reading Optuna studies opens SQLite and imports Optuna: a worker thread does it.
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Footer, Static

from mnist_tui.runs.store import RunStore
from mnist_tui.tui.grid import DataGrid
from mnist_tui.tui.messages import StoreChanged, StudiesRead
from mnist_tui.tui.screens.base import ConsoleScreen
from mnist_tui.views import curves, pictures, search_tables


class SearchScreen(ConsoleScreen):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back", id="searches.back")]

    def __init__(self, store: RunStore) -> None:
        super().__init__()
        self.store = store
        self._notes: dict[DataGrid, tuple[Static, list[str]]] = {}  # trials -> its notes

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="search-body"):
            yield Static("reading searches…", id="search-status")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#search-body", VerticalScroll).focus()
        self.read()

    @on(DataGrid.Dropped)
    def name_dropped(self, event: DataGrid.Dropped) -> None:
        """The parameters a narrow screen leaves out are named under the trials."""
        if event.grid not in self._notes:
            return
        notes, lines = self._notes[event.grid]
        if event.grid.dropped:
            lines = [*lines, f"not shown (narrow): {', '.join(event.grid.dropped)}"]
        notes.update(Text("\n".join(lines), style="dim"))

    @on(StoreChanged)
    def store_changed(self, event: StoreChanged) -> None:
        """A run started or ended (a trial among them): the searches again."""
        event.stop()
        self.read()

    @work(thread=True, exclusive=True, group="read", exit_on_error=False)
    def read(self) -> None:
        from mnist_tui.studies.tune import read_studies

        self.post_message(StudiesRead(read_studies(self.store)))

    @on(StudiesRead)
    def studies_read(self, event: StudiesRead) -> None:
        event.stop()
        status = self.query_one("#search-status", Static)
        if not event.studies:
            status.update("No searches in this run store yet: mnist-tui tune EXPERIMENT --trials N")
            return
        n = len(event.studies)
        status.update(f"{n} search{'' if n == 1 else 'es'} in {self.store.root}")
        body = self.query_one("#search-body", VerticalScroll)
        self._notes.clear()
        for child in list(body.children):  # a new read replaces the last one
            if child is not status:
                child.remove()
        width = max((self.size.width or 100) - 4, 40)
        for st in event.studies:
            best = search_tables.metric_text(st.metric, st.best_value)
            goal = "lowest" if st.direction == "minimize" else "highest"
            title = f"study {st.name}: {search_tables.metric_label(st.metric)} {best} ({goal} wins)"
            trials = DataGrid(classes="auto")
            body.mount(Static(Text(title, style="bold"), classes="pane-title"))
            body.mount(trials)
            data = search_tables.trials_table(st.trials, metric=st.metric)
            trials.show(data)
            notes = Static(Text("\n".join(data.notes), style="dim"), classes="pane-title")
            body.mount(notes)
            self._notes[trials] = (notes, data.notes)
            curve = curves.history_curve(st.trials, st.metric, st.direction)
            body.mount(Static(Text.from_ansi(pictures.plot(curve, width=width, height=10))))
            if st.importances:
                importances = DataGrid(classes="auto")
                body.mount(importances)
                shown = search_tables.importances_table(st.importances, st.completed)
                importances.show(shown)
                if shown.notes:
                    body.mount(Static(Text("\n".join(shown.notes), style="yellow")))
