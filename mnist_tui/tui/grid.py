"""DataGrid: a DataTable that shows a `views.tables.TableData`.

The same table data the CLI prints with Rich; here whole columns are dropped (highest
`drop` rank first) when the widget is too narrow, so ids and names are never cut, and
the cursor stays on the same row key when the rows are replaced.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace

from rich.text import Text
from textual.coordinate import Coordinate
from textual.widgets import DataTable

from mnist_tui.views.tables import Cell, Row, TableData, fit


class DataGrid(DataTable[Text]):
    DEFAULT_CSS = """
    DataGrid {
        height: 1fr;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=True)
        self.table_data: TableData | None = None
        self._headers: tuple[str, ...] = ()
        self._drawn_width = 0

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
        return str(key) if key else None  # "" is the placeholder row of an empty table

    def row_keys(self) -> list[str]:
        return [str(r.key.value) for r in self.ordered_rows if r.key.value]

    def _draw(self) -> None:
        assert self.table_data is not None
        width = self.size.width or self.app.size.width
        self._drawn_width = self.size.width
        # the vertical scrollbar takes two columns once the rows overflow
        room = width - (2 if len(self.table_data.rows) > max(self.size.height - 1, 1) else 0)
        data = self.table_data
        at = next((i for i, c in enumerate(data.columns) if c.keep), 0)
        if not data.rows and data.empty:  # fit the placeholder sentence too
            cells = [Cell("")] * len(data.columns)
            cells[at] = Cell(data.empty)
            data = replace(data, rows=[Row("", tuple(cells))])
        data = fit(data, room, padding=2 * self.cell_padding)
        if not self.table_data.rows:
            data = replace(data, rows=[])
        key = self.current_key
        headers = tuple(c.header for c in data.columns)
        if headers != self._headers:
            self.clear(columns=True)
            for i, c in enumerate(data.columns):
                self.add_column(Text(c.header, justify=c.justify), key=f"{i}:{c.header}")
            self._headers = headers
        else:
            self.clear()
        for row in data.rows:
            self.add_row(
                *(
                    Text(cell.text, style=cell.style, justify=col.justify)
                    for cell, col in zip(row.cells, data.columns, strict=True)
                ),
                key=row.key,
            )
        if not data.rows and data.empty:
            texts = [Text("")] * len(data.columns)
            texts[min(at, len(texts) - 1)] = Text(data.empty, style="dim italic")
            self.add_row(*texts, key="")
        if key is not None:
            with contextlib.suppress(Exception):  # the row is gone (filtered or removed)
                self.move_cursor(row=self.get_row_index(key), animate=False)
