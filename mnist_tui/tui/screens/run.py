"""A run, live or finished: curves first; epochs, classes, confusion and log in a tab.

A worker thread tails the run's files from their last byte offsets and posts only
what is new; plots are redrawn when the epochs or the widget size change, not every tick.
"""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Footer, Static, TabbedContent, TabPane
from textual.worker import get_current_worker

from mnist_tui.errors import MnistTuiError
from mnist_tui.runs.io import read_json
from mnist_tui.runs.record import RunInfo
from mnist_tui.runs.store import RunStore
from mnist_tui.tui.grid import DataGrid
from mnist_tui.tui.messages import CancelRun, Notice, OpenDiff, OpenSamples, RunTailed
from mnist_tui.tui.screens.base import ConsoleScreen
from mnist_tui.tui.workers import LogTail, MetricsTail
from mnist_tui.views import curves, pictures, run_tables, tables


class RunScreen(ConsoleScreen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="run.back"),
        Binding("1", "tab('curves')", "Curves", id="run.curves"),
        Binding("2", "tab('details')", "Details", id="run.details"),
        Binding("x", "cancel", "Stop", id="run.cancel"),
        Binding("d", "diff", "Diff vs exp", id="run.diff"),
        Binding("p", "samples", "Pictures", id="run.samples"),
        Binding("y", "copy_id", "Copy id", id="run.copy_id"),
    ]

    def __init__(self, run_id: str, store: RunStore, poll_interval: float = 1.0) -> None:
        super().__init__()
        self.run_id = run_id
        self.store = store
        self.poll_interval = poll_interval
        self.run: RunInfo | None = None
        self.rows: list[dict[str, Any]] = []
        self._drawn: tuple[int, int, int] = (-1, 0, 0)  # epochs, width, height last plotted

    def compose(self) -> ComposeResult:
        yield Static(Text(self.run_id, style="bold"), id="run-header")
        with TabbedContent(initial="curves", id="run-tabs"):
            with TabPane("Curves [1]", id="curves"), Horizontal(id="plots"):
                yield Static("", id="loss-plot", classes="plot")
                yield Static("", id="acc-plot", classes="plot")
            with TabPane("Details [2]", id="details"), VerticalScroll(id="run-details"):
                yield DataGrid(id="epochs-table", classes="auto")
                yield DataGrid(id="class-table", classes="auto")
                yield Static("", id="confusion")
                yield Static("", id="run-log")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        for grid in self.query(DataGrid):
            grid.can_focus = False  # the details pane scrolls as one
        self.tail()

    @work(thread=True, exclusive=True, group="tail", exit_on_error=False)
    def tail(self) -> None:
        """Post what is new in the run's summary, metrics and log, about once a second."""
        worker = get_current_worker()
        try:
            run = self.store.resolve(self.run_id)
        except MnistTuiError as exc:
            self.post_message(Notice(str(exc), "error"))
            return
        metrics = MetricsTail(run.path / "metrics.jsonl")
        log = LogTail(run.path / "log.txt", keep=200)
        last: dict[str, Any] | None = None
        while not worker.is_cancelled:
            rows, reset = metrics.read()
            log_changed = log.read()
            try:
                summary = read_json(run.path / "summary.json")
            except (OSError, ValueError):
                summary = last if last is not None else run.summary
            if rows or reset or log_changed or summary != last or last is None:
                last = summary
                run = RunInfo(run.id, run.experiment, run.path, summary)
                self.post_message(
                    RunTailed(run, rows, reset, list(log.lines) if log_changed else None)
                )
            end = time.monotonic() + self.poll_interval
            while time.monotonic() < end and not worker.is_cancelled:
                time.sleep(0.05)

    @on(RunTailed)
    def tailed(self, event: RunTailed) -> None:
        event.stop()
        self.run = event.run
        self.run_id = event.run.id
        if event.reset:
            self.rows = []
        self.rows += event.rows
        self.draw_header()
        if event.rows or event.reset or self._drawn[0] < 0:
            self.draw_curves()
            self.draw_details()
        if event.log is not None:
            self.query_one("#run-log", Static).update(
                Text("log (last lines)\n", style="bold") + Text("\n".join(event.log[-12:]))
            )

    def draw_header(self) -> None:
        assert self.run is not None
        run = self.run
        reason = run.summary.get("reason")
        self.query_one("#run-header", Static).update(
            Text.assemble(
                (f"{run.experiment}/{run.id}", "bold"),
                "  ",
                (run.status, tables.STATUS_STYLE.get(run.status, "")),
                "  ",
                run_tables.run_header(run, self.rows),
                (f"\n{reason}" if reason else "", "red"),
            )
        )

    def on_resize(self) -> None:
        if self.run is not None:
            self.call_after_refresh(self.draw_curves)

    def draw_curves(self) -> None:
        if self.run is None:
            return
        loss_w = self.query_one("#loss-plot", Static)
        w, h = max(loss_w.size.width, 30), max(loss_w.size.height, 8)
        if self._drawn == (len(self.rows), w, h):
            return  # nothing new: no redraw, no flicker
        self._drawn = (len(self.rows), w, h)
        loss, acc = curves.run_curves(self.rows, self.run.experiment)
        loss_w.update(Text.from_ansi(pictures.plot(loss, width=w, height=h)))
        self.query_one("#acc-plot", Static).update(
            Text.from_ansi(pictures.plot(acc, width=w, height=h))
        )

    def draw_details(self) -> None:
        assert self.run is not None
        s = self.run.summary
        self.query_one("#epochs-table", DataGrid).show(run_tables.epochs_table(self.rows))
        classes = run_tables.class_names(s, self.rows)
        last = self.rows[-1] if self.rows else {}
        per_class = s.get("per_class_acc") or last.get("test_per_class") or []
        self.query_one("#class-table", DataGrid).show(
            run_tables.per_class_table(classes, per_class)
        )
        confusion = s.get("confusion") or last.get("test_confusion")
        self.query_one("#confusion", Static).update(
            pictures.confusion_heatmap(classes, confusion) if confusion else ""
        )

    def action_tab(self, tab: str) -> None:
        self.query_one("#run-tabs", TabbedContent).active = tab
        if tab == "curves":
            self.call_after_refresh(self.draw_curves)
        else:
            self.query_one("#run-details", VerticalScroll).focus()

    def action_cancel(self) -> None:
        self.post_message(CancelRun(self.run_id))

    def action_diff(self) -> None:
        """This run against the experiment it came from: overrides, reported vs reproduced."""
        if self.run is not None:
            self.post_message(OpenDiff(self.run.experiment, self.run.id))

    def action_samples(self) -> None:
        if self.run is not None:
            self.post_message(OpenSamples(self.run))

    def action_copy_id(self) -> None:
        self.app.copy_to_clipboard(self.run_id)
        self.notify(f"copied {self.run_id}")
