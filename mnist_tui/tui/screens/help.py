"""Help: the keys of the screen it was opened from, read from its live bindings."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import ActiveBinding, Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static


def key_rows(screen: Screen[object]) -> list[tuple[str, str, bool]]:
    """(keys, what they do, enabled) for every binding active on `screen` now: the screen's,
    the app's and the focused widget's; keys sharing an action are listed together."""
    by_action: dict[tuple[str, str], list[str]] = {}
    enabled: dict[tuple[str, str], bool] = {}

    def rank(active: ActiveBinding) -> tuple[int, int]:
        # the console's own keys (they carry ids) before Textual's; the screen's, the app's,
        # then the focused widget's (moving about)
        node = 0 if active.node is screen else 1 if active.node is screen.app else 2
        return (0 if active.binding.id else 1, node)

    for active in sorted(screen.active_bindings.values(), key=rank):
        b = active.binding
        what = b.description or b.action.replace("_", " ")
        slot = (b.action, what)
        shown = screen.app.get_key_display(b)
        if shown not in by_action.setdefault(slot, []):
            by_action[slot].append(shown)
        enabled[slot] = enabled.get(slot, False) or active.enabled
    return [(" ".join(keys), slot[1], enabled[slot]) for slot, keys in by_action.items()]


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close", id="help.close")]

    def __init__(self, title: str, rows: list[tuple[str, str, bool]], notes: list[str]) -> None:
        super().__init__()
        self.title_text = title
        self.rows = rows
        self.notes = notes

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(no_wrap=True, style="bold")
        table.add_column()
        for keys, what, on in self.rows:
            table.add_row(keys, Text(what, style="" if on else "dim"))
        with Vertical(id="help-box"):
            yield Static(Text(self.title_text, style="bold"), id="help-title")
            with VerticalScroll(id="help-scroll"):
                yield Static(table, id="help-text")
                yield Static(Text("\n".join(self.notes), style="dim"), id="help-notes")
            yield Static("↑ ↓ PgUp PgDn scroll · esc close", id="help-hint")

    def on_mount(self) -> None:
        self.query_one("#help-scroll", VerticalScroll).focus()

    def action_close(self) -> None:
        self.dismiss(None)
