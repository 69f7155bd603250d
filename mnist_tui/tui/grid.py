"""DataGrid: a DataTable that shows a `views.tables.TableData`.

The same table data the CLI prints with Rich; here whole columns are dropped (highest
`drop` rank first) when the widget is too narrow, so ids and names are never cut, and
the cursor stays on the same row key when the rows are replaced.

Large stores: column widths come from the data (no per-cell measuring), at most
`max_rows` rows are shown (`hidden_rows` says how many more; the filter reaches them),
and when only cells changed (a run's status or epoch count) they are updated in place
instead of rebuilding.
"""

from __future__ import annotations

import contextlib
import textwrap
from dataclasses import replace

from rich.text import Text
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets import DataTable

from mnist_tui.views.tables import Cell, Column, Row, TableData, fit, widths

MAX_ROWS = 1000


class DataGrid(DataTable[Text]):
    BINDINGS = [
        # Home / End move the cursor to the first / last row (the table's own keys only
        # scroll sideways, which a fitted table never needs)
        Binding("home", "first_row", "First row", show=False),
        Binding("end", "last_row", "Last row", show=False),
    ]
    DEFAULT_CSS = """
    DataGrid {
        height: 1fr;
    }
    """

    def __init__(
        self, *, id: str | None = None, classes: str | None = None, max_rows: int = MAX_ROWS
    ) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=True)
        self.table_data: TableData | None = None
        self.max_rows = max_rows
        self.hidden_rows = 0  # rows past max_rows, not shown
        self._shown: TableData | None = None  # what the rows on screen were built from
        self._shown_widths: list[int] = []
        self._drawn_width = 0
        self.dropped: list[str] = []  # headers of columns left out for want of width

    def show(self, data: TableData) -> None:
        self.table_data = data
        if self.is_mounted:
            self._draw()

    def on_mount(self) -> None:
        if self.table_data is not None:
            self._draw()

    def on_resize(self) -> None:
        if self.table_data is not None and self.size.width != self._drawn_width:
            self._draw()

    @property
    def current_key(self) -> str | None:
        if not self.row_count or self.cursor_row >= self.row_count:
            return None
        key = self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0)).row_key.value
        return str(key) if is_data_key(key) else None  # the placeholder rows of an empty table

    def row_keys(self) -> list[str]:
        return [str(r.key.value) for r in self.ordered_rows if is_data_key(r.key.value)]

    @property
    def shown_headers(self) -> list[str]:
        """The headers of the columns on screen now (after dropping for width)."""
        return [c.header for c in self._shown.columns] if self._shown is not None else []

    def action_first_row(self) -> None:
        if self.row_count:
            self.move_cursor(row=0)

    def action_last_row(self) -> None:
        if self.row_count:
            self.move_cursor(row=self.row_count - 1)

    def _shape(self) -> TableData:
        """The data as it will be shown: capped, a placeholder row when empty, fitted."""
        assert self.table_data is not None
        data = self.table_data
        self.hidden_rows = max(0, len(data.rows) - self.max_rows)
        if self.hidden_rows:
            data = replace(data, rows=data.rows[: self.max_rows])
        width = self.size.width or self.app.size.width
        if not data.rows and data.empty:
            # the message alone, wrapped to the width: never cut mid-word at 80 columns
            self.dropped = []
            lines = textwrap.wrap(data.empty, max(width - 2 * self.cell_padding - 2, 20))
            return TableData(
                data.title,
                [Column("", keep=True)],
                [
                    Row("" if i == 0 else f"\0{i}", (Cell(t, "dim italic"),))
                    for i, t in enumerate(lines)
                ],
            )
        # the vertical scrollbar takes two columns once the rows overflow
        room = width - (2 if len(data.rows) > max(self.size.height - 1, 1) else 0)
        shaped = fit(data, room, padding=2 * self.cell_padding)
        shown = {c.header for c in shaped.columns}
        self.dropped = [
            c.header for c in data.columns if c.header.strip() and c.header not in shown
        ]
        return shaped

    class Dropped(Message):
        """The columns left out for want of width changed (`grid.dropped` names them)."""

        def __init__(self, grid: DataGrid) -> None:
            super().__init__()
            self.grid = grid

    def _draw(self) -> None:
        self._drawn_width = self.size.width
        before = self.dropped
        data = self._shape()
        if self.dropped != before:
            self.post_message(self.Dropped(self))
        natural = widths(data)
        if not self._update_in_place(data, natural):
            self._rebuild(data, natural)
        self._shown, self._shown_widths = data, natural

    def _update_in_place(self, data: TableData, natural: list[int]) -> bool:
        """Only cells changed (same columns, widths and rows): update those. False if not."""
        shown = self._shown
        if (
            shown is None
            or natural != self._shown_widths
            or [c.header for c in data.columns] != [c.header for c in shown.columns]
            or [r.key for r in data.rows] != [r.key for r in shown.rows]
        ):
            return False
        for old, new in zip(shown.rows, data.rows, strict=True):
            if old.cells == new.cells:
                continue
            for i, (a, b, col) in enumerate(zip(old.cells, new.cells, data.columns, strict=True)):
                if a != b:
                    self.update_cell(new.key, self._column_key(i, col), _text(b, col))
        return True

    @staticmethod
    def _column_key(i: int, col: Column) -> str:
        return f"{i}:{col.header}"

    def _rebuild(self, data: TableData, natural: list[int]) -> None:
        key = self.current_key
        self.clear(columns=True)
        for i, (c, w) in enumerate(zip(data.columns, natural, strict=True)):
            # widths from the data: DataTable need not measure every cell
            self.add_column(Text(c.header, justify=c.justify), width=w, key=self._column_key(i, c))
        for row in data.rows:
            self.add_row(
                *(_text(cell, col) for cell, col in zip(row.cells, data.columns, strict=True)),
                key=row.key,
            )
        if key is not None:
            with contextlib.suppress(Exception):  # the row is gone (filtered or removed)
                self.move_cursor(row=self.get_row_index(key), animate=False)


def is_data_key(key: object) -> bool:
    """A row of data, not a line of an empty table's message ("", "\\0N")."""
    return bool(key) and not str(key).startswith("\0")


def _text(cell: Cell, col: Column) -> Text:
    return Text(cell.text, style=cell.style, justify=col.justify)
