"""How a run trains, whoever asks for it: one object that every face fills in.

`run_experiment` and `resume_run` (studies/runner.py), the batch loop (studies/batch.py),
a search's trials and the worker's `train-run` child all take a `RunOptions`; what
belongs to one call only (the run directory, its group, where its events go) stays a
keyword argument there. A module of its own so that runner and batch both import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypedDict

from mnist_tui.errors import MnistTuiError

ENGINES = ("auto", "graph", "eager")


@dataclass(frozen=True)
class RunOptions:
    """How runs are trained, whoever asks for them."""

    device: str = "auto"
    engine: str = "auto"
    data_dir: Path | None = None
    download: bool = True
    threads: int | None = None  # torch threads on a CPU (the worker's share of the cores)
    step_reports: int | None = None  # per epoch; None: the trainer's default, 0: none
    device_label: str | None = None  # the device as views name it (a worker's cuda:N)
    env_extra: Mapping[str, Any] = field(default_factory=dict)  # more for env.json

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise MnistTuiError(f"--engine: expected auto, graph or eager, got '{self.engine}'")
        if self.threads is not None and self.threads < 1:
            raise MnistTuiError(f"--threads: expected a positive integer, got {self.threads}")

    def but(self, **changes: Any) -> RunOptions:
        """These options with some fields changed (checked again)."""
        return replace(self, **changes) if changes else self


class RunOptionFields(TypedDict, total=False):
    """RunOptions' fields as keyword arguments: `run_experiment(spec, store, device="cpu")`
    reads as well as building the object first."""

    device: str
    engine: str
    data_dir: Path | None
    download: bool
    threads: int | None
    step_reports: int | None
    device_label: str | None
    env_extra: Mapping[str, Any]


def options_of(options: RunOptions | None, fields: RunOptionFields) -> RunOptions:
    """`options` (default: RunOptions()) with the fields given as keywords on top."""
    return (options or RunOptions()).but(**fields)
