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

from mnist_tui.config.loading import load_spec_file
from mnist_tui.config.spec import ExperimentSpec
from mnist_tui.errors import MnistTuiError
from mnist_tui.runs import schema
from mnist_tui.runs.io import read_json
from mnist_tui.runs.record import RunInfo
from mnist_tui.runs.steps import STEPS
from mnist_tui.runs.store import RunStore
from mnist_tui.status import RunStatus
from mnist_tui.studies.diagnose import chance_note
from mnist_tui.tui.grid import DataGrid
from mnist_tui.tui.messages import (
    CancelRun,
    Notice,
    OpenDiff,
    OpenSamples,
    RunAction,
    RunTailed,
)
from mnist_tui.tui.screens.base import ConsoleScreen
from mnist_tui.tui.workers import LogTail, MetricsTail
from mnist_tui.views import live, pictures, run_tables, tables
from mnist_tui.views.visible import visible


def _spec_of(run: RunInfo) -> ExperimentSpec | None:
    """The run's frozen definition, or None where it no longer loads (said elsewhere)."""
    try:
        return load_spec_file(run.spec_path())
    except (MnistTuiError, OSError):
        return None


class RunScreen(ConsoleScreen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="run.back"),
        Binding("1", "tab('curves')", "Curves", id="run.curves"),
        Binding("2", "tab('details')", "Details", id="run.details"),
        Binding("x", "cancel", "Stop", id="run.cancel"),
        Binding("d", "diff", "Diff vs exp", id="run.diff"),
        Binding("p", "samples", "Pictures", id="run.samples"),
        Binding("y", "copy_id", "Copy id", id="run.copy_id"),
        Binding("r", "act('resume')", "Resume", id="run.resume"),
        Binding("a", "act('again')", "Again…", id="run.again"),
        # shown in the header's hint line and in help (? ): the footer has no room at 80
        Binding("t", "act('tag')", "Tag", show=False, id="run.tag"),
        Binding("n", "act('note')", "Note", show=False, id="run.note"),
        Binding("A", "act('archive')", "Archive / unarchive", show=False, id="run.archive"),
        Binding("D", "act('delete')", "Delete (to the trash)", show=False, id="run.delete"),
    ]

    RESUMABLE = (RunStatus.KILLED, RunStatus.FAILED, RunStatus.INTERRUPTED)

    def __init__(self, run_id: str, store: RunStore, poll_interval: float = 1.0) -> None:
        super().__init__()
        self.run_id = run_id
        self.store = store
        self.poll_interval = poll_interval
        self.run: RunInfo | None = None
        self.rows: list[dict[str, Any]] = []
        self.steps: list[dict[str, Any]] = []  # step reports (steps.jsonl)
        # epochs, step reports, width, height last plotted
        self._drawn: tuple[int, int, int, int] = (-1, 0, 0, 0)
        self.note = ""  # why its result looks as it does (chance level), when known

    def compose(self) -> ComposeResult:
        yield Static(Text(self.run_id, style="bold"), id="run-header")
        with TabbedContent(initial="curves", id="run-tabs"):
            with TabPane("Curves [1]", id="curves"), Horizontal(id="plots"):
                yield Static("", id="loss-plot", classes="plot")
                yield Static("", id="acc-plot", classes="plot")
            with TabPane("Details [2]", id="details"), VerticalScroll(id="run-details"):
                yield Static("", id="run-system")
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
        steps = MetricsTail(run.path / STEPS)  # the same JSON lines, a report each
        log = LogTail(run.path / "log.txt", keep=200)
        last: dict[str, Any] | None = None
        last_meta: Any = run.meta
        spec = _spec_of(run)
        while not worker.is_cancelled:
            rows, reset = metrics.read()
            step_rows, steps_reset = steps.read()
            log_changed = log.read()
            try:
                summary = read_json(run.path / "summary.json")
            except (OSError, ValueError):
                summary = last if last is not None else run.summary
            try:  # tags, note: changed from here or from the shell; checked as on read
                meta = schema.check_meta(read_json(run.path / schema.META))[0]
            except (OSError, ValueError):
                meta = last_meta
            changed = rows or reset or step_rows or steps_reset or log_changed
            if changed or summary != last or last is None or meta != last_meta:
                last, last_meta = summary, meta
                run = RunInfo(run.id, run.experiment, run.path, summary, meta=meta)
                self.post_message(
                    RunTailed(
                        run,
                        rows,
                        reset,
                        list(log.lines) if log_changed else None,
                        steps=step_rows,
                        steps_reset=steps_reset,
                        note=chance_note(spec, run),
                    )
                )
            end = time.monotonic() + self.poll_interval
            while time.monotonic() < end and not worker.is_cancelled:
                time.sleep(0.05)

    @on(RunTailed)
    def tailed(self, event: RunTailed) -> None:
        event.stop()
        self.run = event.run
        self.run_id = event.run.id
        self.note = event.note
        if event.reset:
            self.rows = []
        self.rows += event.rows
        if event.steps_reset:
            self.steps = []
        self.steps += event.steps
        self.draw_header()
        if event.rows or event.reset or event.steps or event.steps_reset or self._drawn[0] < 0:
            self.draw_curves()
            self.draw_details()
        # the header may have grown (a reason, tags, a note): the plots' room changed,
        # and a plot drawn for the old room would lose its axis at the bottom
        self.call_after_refresh(self.draw_curves)
        if event.log is not None:
            self.query_one("#run-log", Static).update(
                Text("log (last lines)\n", style="bold") + Text("\n".join(event.log[-12:]))
            )

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Stop only an active run, resume only a stopped one: other keys are hidden."""
        status = self.run.status if self.run is not None else None
        if action == "cancel":
            return status in (RunStatus.RUNNING, RunStatus.QUEUED)
        if action == "act" and parameters == ("resume",):
            return status in self.RESUMABLE
        return True

    def draw_header(self) -> None:
        assert self.run is not None
        run = self.run
        reason = run.summary.get("reason")
        tags = "  ".join(f"#{t}" for t in run.tags)
        note = run.note.replace("\n", " ")
        self.query_one("#run-header", Static).update(
            Text.assemble(
                (visible(f"{run.experiment}/{run.id}"), "bold"),
                "  ",
                (visible(run.status), tables.STATUS_STYLE.get(run.status, "")),
                "  ",
                run_tables.run_header(
                    run, self.rows, live.latest_train_loss(self.rows, self.steps)
                ),
                (f"\n{visible(reason, multiline=True)}" if reason else "", "red"),
                ("\n" + "\n".join(system) if (system := self.system_lines()) else "", "dim"),
                (f"\n{self.note}" if self.note else "", "yellow"),
                (f"\n{visible(tags)}" if tags else "", "cyan"),
                (f"{'  ' if tags else chr(10)}note: {visible(note)}" if note else "", "italic"),
                ("\nt tag · n note · A archive · D delete · a again with changes", "dim"),
            )
        )
        self.refresh_bindings()

    def system_lines(self) -> list[str]:
        """What the run costs the machine: one line on the curves tab, all on details."""
        assert self.run is not None
        return live.system_lines(self.run.summary.get("system"))[:1]

    def on_resize(self) -> None:
        if self.run is not None:
            self.call_after_refresh(self.draw_curves)

    def draw_curves(self) -> None:
        if self.run is None:
            return
        loss_w = self.query_one("#loss-plot", Static)
        w, h = max(loss_w.size.width, 30), max(loss_w.size.height, 8)
        if self._drawn == (len(self.rows), len(self.steps), w, h):
            return  # nothing new: no redraw, no flicker
        self._drawn = (len(self.rows), len(self.steps), w, h)
        loss, acc = live.run_curves_live(self.rows, self.steps, self.run.experiment)
        loss_w.update(Text.from_ansi(pictures.plot(loss, width=w, height=h)))
        self.query_one("#acc-plot", Static).update(
            Text.from_ansi(pictures.plot(acc, width=w, height=h))
        )

    def draw_details(self) -> None:
        assert self.run is not None
        s = self.run.summary
        system = live.system_lines(s.get("system"))
        self.query_one("#run-system", Static).update(
            Text("system\n", style="bold") + Text("\n".join(system)) if system else ""
        )
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

    def action_act(self, action: str) -> None:
        self.post_message(RunAction(self.run_id, action))  # type: ignore[arg-type]

    def action_copy_id(self) -> None:
        self.app.copy_to_clipboard(self.run_id)
        self.notify(f"copied {self.run_id}")
