"""The Typer app, its shared options and output helpers; commands register on `app`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mnist_tui.errors import MnistTuiError
from mnist_tui.views.safe_console import SafeConsole

if TYPE_CHECKING:  # imported inside the functions: --help stays fast
    from mnist_tui.runs.store import RunStore

app = typer.Typer(
    name="mnist-tui",
    help="Terminal experiment console for MNIST / Fashion-MNIST studies. "
    "With no command, opens the interactive console.",
    no_args_is_help=False,
    add_completion=True,  # --install-completion: experiments, run ids and -S keys complete
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
# no automatic highlighting: it is quadratic in the text (a 40 KB description took 15 s)
# SafeConsole: a control character in stored text is shown, never sent (views.visible)
console = SafeConsole(highlight=False)
err = SafeConsole(stderr=True, highlight=False)

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
Overrides = Annotated[
    list[str] | None,
    typer.Option(
        "-S",
        "--set",
        metavar="KEY=VALUE",
        help="Override a key, e.g. -S optim.lr=0.01 (repeatable).",
    ),
]
Epochs = Annotated[int | None, typer.Option(metavar="N", help="Shortcut for -S train.epochs=N.")]
Device = Annotated[str, typer.Option(metavar="DEVICE", help="auto, cpu, cuda or cuda:N.")]
Threads = Annotated[
    int | None,
    typer.Option(metavar="N", help="CPU threads for training (default: all cores)."),
]
Download = Annotated[
    bool, typer.Option("--download/--no-download", help="Download missing datasets.")
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]


def overrides_with(
    set_: list[str] | None, epochs: int | None, seed: int | None = None
) -> list[str]:
    """The `-S` overrides with the shortcuts added; a shortcut that a `-S` contradicts is
    an error (config/override_conflicts.py), not silently the winner."""
    from mnist_tui.config.overrides import check_shortcut

    out = list(set_ or [])
    if epochs is not None:
        check_shortcut("--epochs", "train.epochs", epochs, out)
    if seed is not None:
        check_shortcut("--seed", "train.seed", seed, out)
    if epochs is not None:
        out.append(f"train.epochs={epochs}")
    if seed is not None:
        out.append(f"train.seed={seed}")
    return out


Seed = Annotated[int | None, typer.Option(metavar="N", help="Shortcut for -S train.seed=N.")]
Repeats = Annotated[
    int | None,
    typer.Option(
        metavar="N", help="Train N seeds (seed, seed+1, ...); overrides \\[train] repeats."
    ),
]
Seeds = Annotated[
    str | None, typer.Option(metavar="0,1,2", help="Comma-separated seeds (a group of runs).")
]


def stores(experiments_dir: Path | None, runs_dir: Path | None) -> tuple[Path, RunStore]:
    from mnist_tui.config.loading import default_experiments_dir
    from mnist_tui.runs.store import RunStore, default_runs_dir

    return experiments_dir or default_experiments_dir(), RunStore(default_runs_dir(runs_dir))


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def _print_version(value: bool) -> None:
    if value:
        from mnist_tui import __version__

        print(f"mnist-tui {__version__}")
        raise typer.Exit()


# the global options that take a value: the command line's command is the first word
# that is not one of these or its value (cli.invoked_name); a test keeps it in step
ROOT_VALUE_OPTIONS = (
    "--data-dir",
    "--runs-dir",
    "--experiments-dir",
    "--device",
    "--concurrency",
    "--backend",
    "--address",
)


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    data_dir: DataDir = None,
    runs_dir: RunsDir = None,
    experiments_dir: ExpDir = None,
    device: Annotated[
        str, typer.Option(metavar="DEVICE", help="Pin the console's queued runs: cpu, 0, cuda:1.")
    ] = "auto",
    concurrency: Annotated[
        int,
        typer.Option(
            metavar="N", help="Runs at once per device for the worker it starts (0 pauses)."
        ),
    ] = 1,
    backend: Annotated[
        str, typer.Option(metavar="BACKEND", help="The worker it starts: local or ray.")
    ] = "local",
    address: Annotated[
        str | None, typer.Option(metavar="ADDR", help="The Ray cluster (with --backend ray).")
    ] = None,
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
        backend=backend,
        address=address,
    )


def global_option(ctx: typer.Context, key: str, value: Any) -> Any:
    if value is not None:
        return value
    return (ctx.obj or {}).get(key) if ctx.obj else None


def context_stores(
    ctx: typer.Context, experiments_dir: Path | None, runs_dir: Path | None
) -> tuple[Path, RunStore]:
    """The experiments directory and run store, from the command's options or the global ones."""
    return stores(
        global_option(ctx, "experiments_dir", experiments_dir),
        global_option(ctx, "runs_dir", runs_dir),
    )
