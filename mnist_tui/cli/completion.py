"""Shell completion (`mnist-tui --install-completion`): experiment names, run ids and
`-S` keys. Attached to the parameters by name when the command tree is built, so every
command that takes an experiment, a run or an override completes it the same way.
Completion runs on every TAB: it reads file names and the run index, never torch."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import click
from click.shell_completion import CompletionItem

EXPERIMENT_PARAMS = ("experiment", "experiments")
RUN_PARAMS = ("ref", "refs", "run", "runs", "run_id", "run_ids")
EITHER = ("show", "diff")  # commands whose subjects are experiments or runs
KEY_PARAMS = ("set_",)


def _option(ctx: click.Context, name: str) -> Any:
    """An option typed earlier on the line, on this command or a parent (global)."""
    c: click.Context | None = ctx
    while c is not None:
        value = c.params.get(name)
        if value:
            return value
        c = c.parent
    return None


def experiment_names(ctx: click.Context, incomplete: str) -> list[str]:
    from mnist_tui.config.loading import default_experiments_dir, experiment_sources

    where = _option(ctx, "experiments_dir")
    directory = Path(where) if where else default_experiments_dir()
    with contextlib.suppress(Exception):  # a broken directory completes nothing
        return sorted(n for n in experiment_sources(directory) if n.startswith(incomplete))
    return []


def run_ids(ctx: click.Context, incomplete: str) -> list[CompletionItem]:
    from mnist_tui.runs.store import RunStore, default_runs_dir

    store = RunStore(default_runs_dir(_option(ctx, "runs_dir")))
    if not store.root.is_dir():
        return []
    with contextlib.suppress(Exception):
        return [
            CompletionItem(r.id, help=f"{r.experiment} {r.status}")
            for r in store.runs(brief=True)
            if r.id.startswith(incomplete)
        ]
    return []


def either(ctx: click.Context, incomplete: str) -> list[CompletionItem]:
    """A subject of `show` or `diff`: a run id or an experiment name."""
    names = [CompletionItem(n, help="experiment") for n in experiment_names(ctx, incomplete)]
    return run_ids(ctx, incomplete) + names


def override_keys() -> list[str]:
    """Every dotted key an experiment accepts: the sections' fields and every model's."""
    from mnist_tui.config.schema import fields_of
    from mnist_tui.config.spec import SECTIONS
    from mnist_tui.models import MODELS, model_params

    keys = {f"{section}.{name}" for section, cls in SECTIONS.items() for name in fields_of(cls)}
    keys.add("model.name")
    for model in MODELS:
        keys |= {f"model.{name}" for name in model_params(model)}
    return sorted(keys)


def keys(ctx: click.Context, incomplete: str) -> list[str]:
    if "=" in incomplete:
        return []  # the value: the shell's own completion
    return [f"{k}=" for k in override_keys() if k.startswith(incomplete)]


def attach(command: click.Command) -> click.Command:
    """Give every experiment, run and -S parameter of the tree its completion."""
    for param in command.params:
        name = param.name or ""
        if command.name in EITHER and not param.opts[0].startswith("-"):
            param._custom_shell_complete = lambda ctx, _p, inc: either(ctx, inc)
        elif name in EXPERIMENT_PARAMS:
            param._custom_shell_complete = lambda ctx, _p, inc: experiment_names(ctx, inc)
        elif name in RUN_PARAMS:
            param._custom_shell_complete = lambda ctx, _p, inc: run_ids(ctx, inc)
        elif name in KEY_PARAMS:
            param._custom_shell_complete = lambda ctx, _p, inc: keys(ctx, inc)
    for sub in getattr(command, "commands", {}).values():
        attach(sub)
    return command
