"""The command line: parses arguments, calls the core, prints. `main` is the entry point.

Commands live in `train_cmds` (run, cv, tune, resume), `read_cmds` (list, runs, show, diff,
plot, report) and `queue_cmds` (queue, logs, worker); importing them registers them on the
one Typer `app`.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from mnist_tui.cli import (  # noqa: F401
    devices_cmd,
    manage_cmds,
    new_cmds,
    queue_cmds,
    read_cmds,
    stats_cmds,
    train_cmds,
)
from mnist_tui.cli.completion import attach
from mnist_tui.cli.options import ROOT_VALUE_OPTIONS, app, err
from mnist_tui.cli.panels import command_name, group_commands
from mnist_tui.errors import MnistTuiError
from mnist_tui.runs.index import BUILD_BATCH, BUILD_PROGRESS, deferred_checks

__all__ = ["app", "main"]


def readable_metavars(command: Any) -> Any:
    """Help shows `DIR`, `N`, `STATUS` instead of Typer's `<path>`, `<int>`, `<list[str]>`;
    a flag, `--help` and an argument (named in its own column) show none. Parameters that
    chose their own metavar keep it."""
    for param in command.params:
        if not param.opts[0].startswith("-"):  # an argument: its name already says it
            param.display_type_rich = lambda ctx: None
            if param.nargs == 1 and param.metavar is None:
                param.metavar = (param.name or "value").upper()
            continue
        if param.metavar is not None:
            continue
        longest = max(param.opts, key=len).lstrip("-")
        kind = param.bare_type() if hasattr(param, "bare_type") else "str"
        if getattr(param, "is_flag", False) or kind == "bool":
            param.metavar = ""
        elif kind == "path" or "Path" in kind:
            param.metavar = "DIR" if longest.endswith("dir") else "FILE"
        elif kind == "int":
            param.metavar = "N"
        elif kind == "float":
            param.metavar = "X"
        else:
            param.metavar = longest.upper().replace("-", "_")
    make_help = command.get_help_option

    def help_option(ctx: Any) -> Any:
        option = make_help(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = help_option
    for sub in getattr(command, "commands", {}).values():
        readable_metavars(sub)
    return command


def index_progress(root: Path, done: int, total: int) -> None:
    """A long index build says what it does (stderr): a missing index at 100,000 runs
    takes a while, and Ctrl-C keeps what was read."""
    if done <= BUILD_BATCH:
        err.print(
            f"building the run index of {escape(str(root))} ({total:,} runs to read; "
            "Ctrl-C stops, the next command goes on from there)",
            highlight=False,
        )
    if err.is_terminal:
        end = "\n" if done >= total else "\r"
        err.file.write(f"  {done:,} / {total:,} runs{end}")
        err.file.flush()
    elif done >= total:
        err.print(f"  {done:,} / {total:,} runs indexed", highlight=False)


def invoked_name(argv: list[str]) -> str | None:
    """The command a command line names: its first word that is neither a global option
    nor the value of one (`--runs-dir DIR runs`). None for the console, `--help` and the like."""
    words = iter(argv)
    for word in words:
        if word == "--help":
            return None  # `mnist-tui --help runs`: the root's help, with every command
        if word in ROOT_VALUE_OPTIONS:
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def only(name: str | None) -> typer.Typer:
    """The app with just the command a command line names, when it names one: building a
    Click command for each of the 30-odd commands is a fifth of a second that `runs` or
    `show` would pay on every call. `--help`, the console and a misspelt name (whose error
    suggests the right one) get the whole tree."""
    commands = [c for c in app.registered_commands if command_name(c) == name]
    groups = [g for g in app.registered_groups if g.name == name]
    if name is None or not (commands or groups):
        return app
    slim = copy.copy(app)
    slim.registered_commands = commands
    slim.registered_groups = groups
    return slim


def main(argv: list[str] | None = None, command: Any = None) -> None:
    """Console entry point: user errors print one clear message and exit non-zero.

    `command`: the Click command built once before (a warm trainer parent reuses it)."""
    if index_progress not in BUILD_PROGRESS:
        BUILD_PROGRESS.append(index_progress)
    try:
        group_commands(app)
        tree = only(invoked_name(sys.argv[1:] if argv is None else argv))
        command = command or attach(readable_metavars(typer.main.get_command(tree)))
        with deferred_checks():  # a command never stalls on the store's periodic full check
            command.main(args=argv, prog_name="mnist-tui", standalone_mode=True)
    except MnistTuiError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise SystemExit(exc.exit_code) from None
    except OSError as exc:
        # the environment failed (read-only store, full disk, unreadable file): not a bug
        from mnist_tui.runs.env_errors import describe

        err.print(f"[bold red]error:[/] {escape(describe(exc))}", highlight=False)
        raise SystemExit(2) from None
