"""The devices view as a table (`mnist-tui devices`) and as a strip of one line a device
(the console's queue tab). Plain data and text; no Textual here."""

from __future__ import annotations

from mnist_tui.runs.devices import DeviceRow, DevicesView
from mnist_tui.views.tables import Cell, Column, Row, TableData

GIB = 1 << 30


def _mem(row: DeviceRow) -> str:
    if row.mem_used is None or not row.mem_total:
        return "—"
    return f"{row.mem_used / GIB:.1f}/{row.mem_total / GIB:.1f} GiB"


def _util(row: DeviceRow) -> str:
    return "—" if row.util is None else f"{row.util:.0f}%"


def _level(fraction: float | None) -> str:
    if fraction is None:
        return ""
    return "red" if fraction >= 0.9 else "yellow" if fraction >= 0.7 else "green"


def _slots(row: DeviceRow) -> str:
    if not row.slots:
        return "not served" if not row.holders else f"{len(row.holders)} outside the worker"
    return f"{len(row.holders)}/{row.slots}"


def devices_table(view: DevicesView) -> TableData:
    rows = [
        Row(
            r.key,
            (
                Cell(r.label, "bold"),
                Cell(r.name),
                Cell(_slots(r)),
                Cell(", ".join(r.holders) or "—", "cyan" if r.holders else "dim"),
                Cell(_mem(r), _level(r.mem_fraction), r.mem_fraction),
                Cell(_util(r), _level(r.util / 100 if r.util is not None else None), r.util),
            ),
        )
        for r in view.rows
    ]
    return TableData(
        "devices",
        [
            Column("device", keep=True),
            Column("model", drop=3),
            Column("slots", "right"),
            Column("runs", drop=2),
            Column("memory used", "right"),
            Column("util", "right", drop=1),
        ],
        rows,
        [view.worker, *view.notes],
    )


def _bar(fraction: float | None, width: int = 8) -> str:
    if fraction is None:
        return " " * width
    full = round(max(0.0, min(1.0, fraction)) * width)
    return "█" * full + "░" * (width - full)


def strip_lines(view: DevicesView, width: int = 80) -> list[tuple[str, str]]:
    """One (text, style) line a device, cut to `width`; the notes' first line last."""
    out = []
    for r in view.rows:
        runs = ", ".join(h.split("/")[-1] for h in r.holders) or "idle"
        text = (
            f"{r.label:<7}{_bar(r.mem_fraction)} {_mem(r):>15} {_util(r):>5}  "
            f"slots {_slots(r)}  {runs}"
        )
        out.append((text[:width], _level(r.mem_fraction)))
    if view.notes:
        out.append((view.notes[0][:width], "dim"))
    return out
