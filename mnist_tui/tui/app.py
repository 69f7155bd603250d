"""The console app: holds the context (experiments, run store, queue) and answers the
screens' requests (tui/messages.py) by pushing screens or touching the queue.

One store thread does all blocking store and queue work in order: the queue jobs the
user asked for, advancing the queue, then reading the store; it posts a `StoreRead`
only when something changed. Training happens in child processes (see runs/queue.py).
"""

from __future__ import annotations

import queue as jobs_queue
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from textual import on, work
from textual.app import App
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import Worker, get_current_worker

from mnist_tui.config.loading import default_experiments_dir
from mnist_tui.config.spec import ExperimentSpec
from mnist_tui.runs.queue import QueueRunner, RunQueue
from mnist_tui.runs.store import RunStore, default_runs_dir
from mnist_tui.tui.messages import (
    AskQueue,
    CancelRun,
    MainReady,
    MoveRun,
    Notice,
    OpenDiff,
    OpenExperiment,
    OpenOverlay,
    OpenRun,
    OpenSamples,
    OpenSearches,
    QuitRequested,
    StoreRead,
)
from mnist_tui.tui.screens import (
    DiffScreen,
    ExperimentScreen,
    HelpScreen,
    MainScreen,
    OverlayScreen,
    QueueDialog,
    QuitDialog,
    RunScreen,
    SamplesScreen,
    SearchScreen,
)
from mnist_tui.tui.screens.base import failure_notice
from mnist_tui.tui.screens.dialogs import QueueChoice
from mnist_tui.tui.screens.help import key_rows
from mnist_tui.tui.workers import StoreReader
from mnist_tui.views.tables import QueuedRun

Job = Callable[[], str | None]  # runs on the store thread; returns what to tell the user
_STOP: Job = lambda: None  # noqa: E731 - a sentinel the store thread recognises by identity


