"""`mnist-tui --help` groups commands by what a person is doing, most used first (Typer's
rich_help_panel): train, look, queue, manage. A command not named here goes last, under
"More", so a new command is never hidden but never pushes the common ones down."""

from __future__ import annotations

import typer

PANELS: dict[str, tuple[str, ...]] = {
    "Train": ("run", "new", "cv", "tune", "resume"),
    "Look": ("list", "runs", "show", "diff", "plot", "report", "variants", "compare"),
    "Queue": ("queue", "logs", "worker", "devices"),
    "Manage": (
        "tag",
        "note",
        "archive",
        "unarchive",
        "export",
        "export-model",
        "delete",
        "gc",
    ),
}
MORE = "More"


def _place(name: str) -> tuple[int, int, str]:
    for rank, (_, names) in enumerate(PANELS.items()):
        if name in names:
            return rank, names.index(name), name
    return len(PANELS), 0, name


def panel_of(name: str) -> str:
    rank = _place(name)[0]
    return list(PANELS)[rank] if rank < len(PANELS) else MORE


def command_name(cmd: typer.models.CommandInfo) -> str:
    """The name a command line types: its own, or its function's with dashes."""
    return (cmd.name or (cmd.callback.__name__ if cmd.callback else "")).replace("_", "-")


def group_commands(app: typer.Typer) -> None:
    """Put each command and command group in its panel, in the panels' order."""
    for cmd in app.registered_commands:
        cmd.rich_help_panel = panel_of(command_name(cmd))
    for group in app.registered_groups:
        group.rich_help_panel = panel_of(group.name or "")
    app.registered_commands.sort(key=lambda cmd: _place(command_name(cmd)))
