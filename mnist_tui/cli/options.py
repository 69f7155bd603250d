"""The Typer app, its shared options and output helpers; commands register on `app`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from mnist_tui.errors import MnistTuiError

app = typer.Typer(
    name="mnist-tui",
    help="Terminal experiment console for MNIST / Fashion-MNIST studies. "
    "With no command, opens the interactive console.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
console = Console()
err = Console(stderr=True)

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Dataset root (torchvision layout). Env: MNIST_TUI_DATA.",
        show_default=False,
    ),
]
RunsDir = Annotated[
    Path | None,
    typer.Option(
        "--runs-dir", help="Run store. Env: MNIST_TUI_RUNS. Default: ./runs", show_default=False
    ),
]
ExpDir = Annotated[
    Path | None,
    typer.Option(
        "--experiments-dir",
        help="Experiment definitions. Env: MNIST_TUI_EXPERIMENTS.",
        show_default=False,
    ),
]
JsonOut = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def stores(experiments_dir: Path | None, runs_dir: Path | None) -> tuple[Path, Any]:
    from mnist_tui.config.loading import default_experiments_dir
    from mnist_tui.runs.store import RunStore, default_runs_dir

    return experiments_dir or default_experiments_dir(), RunStore(default_runs_dir(runs_dir))


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    data_dir: DataDir = None,
    runs_dir: RunsDir = None,
    experiments_dir: ExpDir = None,
    device: Annotated[str, typer.Option(help="Device for queued runs.")] = "auto",
    concurrency: Annotated[
        int, typer.Option(help="Runs trained at once by the console (0 pauses the queue).")
    ] = 1,
) -> None:
    if ctx.invoked_subcommand is not None:
        # the global directory options also apply to subcommands that leave them unset
        ctx.obj = {"data_dir": data_dir, "runs_dir": runs_dir, "experiments_dir": experiments_dir}
        return
    if not sys.stdin.isatty() or not sys.stdout.isatty():
        raise MnistTuiError(
            "the console needs a terminal; for scripts use the commands (mnist-tui --help)"
        )
    from mnist_tui.tui.app import run_app

    run_app(
        data_dir=data_dir,
        runs_dir=runs_dir,
        experiments_dir=experiments_dir,
        device=device,
        concurrency=concurrency,
    )


def global_option(ctx: typer.Context, key: str, value: Any) -> Any:
    if value is not None:
        return value
    return (ctx.obj or {}).get(key) if ctx.obj else None


def context_stores(
    ctx: typer.Context, experiments_dir: Path | None, runs_dir: Path | None
) -> tuple[Path, Any]:
    """The experiments directory and run store, from the command's options or the global ones."""
    return stores(
        global_option(ctx, "experiments_dir", experiments_dir),
        global_option(ctx, "runs_dir", runs_dir),
    )
