"""A strip of one line a device on the queue tab: memory, utilisation, slots and runs.

Read in a thread every 2 s, and only while it is shown: an idle console on another tab
does no work for it at all.
"""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.widgets import Static

from mnist_tui.runs.devices import DevicesView, device_status, prime_cpu
from mnist_tui.runs.store import RunStore
from mnist_tui.views.devices import strip_lines

REFRESH = 2.0


class DevicesStrip(Static):
    DEFAULT_CSS = """
    DevicesStrip { height: auto; max-height: 6; color: $text-muted; padding: 0 1; }
    """

    def __init__(self, store: RunStore | None, **kwargs: object) -> None:
        super().__init__("", **kwargs)  # type: ignore[arg-type]
        self.store = store
        self.view: DevicesView | None = None

    def on_mount(self) -> None:
        prime_cpu()
        self.set_interval(REFRESH, self.tick)
        self.call_after_refresh(self.tick)

    def tick(self) -> None:
        if self.store is not None and self.region.area:  # laid out: its tab is shown
            self.read()

    @work(thread=True, exclusive=True, group="devices", exit_on_error=False)
    def read(self) -> None:
        assert self.store is not None
        view = device_status(self.store)
        self.app.call_from_thread(self.show_view, view)

    def show_view(self, view: DevicesView) -> None:
        self.view = view
        width = max(20, self.size.width - 2)
        text = Text()
        for i, (line, style) in enumerate(strip_lines(view, width)):
            text.append(("\n" if i else "") + line, style=style)
        self.update(text)
