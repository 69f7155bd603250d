"""The command line: parses arguments, calls the core, prints. `main` is the entry point.

Commands live in `train_cmds` (run, cv, tune, resume), `read_cmds` (list, runs, show, diff,
plot, report) and `queue_cmds` (queue, logs, worker); importing them registers them on the
one Typer `app`.
"""

from __future__ import annotations

from rich.markup import escape

from mnist_tui.cli import manage_cmds, queue_cmds, read_cmds, train_cmds  # noqa: F401
from mnist_tui.cli.options import app, err
from mnist_tui.errors import MnistTuiError

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors print one clear message and exit non-zero."""
    try:
        app(args=argv, prog_name="mnist-tui")
    except MnistTuiError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise SystemExit(exc.exit_code) from None
