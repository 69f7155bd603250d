"""`mnist-tui new`: start a study of one's own (the work is in config/scaffold.py)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from mnist_tui.cli.options import ExpDir, app, console, global_option


@app.command()
def new(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The new experiment's name.")],
    from_: Annotated[
        str, typer.Option("--from", metavar="EXPERIMENT", help="The experiment it extends.")
    ] = "lenet5",
    model_file: Annotated[
        bool,
        typer.Option(
            "--model-file", help="Also write models/NAME.py, a model of your own to edit."
        ),
    ] = False,
    experiments_dir: ExpDir = None,
) -> None:
    """Write a new experiment that extends another, and with --model-file a model file."""
    from mnist_tui.config.loading import default_experiments_dir
    from mnist_tui.config.scaffold import new_experiment

    exp_dir = global_option(ctx, "experiments_dir", experiments_dir) or default_experiments_dir()
    made = new_experiment(name, from_, exp_dir, model_file=model_file)
    console.print(f"wrote {escape(str(made.experiment))}")
    if made.model_file is not None:
        console.print(
            f"wrote {escape(str(made.model_file))} (model {made.model}: edit it, then "
            f"`mnist-tui show {escape(name)}`)"
        )
    console.print(f"next: mnist-tui show {escape(name)}, then mnist-tui run {escape(name)}")