class MnistTuiApp(App[None]):
    TITLE = "mnist-tui"
    CSS_PATH = "app.tcss"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [Binding("question_mark", "help", "Help", id="app.help")]

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
        self.data_dir = data_dir
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
        self.reader = StoreReader(self.experiments_dir, self.store)
        self.in_flight = 0
        self._jobs: jobs_queue.SimpleQueue[Job] = jobs_queue.SimpleQueue()

    def get_default_screen(self) -> Screen[None]:
        return MainScreen()

    @property
    def main(self) -> MainScreen:
        screen = self.screen_stack[0]
        assert isinstance(screen, MainScreen)
        return screen

    @on(MainReady)
    def main_ready(self) -> None:
        self.store_thread()

    def on_unmount(self) -> None:
        self._jobs.put(_STOP)

    # -- the store thread ----------------------------------------------------------------

    @work(thread=True, group="store", exit_on_error=False)
    def store_thread(self) -> None:
        worker = get_current_worker()
        while not worker.is_cancelled:
            try:
                self._advance_queue()
                snapshot = self.reader.read(self._queue_rows())
            except Exception as exc:  # one failed read must not stop every later one
                self.post_message(Notice(f"reading the run store: {exc}", "error"))
                snapshot = None
            if snapshot is not None:
                self.post_message(snapshot)
            try:
                job: Job | None = self._jobs.get(timeout=self.poll_interval)
            except jobs_queue.Empty:
                job = None
            while job is not None:
                if job is _STOP:
                    return
                try:
                    said = job()
                except Exception as exc:  # said on screen; the thread goes on
                    self.post_message(Notice(str(exc), "error"))
                else:
                    if said:
                        self.post_message(Notice(said))
                try:
                    job = self._jobs.get_nowait()
                except jobs_queue.Empty:
                    job = None

    @on(StoreRead)
    def store_read(self, event: StoreRead) -> None:
        self.in_flight = event.in_flight
        self.main.apply(event)

    @on(Notice)
    def notice(self, event: Notice) -> None:
        self.notify(
            event.text, severity=event.severity, timeout=8 if event.severity == "error" else 4
        )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A worker that failed says so on screen instead of taking the console down."""
        notice = failure_notice(event)
        if notice is not None:
            self.notice(notice)

    # -- the queue: every use the console makes of it is in these methods ---------------

    def queue_runs(self, specs: list[ExperimentSpec], overrides: list[str]) -> None:
        def job() -> str:
            for spec in specs:
                self.queue.add(spec, overrides)
            names = ", ".join(s.name for s in specs)
            return f"queued {names}" + (f" with {' '.join(overrides)}" if overrides else "")

        self._jobs.put(job)

    def cancel_run(self, run_id: str) -> None:
        def job() -> str:
            if self.queue.find(run_id) is None:
                return f"run {run_id} is not queued or running from this console"
            self.queue.cancel(run_id)
            return f"cancelling {run_id}"

        self._jobs.put(job)

    def move_run(self, run_id: str, where: Literal["up", "down"]) -> None:
        def job() -> None:
            self.queue.move(run_id, -1 if where == "up" else 1)

        self._jobs.put(job)

    def stop_all_runs(self, then: Callable[[], None]) -> None:
        def job() -> None:
            for entry in list(self.queue.entries):
                self.queue.cancel(entry.run_id)
            self.call_from_thread(then)

        self._jobs.put(job)

    def _advance_queue(self) -> None:
        """Start what the concurrency allows, reap what ended (store thread)."""
        self.runner.poll()

    def _queue_rows(self) -> list[QueuedRun]:
        """The queue in order, for the queue tab (store thread)."""
        return [
            QueuedRun(e.run_id, e.experiment, tuple(e.overrides), e.started, self.queue.run_info(e))
            for e in list(self.queue.entries)
        ]

    # -- requests from the screens -------------------------------------------------------

    @on(OpenExperiment)
    def open_experiment(self, event: OpenExperiment) -> None:
        self.push_screen(ExperimentScreen(event.name, self.experiments_dir, self.store))

    @on(OpenRun)
    def open_run(self, event: OpenRun) -> None:
        self.push_screen(RunScreen(event.run_id, self.store, min(self.poll_interval, 1.0)))

    @on(OpenDiff)
    def open_diff(self, event: OpenDiff) -> None:
        self.push_screen(DiffScreen(event.a, event.b, self.experiments_dir, self.store))

    @on(OpenOverlay)
    def open_overlay(self, event: OpenOverlay) -> None:
        self.push_screen(OverlayScreen(event.run_ids, self.store))

    @on(OpenSamples)
    def open_samples(self, event: OpenSamples) -> None:
        self.push_screen(SamplesScreen(event.run, self.data_dir))

    @on(OpenSearches)
    def open_searches(self) -> None:
        self.push_screen(SearchScreen(self.store))

    @on(AskQueue)
    def ask_queue(self, event: AskQueue) -> None:
        def chosen(choice: QueueChoice | None) -> None:
            if choice is not None:
                self.queue_runs(*choice)
                self.main.clear_marks("experiments")

        self.push_screen(QueueDialog(event.names, self.experiments_dir), chosen)

    @on(CancelRun)
    def cancel_requested(self, event: CancelRun) -> None:
        self.cancel_run(event.run_id)

    @on(MoveRun)
    def move_requested(self, event: MoveRun) -> None:
        self.move_run(event.run_id, event.where)

    async def action_quit(self) -> None:
        """ctrl+q asks about runs in flight like q does."""
        self.quit_requested()

    @on(QuitRequested)
    def quit_requested(self) -> None:
        if not self.in_flight:
            self.exit()
            return

        def chosen(what: str | None) -> None:
            if what == "kill":
                self.stop_all_runs(self.exit)
            elif what == "keep":
                self.exit()

        self.push_screen(QuitDialog(self.in_flight), chosen)

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        name = type(self.screen).__name__.removesuffix("Screen").lower() or "main"
        notes = [
            "Runs train in child processes; the queue survives restarts.",
            f"Run store: {self.store.root}",
            f"Experiments: {self.experiments_dir}",
        ]
        self.push_screen(HelpScreen(f"keys: {name}", key_rows(self.screen), notes))


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
