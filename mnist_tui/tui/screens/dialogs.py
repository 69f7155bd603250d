"""Modal dialogs: overrides before queueing, stopping a running run, and what to do with
runs in flight on quit."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static
from textual.worker import Worker

from mnist_tui.config.loading import load_experiment
from mnist_tui.config.overrides import split_overrides
from mnist_tui.config.spec import ExperimentSpec
from mnist_tui.errors import MnistTuiError
from mnist_tui.runs.record import RunInfo
from mnist_tui.tui.messages import OverridesChecked
from mnist_tui.tui.screens.base import failure_notice

QueueChoice = tuple[list[ExperimentSpec], list[str]]


class QueueDialog(ModalScreen[QueueChoice | None]):
    """Ask for overrides; returns the resolved definitions and the overrides, or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="dialog.cancel")]

    def __init__(
        self, names: list[str], experiments_dir: Path, overrides: str = "", title: str = ""
    ) -> None:
        super().__init__()
        self.names = names
        self.experiments_dir = experiments_dir
        self.prefill = overrides  # a run queued again: its own overrides, to change
        self.title_text = title or f"Queue {', '.join(names)}"

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text)
            yield Label("Overrides (e.g. train.epochs=3 model.hidden=[64, 32]):")
            yield LineInput(self.prefill, placeholder="key=value ...", id="overrides")
            yield Static("", id="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Queue", variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def _submit(self) -> None:
        text = self.query_one(Input).value.strip()
        # values may hold spaces: model.hidden=[8, 8] is one override
        self.check(split_overrides(text) if text else [])

    @work(thread=True, exclusive=True, group="check", exit_on_error=False)
    def check(self, overrides: list[str]) -> None:
        """Resolve every definition with the overrides (reads TOML files: a thread)."""
        specs = []
        try:
            for name in self.names:
                specs.append(load_experiment(name, self.experiments_dir, overrides))
        except MnistTuiError as exc:
            # the CLI's errors name an override as `-S key=value`; here it was typed bare
            message = str(exc).replace("-S ", "")
            self.post_message(OverridesChecked([], overrides, message))
            return
        self.post_message(OverridesChecked(specs, overrides))

    @on(OverridesChecked)
    def checked(self, event: OverridesChecked) -> None:
        event.stop()
        if event.error:
            self.query_one("#dialog-error", Static).update(Text(event.error, style="red"))
        else:
            self.dismiss((event.specs, event.overrides))

    @on(Input.Submitted)
    def submitted(self) -> None:
        self._submit()

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        notice = failure_notice(event)
        if notice is not None:
            self.post_message(notice)


class LineInput(Input):
    """An input line whose ctrl+a goes to the start (as in a shell), whatever the
    terminal or Textual version makes of it; select-all stays on ctrl+shift+a."""

    BINDINGS = [Binding("ctrl+a", "home", "Go to start", show=False)]


class AskText(ModalScreen[str | None]):
    """One line of text (a run's tags, its note), pre-filled; None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="ask.cancel")]

    def __init__(self, title: str, hint: str, value: str = "") -> None:
        super().__init__()
        self.title_text, self.hint, self.value = title, hint, value

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(self.title_text, style="bold"))
            yield Label(self.hint)
            yield LineInput(self.value, id="ask-text")
            yield Label("enter: save    esc: cancel")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class Confirm(ModalScreen[bool]):
    """A yes / no question (deleting a run)."""

    BINDINGS = [
        Binding("y", "choose(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "choose(False)", "No", id="confirm.no"),
    ]

    def __init__(self, question: str, detail: str) -> None:
        super().__init__()
        self.question, self.detail = question, detail

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(self.question, style="bold"))
            yield Label(self.detail)
            yield Label("y: yes    n / esc: no")

    def action_choose(self, yes: bool) -> None:
        self.dismiss(yes)


class QuitDialog(ModalScreen[str]):
    """Runs are in flight: keep them going in the background, kill them, or stay."""

    BINDINGS = [
        Binding("k", "choose('keep')", "Keep running", id="quit.keep"),
        Binding("x", "choose('kill')", "Kill runs", id="quit.kill"),
        Binding("escape", "choose('stay')", "Stay", id="quit.stay"),
    ]

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"{self.n} run(s) are training or queued.")
            yield Label("k: quit and keep them running (re-attached when you reopen)")
            yield Label("x: quit and kill them    esc: stay")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Keep running", variant="primary", id="keep")
                yield Button("Kill runs", variant="error", id="kill")
                yield Button("Stay", id="stay")

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id or "stay")

    def action_choose(self, what: str) -> None:
        self.dismiss(what)


class ConfirmStop(ModalScreen[bool]):
    """Stopping a running run loses the epoch in progress: ask first (y / n)."""

    BINDINGS = [
        Binding("y,enter", "choose(True)", "Stop it", id="stop.yes"),
        Binding("n,escape", "choose(False)", "Keep it", id="stop.no"),
    ]

    def __init__(self, run: RunInfo) -> None:
        super().__init__()
        self.run = run

    def compose(self) -> ComposeResult:
        r = self.run
        done, total = r.epochs_done, r.summary.get("epochs", "?")
        with Vertical(classes="dialog"):
            yield Label(Text(f"Stop {r.experiment}/{r.id}?", style="bold"))
            yield Label(f"It is running: epoch {done} of {total} done.")
            if done:
                yield Label(
                    f"It ends as killed and keeps its checkpoint of epoch {done}: "
                    f"`mnist-tui resume {r.id}` goes on from there."
                )
            else:  # no epoch ended: there is no checkpoint to keep
                yield Label(
                    "No epoch has ended: nothing is saved yet. It ends as killed; "
                    f"`mnist-tui resume {r.id}` trains it from the start."
                )
            yield Label("y: stop it    n / esc: keep it running")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Stop", variant="error", id="yes")
                yield Button("Keep running", variant="primary", id="no")

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_choose(self, stop: bool) -> None:
        self.dismiss(stop)
