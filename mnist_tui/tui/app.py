"""The console app: holds the context (experiments, run store, queue) and answers the
screens' requests (tui/messages.py) by pushing screens or touching the queue.

One store thread does all blocking store and queue work in order: the queue jobs the
user asked for, advancing the queue, then reading the store; it posts a `StoreRead`
only when something changed. The console never trains: it queues runs in the store and
makes sure a worker (runs/worker.py) is serving it, so queued runs keep starting after
the console quits or the SSH session drops.
"""

from __future__ import annotations

import queue as jobs_queue
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from textual import on, work
from textual.app import App
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.notifications import Notification, Notify
from textual.screen import Screen
from textual.worker import Worker, get_current_worker

from mnist_tui.config.loading import default_experiments_dir
from mnist_tui.config.spec import ExperimentSpec
from mnist_tui.runs import scheduler
from mnist_tui.runs.record import RunInfo
from mnist_tui.runs.store import RunStore, default_runs_dir
from mnist_tui.runs.worker import WorkerOptions, ensure_worker, worker_info
from mnist_tui.status import RunStatus
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
    RunAction,
    StoreChanged,
    StoreRead,
    TogglePause,
)
from mnist_tui.tui.screens import (
    ConfirmStop,
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
from mnist_tui.tui.screens.dialogs import AskText, Confirm, QueueChoice
from mnist_tui.tui.screens.help import key_rows
from mnist_tui.tui.workers import StoreReader
from mnist_tui.views.run_tables import QueuedRun
from mnist_tui.views.visible import visible

Job = Callable[[], str | None]  # runs on the store thread; returns what to tell the user
_STOP: Job = lambda: None  # noqa: E731 - a sentinel the store thread recognises by identity


def _read_now() -> None:
    """A job that does nothing: it wakes the store thread for its next read at once."""


class MnistTuiApp(App[None]):
    TITLE = "mnist-tui"
    CSS_PATH = "app.tcss"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        Binding("question_mark", "help", "Help", id="app.help"),
        Binding("V", "variants", "Variants", show=False, id="app.variants"),
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
        backend: str = "local",
        address: str | None = None,
    ) -> None:
        super().__init__()
        self.experiments_dir = experiments_dir or default_experiments_dir()
        self.data_dir = data_dir
        self.store = RunStore(default_runs_dir(runs_dir))
        pinned = scheduler.normalize_device(device)
        # the worker this console starts, if none serves the store yet
        self.worker_options = WorkerOptions(
            devices=(pinned,) if pinned else (),
            per_device=max(1, concurrency),
            data_dir=data_dir,
            backend=backend,
            address=address,
        )
        if concurrency == 0:
            scheduler.pause(self.store)  # --concurrency 0: queue without starting anything
        self._statuses: dict[str, str] = {}  # run id -> status last seen, for notices
        self.poll_interval = poll_interval
        self.reader = StoreReader(self.experiments_dir, self.store)
        self.in_flight = 0
        self._title_shown = ""  # the live summary last put in the terminal's title
        self._jobs: jobs_queue.SimpleQueue[Job] = jobs_queue.SimpleQueue()
        self._notices: dict[str, Notification] = {}  # the last notice shown per subject

    def get_default_screen(self) -> Screen[None]:
        return MainScreen(self.store.root)

    @property
    def main(self) -> MainScreen:
        screen = self.screen_stack[0]
        assert isinstance(screen, MainScreen)
        return screen

    @on(MainReady)
    def main_ready(self) -> None:
        self.store_thread()

    # -- the store thread ----------------------------------------------------------------

    @work(thread=True, group="store", exit_on_error=False)
    def store_thread(self) -> None:
        worker = get_current_worker()
        while not worker.is_cancelled:
            try:
                self._advance_queue()
                snapshot = self.reader.read(self._queue_rows(), scheduler.is_paused(self.store))
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
        self._notify_endings(event.watched)
        try:
            self.main.apply(event)
        except NoMatches:
            # a read that lands while the console closes finds its tables gone: nothing
            # is left to show it on (any other time a missing table is a bug)
            closing = self._exit or not self.is_running or not self.main.is_running
            if closing or not self.main.is_attached:
                return
            raise
        if event.runs is not None:
            # every other open screen follows the store too (an experiment's runs, a
            # search's trials): none stays as it was when it was opened
            for screen in self.screen_stack[1:]:
                screen.post_message(StoreChanged(event))
        if not self.reader.complete:
            # the first read showed the newest runs: once they are on screen, the store
            # thread reads them all (before, it would hold up the first drawing)
            self.call_after_refresh(self._jobs.put, _read_now)
        if event.title and event.title != self._title_shown:
            self._title_shown = event.title
            self._terminal_title(f"mnist-tui: {event.title}")

    def _terminal_title(self, text: str) -> None:
        """The live summary in the terminal's (or tmux pane's) title, seen from other
        windows and tabs while the console is in the background (OSC 2)."""
        driver = self._driver  # Textual writes its own escapes (OSC 52) the same way
        if driver is not None and not self.is_headless:
            driver.write(f"\x1b]2;{text}\a")

    def on_mount(self) -> None:
        if self._driver is not None and not self.is_headless:
            self._driver.write("\x1b[22;2t")  # keep the terminal's title to put it back

    def on_unmount(self) -> None:
        self._jobs.put(_STOP)
        if self._driver is not None and not self.is_headless:
            self._driver.write("\x1b[23;2t")  # the title the terminal had before

    @on(Notice)
    def notice(self, event: Notice) -> None:
        timeout = 8 if event.severity == "error" else 4
        text = visible(event.text, multiline=True)  # a failure reason is stored text
        if not event.subject:
            self.notify(text, severity=event.severity, timeout=timeout)
            return
        # one notice per subject: a new one replaces the last instead of stacking
        old = self._notices.pop(event.subject, None)
        if old is not None and old in self._notifications:
            self._unnotify(old, refresh=False)
        note = Notification(text, "", event.severity, timeout, markup=True)
        self._notices[event.subject] = note
        self.post_message(Notify(note))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A worker that failed says so on screen instead of taking the console down."""
        notice = failure_notice(event)
        if notice is not None:
            self.notice(notice)

    # -- the queue: every use the console makes of it is in these methods ---------------

    def queue_runs(self, specs: list[ExperimentSpec], overrides: list[str]) -> None:
        from mnist_tui.studies.batch import plan_seeds, queue_planned

        def job() -> str:
            # each experiment's [train] repeats become a group of seeds, as with `queue add`
            planned = plan_seeds(specs, overrides)
            queue_planned(planned, self.store)
            if not scheduler.is_paused(self.store):  # a paused queue starts nothing
                ensure_worker(self.store, self.worker_options)
            names = ", ".join(s.name for s in specs)
            runs = f"{len(planned)} runs" if len(planned) > 1 else "1 run"
            with_ = f" with {' '.join(overrides)}" if overrides else ""
            return f"queued {names} ({runs}){with_}"

        self._jobs.put(job)

    def _find(self, run_id: str) -> RunInfo:
        return self.store.resolve(run_id)

    def cancel_run(self, run_id: str) -> None:
        def job() -> str:
            info = self._find(run_id)
            return f"{info.experiment}/{info.id}: {scheduler.cancel(self.store, info)}"

        self._jobs.put(job)

    def move_run(self, run_id: str, where: Literal["up", "down"]) -> None:
        def job() -> None:
            scheduler.move(self.store, self._find(run_id), where)

        self._jobs.put(job)

    def toggle_pause(self) -> None:
        def job() -> str:
            if scheduler.is_paused(self.store):
                scheduler.resume(self.store)
                if scheduler.queue_order(self.store):
                    ensure_worker(self.store, self.worker_options)
                return "queue resumed"
            scheduler.pause(self.store)
            return "queue paused: running runs go on, no new run starts"

        self._jobs.put(job)

    def stop_all_runs(self, then: Callable[[], None]) -> None:
        def job() -> None:
            for info in scheduler.active_runs(self.store):
                scheduler.cancel(self.store, info)
            self.call_from_thread(then)

        self._jobs.put(job)

    def _active(self) -> list[RunInfo]:
        """Running, then queued runs in order, read whole (the index's brief rows lack the
        queue position and progress); a handful of files, not the store (store thread)."""
        brief = self.reader.active_runs()
        full = [self.store.read_run(r.experiment, r.id) for r in brief]
        return scheduler.active_runs(self.store, [f for f in full if f is not None])

    def _advance_queue(self) -> None:
        """Runs are queued and no worker serves the store: start one (store thread)."""
        if scheduler.is_paused(self.store) or worker_info(self.store) is not None:
            return
        if any(r.stored_status == RunStatus.QUEUED for r in self.reader.active_runs()):
            ensure_worker(self.store, self.worker_options)

    def _queue_rows(self) -> list[QueuedRun]:
        """The queue tab's lines (store thread)."""
        return [
            QueuedRun(
                info.id,
                info.experiment,
                tuple(info.overrides),
                info.started,
                info,
            )
            for info in self._active()
        ]

    def _notify_endings(self, runs: list[RunInfo]) -> None:
        """A notice when a run this console saw active completes or fails."""
        for info in runs:
            before = self._statuses.get(info.id)
            status = info.status
            self._statuses[info.id] = status
            if before in (RunStatus.QUEUED, RunStatus.RUNNING) and status not in (
                RunStatus.QUEUED,
                RunStatus.RUNNING,
            ):
                acc = info.final("test_acc")
                figure = f", test accuracy {100 * acc:.2f}%" if isinstance(acc, float) else ""
                reason = info.reason
                text = f"{info.experiment}/{info.id} {status}{figure}"
                if status != RunStatus.COMPLETED and reason:
                    text += f": {reason}"
                self.notice(
                    Notice(text, "information" if status == RunStatus.COMPLETED else "error")
                )

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
        """A queued run goes at once (nothing is lost); a running one after a yes."""
        run = next((r for r in self.reader.last_runs() if r.id == event.run_id), None)
        if run is None or run.status != RunStatus.RUNNING or run.stop_requested:
            self.cancel_run(event.run_id)
            return

        def chosen(stop: bool | None) -> None:
            if stop:
                self.cancel_run(event.run_id)

        self.push_screen(ConfirmStop(run), chosen)

    @on(RunAction)
    def run_action_requested(self, event: RunAction) -> None:
        """Resume, tag, note, archive, delete (to the trash, as the CLI does), or queue the
        run's experiment again with its overrides in the dialog to change."""
        run = self._find(event.run_id)
        act = event.action
        if act == "again":
            overrides = [str(o) for o in run.overrides]

            def queued(choice: QueueChoice | None) -> None:
                if choice is not None:
                    self.queue_runs(*choice)

            title = f"Queue {run.experiment} again (from {run.id}): change what you like"
            dialog = QueueDialog([run.experiment], self.experiments_dir, " ".join(overrides), title)
            self.push_screen(dialog, queued)
        elif act == "tag":
            hint = "Tags, separated by spaces (a tag with a leading - is removed):"
            self.push_screen(
                AskText(f"Tags of {run.id}", hint, " ".join(run.tags)),
                lambda text: self._meta_job(run.id, "tag", text),
            )
        elif act == "note":
            self.push_screen(
                AskText(f"Note on {run.id}", "One line; empty clears it:", run.note),
                lambda text: self._meta_job(run.id, "note", text),
            )
        elif act == "archive":
            self._meta_job(run.id, "archive", "")
        elif act == "delete":
            detail = "It moves to the run store's trash (`mnist-tui gc` empties it)."
            self.push_screen(
                Confirm(f"Delete {run.experiment}/{run.id}?", detail),
                lambda yes: self._meta_job(run.id, "delete", "") if yes else None,
            )
        elif act == "resume":
            self._meta_job(run.id, "resume", "")

    def _meta_job(self, run_id: str, act: str, text: str | None) -> None:
        """The store part of a run action, on the store thread (None: cancelled)."""
        from mnist_tui.runs import manage

        if text is None:
            return

        def job() -> str:
            run = self._find(run_id)
            if act == "tag":
                words = text.split()
                gone = [w[1:] for w in words if w.startswith("-")]
                wanted = [w for w in words if not w.startswith("-")]
                dropped = [t for t in run.tags if t not in wanted]
                manage.set_tags(self.store, run, wanted)
                tags = manage.set_tags(self.store, run, gone + dropped, remove=True)
                return f"{run.id}: tags {' '.join(tags) or '(none)'}"
            if act == "note":
                manage.set_note(self.store, run, text.strip())
                return f"{run.id}: note {'saved' if text.strip() else 'cleared'}"
            if act == "archive":
                manage.set_archived(self.store, run, not run.archived)
                return f"{run.id}: {'unarchived' if run.archived else 'archived'}"
            if act == "delete":
                done = manage.delete_run(self.store, run)
                return f"{run.id}: moved to the trash ({done.moved_to})"
            from mnist_tui.studies.relaunch import start_resume

            start_resume(self.store, run, data_dir=self.data_dir)
            return f"{run.id}: resuming (its log shows how it goes)"

        self._jobs.put(job)

    @on(MoveRun)
    def move_requested(self, event: MoveRun) -> None:
        self.move_run(event.run_id, event.where)

    @on(TogglePause)
    def pause_requested(self) -> None:
        self.toggle_pause()

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

    def action_variants(self) -> None:
        from mnist_tui.tui.screens.variants import VariantsScreen

        if not isinstance(self.screen, VariantsScreen):
            self.push_screen(VariantsScreen(self.experiments_dir, self.store))

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        name = type(self.screen).__name__.removesuffix("Screen").lower() or "main"
        notes = [
            "A worker trains the queue in child processes; runs go on after you quit.",
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
    backend: str = "local",
    address: str | None = None,
) -> None:
    scheduler.normalize_device(device)  # a bad --device is an error now, not per queued run
    from mnist_tui.runs import backends

    backends.check(backend, address)  # e.g. without Ray installed: one line saying how
    app = MnistTuiApp(
        data_dir=data_dir,
        runs_dir=runs_dir,
        experiments_dir=experiments_dir,
        device=device,
        concurrency=concurrency,
        backend=backend,
        address=address,
    )
    app.run()
    # Textual sets a non-zero return code when the app died of an error: a script or a
    # supervisor must see that, not 0
    if app.return_code:
        raise SystemExit(app.return_code)
