"""What every screen of the console shares."""

from __future__ import annotations

from textual.screen import Screen
from textual.worker import Worker, WorkerState

from mnist_tui.tui.messages import Notice


def failure_notice(event: Worker.StateChanged) -> Notice | None:
    """A worker that raised, as a message for the app to show (the console goes on)."""
    if event.state != WorkerState.ERROR:
        return None
    return Notice(f"{event.worker.name}: {event.worker.error}", "error")


class ConsoleScreen(Screen[None]):
    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # Worker.StateChanged does not bubble: each screen passes failures on to the app
        notice = failure_notice(event)
        if notice is not None:
            self.post_message(notice)
