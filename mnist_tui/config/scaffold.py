"""`mnist-tui new`: the first files of a new study, an experiment and (optionally) a model.

The experiment extends the one it starts from, so it holds only what differs; with a model
file, it names the model that file defines, and the file is a small commented builder
that the user edits. Nothing existing is overwritten.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from mnist_tui.config.loading import (
    experiment_layers,
    find_experiment,
    load_experiment,
)
from mnist_tui.config.names import name_problem
from mnist_tui.errors import SpecError, SpecProblem
from mnist_tui.user_models import model_catalog

MODEL_TEMPLATE = '''"""{name}: your own model. Edit it freely: every run keeps a copy of this file.

A model is a function decorated with @register_model. It is given the input shape
(channels, height, width) and the number of classes, then keyword-only parameters with
type hints and defaults: those are the keys of the experiment's [model] table, checked as
a shipped model's are (`mnist-tui show {experiment}` lists them, `-S model.dense=256`
overrides one). It returns a torch.nn.Module whose output is [batch, classes].
"""

from typing import Annotated

from torch import nn

from mnist_tui import Help, Length, Range, register_model


@register_model
def {name}(
    in_shape: tuple[int, int, int],
    num_classes: int,
    *,
    channels: Annotated[
        list[int], Length(min=1, max=4), Range(ge=1, le=512), Help("filters of each conv block")
    ] = [16, 32],  # noqa: B006 - a default is only read, never changed
    dense: Annotated[int, Range(ge=1, le=4096), Help("units of the hidden dense layer")] = 128,
    dropout: Annotated[float, Range(ge=0, lt=1)] = 0.0,
) -> nn.Module:
    """Conv blocks (3x3 conv, ReLU, 2x2 max-pool), then dense, then the classes."""
    c, h, w = in_shape
    layers: list[nn.Module] = []
    for out in channels:
        layers += [nn.Conv2d(c, out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        c, h, w = out, h // 2, w // 2
    layers += [
        nn.Flatten(),
        nn.Linear(c * h * w, dense),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(dense, num_classes),
    ]
    return nn.Sequential(*layers)
'''


@dataclass(frozen=True)
class Scaffold:
    experiment: Path
    model_file: Path | None
    model: str | None


def model_name_for(experiment: str) -> str:
    """A Python identifier from an experiment name: `my-resnet.v2` -> `my_resnet_v2`."""
    ident = re.sub(r"\W", "_", experiment)
    return ident if ident[:1].isalpha() or ident[:1] == "_" else f"m_{ident}"


def _exists(path: Path) -> None:
    if os.path.lexists(path):
        raise SpecError([SpecProblem(str(path), "", "already exists; not overwritten")])


def new_experiment(
    name: str, base: str, experiments_dir: Path, *, model_file: bool = False
) -> Scaffold:
    """Write `<experiments_dir>/<name>.toml` extending `base` (and `models/<name>.py`)."""
    problem = name_problem(name)
    if problem:
        raise SpecError([SpecProblem("", "", problem)])
    find_experiment(base, experiments_dir)  # a missing base says so, with did-you-mean
    parent = load_experiment(base, experiments_dir)
    target = experiments_dir / f"{name}.toml"
    _exists(target)
    model = model_name_for(name) if model_file else None
    py = experiments_dir / "models" / f"{model}.py" if model else None
    if py is not None:
        _exists(py)
        catalog = model_catalog(experiment_layers(experiments_dir))
        if model in catalog.models:
            raise SpecError(
                [
                    SpecProblem(
                        "",
                        "",
                        f"a model named '{model}' exists already ({catalog.models[model].where}); "
                        "choose another experiment name",
                    )
                ]
            )
    lines = [
        f"# {name}: a new study, started from {base} (`mnist-tui new`). It inherits every",
        f"# key {base} sets; set here only what differs. `mnist-tui show {name}` lists every",
        "# key, its value and where it comes from.",
        f'description = "{name}: started from {base}"',
        f'extends = "{base}"',
        "",
        "[train]",
        f"epochs = {parent.train.epochs}",
        f"seed = {parent.train.seed}",
    ]
    if model is not None:
        lines += [
            "",
            "[model]",
            f'name = "{model}"  # defined in models/{model}.py: edit it there',
        ]
    try:
        experiments_dir.mkdir(parents=True, exist_ok=True)
        if py is not None:
            py.parent.mkdir(parents=True, exist_ok=True)
            py.write_text(MODEL_TEMPLATE.format(name=model, experiment=name), encoding="utf-8")
        target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    except OSError as exc:
        raise SpecError([SpecProblem(str(target), "", f"cannot write: {exc.strerror}")]) from None
    return Scaffold(target, py, model)
