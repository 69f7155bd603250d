"""The resolved experiment: one frozen dataclass per section, and `ExperimentSpec`.

An experiment file is TOML with a few tables::

    description = "..."
    extends = "task4"          # another experiment by name (or a path), deep-merged

    [data]      dataset, normalize, pad, val_split, subset, ...
    [model]     name = "cnn" plus the builder's own parameters (see models.py)
    [optim]     name, lr, momentum, nesterov, weight_decay, ...
    [schedule]  name, monitor, patience, factor, ...
    [train]     epochs, batch_size, seed, ...
    [augment]   hflip, rotation, translate, crop_scale, scale, noise_std, double_hflip
    [reference] what the study reported: test_accuracy, test_loss, hardest_class, source

A run's spec.toml adds `[model_source]` (file, sha256) when the model is a user's own
(user_models.py): the run directory's model.py is that file, and what the run trains.

`config.loading.load_experiment` returns a validated, fully resolved `ExperimentSpec` (every default
filled in). Every problem is reported with the file (or override) it came from, its
dotted key and what was expected.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import tomli_w

from mnist_tui import models
from mnist_tui.config.schema import Help, Length, Range
from mnist_tui.user_models import SNAPSHOT, ModelCatalog, ModelSource, entry_for

Fraction = Annotated[float, Range(ge=0, le=1)]
Positive = Annotated[float, Range(gt=0)]
NonNegative = Annotated[float, Range(ge=0)]


@dataclass(frozen=True)
class DataSpec:
    dataset: Annotated[
        str,
        Help(
            "a dataset by name (mnist, fashion_mnist, kmnist, qmnist, emnist_<split>, "
            "cifar10) or the path of your own data, relative to the experiment file"
        ),
    ] = "mnist"
    normalize: Annotated[
        Literal["standard", "unit", "half"],
        Help(
            "standard: per-dataset mean/std; unit: pixels scaled to 0..1; half: "
            "torchvision Normalize((0.5,), (0.5,)), pixels to -1..1"
        ),
    ] = "standard"
    pad: Annotated[int, Range(ge=0, le=16), Help("zero pixels added on each side")] = 0
    val_split: Annotated[
        float, Range(ge=0, lt=1), Help("fraction of the training set held out for validation")
    ] = 0.0
    split_seed: Annotated[int, Help("seed of the validation split and subsets")] = 0
    subset: Annotated[int, Range(ge=0), Help("train on this many (stratified) images; 0 = all")] = 0
    test_subset: Annotated[int, Range(ge=0), Help("evaluate on this many test images; 0 = all")] = 0
    folds: Annotated[
        int, Range(ge=0, le=100), Help("K-fold: split the training set into K stratified folds")
    ] = 0
    fold: Annotated[int, Range(ge=0), Help("K-fold: which fold is held out for validation")] = 0

    @property
    def has_validation(self) -> bool:
        """Whether training holds images out for validation (a split, or K-fold's fold)."""
        return self.val_split > 0 or self.folds > 1


@dataclass(frozen=True)
class OptimSpec:
    name: Literal["sgd", "adam", "adagrad", "adadelta", "rmsprop"] = "adam"
    lr: Positive = 0.001
    momentum: Annotated[float, Range(ge=0, lt=1)] = 0.0
    nesterov: bool = False
    weight_decay: NonNegative = 0.0
    beta1: Annotated[float, Range(ge=0, lt=1)] = 0.9
    beta2: Annotated[float, Range(ge=0, lt=1)] = 0.999
    eps: Positive = 1e-8
    rho: Annotated[float, Range(gt=0, lt=1), Help("adadelta's rho, rmsprop's alpha")] = 0.9
    initial_accumulator: Annotated[NonNegative, Help("adagrad's initial accumulator")] = 0.0


@dataclass(frozen=True)
class ScheduleSpec:
    name: Annotated[
        Literal["none", "reduce_on_plateau", "step", "cosine", "inverse_time"],
        Help("inverse_time: Keras' legacy decay, lr / (1 + decay * step) after every batch"),
    ] = "none"
    monitor: Annotated[
        Literal["auto", "val_loss", "val_acc", "test_loss", "test_acc", "train_loss", "train_acc"],
        Help(
            "reduce_on_plateau's metric; auto = val_loss with a validation split, else train_loss"
        ),
    ] = "auto"
    patience: Annotated[int, Range(ge=0)] = 10
    factor: Annotated[float, Range(gt=0, lt=1)] = 0.1
    min_lr: NonNegative = 0.0
    step_size: Annotated[int, Range(ge=1), Help("step: epochs between decays")] = 10
    gamma: Annotated[float, Range(gt=0, le=1), Help("step: decay factor")] = 0.1
    decay: Annotated[
        float,
        Range(ge=0, le=1),
        Help("inverse_time: Keras SGD(decay=...), per optimizer step counted from 0"),
    ] = 0.0


@dataclass(frozen=True)
class TrainSpec:
    epochs: Annotated[int, Range(ge=1, le=100000)] = 10
    batch_size: Annotated[int, Range(ge=1, le=1 << 20)] = 64
    seed: Annotated[int, Range(ge=0, lt=1 << 63)] = 0
    repeats: Annotated[int, Range(ge=1, le=1000), Help("seeds to run: seed, seed+1, ...")] = 1
    eval_batch_size: Annotated[
        int,
        Range(ge=1, le=1 << 20),
        Help("evaluation batch; results do not depend on it (at most 512 on a CPU)"),
    ] = 2048
    label_smoothing: Annotated[float, Range(ge=0, lt=1)] = 0.0
    best_metric: Annotated[
        Literal["auto", "val_loss", "val_acc", "test_loss", "test_acc"],
        Help("which epoch is 'best'; auto = val_loss with a validation split, else test_acc"),
    ] = "auto"
    # What a run asks of a Ray cluster (`mnist-tui worker --backend ray`); None keeps
    # them out of spec.toml, so runs that never say stay one definition with older runs.
    gpus: Annotated[
        float | None,
        Range(ge=0, le=64),
        Help(
            "GPUs a run asks of Ray: a fraction below 1 (0.25: four runs share a GPU) or a "
            "whole number; unset: 1 on a cluster with GPUs, else 0"
        ),
    ] = None
    cpus: Annotated[
        float | None,
        Range(gt=0, le=1024),
        Help("CPUs a run asks of Ray (its CPU threads, rounded up); unset: 1"),
    ] = None


@dataclass(frozen=True)
class AugmentSpec:
    hflip: Annotated[Fraction, Help("probability of a horizontal flip")] = 0.0
    rotation: Annotated[float, Range(ge=0, le=180), Help("max rotation, degrees")] = 0.0
    translate: Annotated[float, Range(ge=0, le=0.5), Help("max shift, fraction of size")] = 0.0
    crop_scale: Annotated[
        list[float],
        Length(2, 2),
        Range(gt=0, le=1),
        Help("random resized crop: area fraction range [lo, hi]"),
    ] = field(default_factory=lambda: [1.0, 1.0])
    scale: Annotated[
        list[float], Length(2, 2), Range(gt=0, le=4), Help("random zoom range [lo, hi]")
    ] = field(default_factory=lambda: [1.0, 1.0])
    noise_std: Annotated[NonNegative, Help("Gaussian noise std, in 0..1 pixel units")] = 0.0
    double_hflip: Annotated[
        bool, Help("training set = originals + horizontally flipped copies")
    ] = False

    @property
    def per_batch(self) -> bool:
        """Whether anything is applied to each training batch."""
        return bool(
            self.hflip
            or self.rotation
            or self.translate
            or self.crop_scale != [1.0, 1.0]
            or self.scale != [1.0, 1.0]
            or self.noise_std
        )


@dataclass(frozen=True)
class ReferenceSpec:
    test_accuracy: Annotated[Fraction | None, Help("reported, as a fraction (0.9173)")] = None
    test_loss: Annotated[NonNegative | None, Help("reported test loss")] = None
    at: Annotated[
        Literal["final", "best"], Help("whether the study reported its final or best epoch")
    ] = "final"
    hardest_class: str | None = None
    parameters: Annotated[int | None, Range(ge=0)] = None
    source: str = ""
    notes: str = ""
    # Provenance: the authors' code that produced the figure, and where the figure is.
    repository: Annotated[str, Help("the authors' GitHub repository, owner/name")] = ""
    commit: Annotated[str, Help("full commit hash of the code that produced the figure")] = ""
    files: Annotated[
        list[str], Length(0, 8), Help("files at `commit` the settings were taken from")
    ] = field(default_factory=list)
    cells: Annotated[
        list[int],
        Length(0, 16),
        Range(ge=0),
        Help("notebook cells (0-based) holding the model and training settings"),
    ] = field(default_factory=list)
    figure_commit: Annotated[
        str, Help("commit of the file that states the figure; empty = `commit`")
    ] = ""
    figure_file: Annotated[str, Help("file that states the figure (README, notebook output)")] = ""
    figure_line: Annotated[
        int | None, Range(ge=1), Help("1-based line of the figure in figure_file")
    ] = None


@dataclass(frozen=True)
class CVSpec:
    folds: Annotated[int, Range(ge=2, le=100), Help("folds for mnist-tui cv")] = 5


@dataclass(frozen=True)
class SearchParam:
    """One `[search.params]` entry: a range (low, high, log) or a list of choices.

    `key` (the table's key) and `integer` (whether the setting is an integer) are not
    written in the entry; `SEARCH_PARAM_KEYS` are."""

    key: str  # dotted definition key, e.g. "optim.lr"
    low: Annotated[float | None, Help("lowest value tried")] = None
    high: Annotated[float | None, Help("highest value tried")] = None
    log: Annotated[bool, Help("sample on a log scale (needs low > 0)")] = False
    integer: bool = False
    choices: Annotated[tuple[Any, ...], Length(min=1), Help("the values to try")] = ()

    def to_dict(self) -> dict[str, Any]:
        if self.choices:
            return {"choices": list(self.choices)}
        out: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        return out


@dataclass(frozen=True)
class SearchSpec:
    """`mnist-tui tune`: what to search, and the metric to optimise."""

    metric: Annotated[
        Literal["val_acc", "val_loss"], Help("what trials are judged on (never the test set)")
    ] = "val_acc"
    trials: Annotated[int, Range(ge=1, le=10000), Help("trials for mnist-tui tune")] = 20
    val_split: Annotated[
        float,
        Range(gt=0, lt=1),
        Help("held out for trials when the experiment has no validation split"),
    ] = 0.1
    params: tuple[SearchParam, ...] = ()  # `[search.params]`, checked entry by entry

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "metric": self.metric,
            "trials": self.trials,
            "val_split": self.val_split,
        }
        if self.params:
            out["params"] = {p.key: p.to_dict() for p in self.params}
        return out


@dataclass(frozen=True)
class ModelSpec:
    name: str
    params: dict[str, Any]
    # a user's model: the file and the exact bytes it trains (None: a shipped model)
    source: ModelSource | None = None


SECTIONS: dict[str, type] = {
    "data": DataSpec,
    "optim": OptimSpec,
    "schedule": ScheduleSpec,
    "train": TrainSpec,
    "augment": AugmentSpec,
    "reference": ReferenceSpec,
    "cv": CVSpec,
}
SEARCH_PARAM_KEYS = ("low", "high", "log", "choices")
TOP_LEVEL = ("description", "extends")
ALL_TOP_KEYS = (*TOP_LEVEL, "model", *SECTIONS, "search")
# Keys that describe one file and are not inherited through `extends`.
NOT_INHERITED = ("description", "reference", "search")
MAX_PARAMETERS = 500_000_000  # far beyond any MNIST model, far below a machine's memory
# What an experiment means for training (diffs compare these by default).
DEFINITION_SECTIONS = ("data", "model", "optim", "schedule", "train", "augment")


@dataclass(frozen=True)
class ExperimentSpec:
    """A validated, fully resolved experiment definition."""

    name: str
    description: str
    extends: str | None
    data: DataSpec
    model: ModelSpec
    optim: OptimSpec
    schedule: ScheduleSpec
    train: TrainSpec
    augment: AugmentSpec
    reference: ReferenceSpec
    cv: CVSpec = CVSpec()
    search: SearchSpec = SearchSpec()
    source: str = ""  # the file it was loaded from ("" when built in code)
    lineage: tuple[str, ...] = ()  # parents, nearest first
    inherited: frozenset[str] = frozenset()  # dotted keys set by a parent, not this file
    # dotted keys that some file or override set; the others hold the schema's defaults
    set_keys: frozenset[str] = frozenset()
    parameters: int = 0  # trainable parameters, counted by the trial build in validation
    # the models this spec's `[model]` was checked against (overrides check against it too)
    catalog: ModelCatalog | None = field(default=None, compare=False, repr=False)

    @property
    def has_validation(self) -> bool:
        """Whether training holds out a validation split (data.val_split or K-fold)."""
        return self.data.has_validation

    @property
    def monitored_metric(self) -> str:
        """reduce_on_plateau's metric: schedule.monitor, "auto" resolved."""
        if self.schedule.monitor != "auto":
            return self.schedule.monitor
        return "val_loss" if self.has_validation else "train_loss"

    @property
    def best_metric(self) -> str:
        """The metric that picks the 'best' epoch: train.best_metric, "auto" resolved."""
        if self.train.best_metric != "auto":
            return self.train.best_metric
        return "val_loss" if self.has_validation else "test_acc"

    def to_dict(self) -> dict[str, Any]:
        """Everything, sorted and without None values: the form written as TOML."""
        out: dict[str, Any] = {"name": self.name, "description": self.description}
        if self.extends:
            out["extends"] = self.extends
        for section in SECTIONS:
            out[section] = _drop_none(dataclasses.asdict(getattr(self, section)))
        out["model"] = {"name": self.model.name, **self.model.params}
        if self.model.source is not None:
            out["model_source"] = self.model.source.to_dict()
        if self.search.params:
            out["search"] = self.search.to_dict()
        resolved: dict[str, Any] = sorted_dict(out)
        return resolved

    def definition(self) -> dict[str, Any]:
        """Only what training depends on (no name, description, reference)."""
        d = self.to_dict()
        out = {k: d[k] for k in DEFINITION_SECTIONS}
        if "model_source" in d:  # a user's model: its source is part of what trains
            out["model_source"] = d["model_source"]
        return out

    def run_files(self) -> dict[str, bytes]:
        """Files a run directory holds beside spec.toml: a user model's source, whole."""
        if self.model.source is None:
            return {}
        return {SNAPSHOT: self.model.source.text}

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    def input_shape(self) -> tuple[int, int, int]:
        """Channels, height, width of the model's input: the dataset's, padded."""
        from mnist_tui.data.sources import describe

        c, h, w = describe(self.data.dataset).shape
        return (c, h + 2 * self.data.pad, w + 2 * self.data.pad)

    def num_classes(self) -> int:
        from mnist_tui.data.sources import describe

        return len(describe(self.data.dataset).classes)

    def build_model(self, pool_first: bool = True) -> Any:
        source = self.model.source
        return models.build_model(
            self.model.name,
            self.model.params,
            self.input_shape(),
            self.num_classes(),
            pool_first=pool_first,
            entry=entry_for(source, self.model.name) if source is not None else None,
        )


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def sorted_dict(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: sorted_dict(d[k]) for k in sorted(d)}
    return d


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


# ----------------------------------------------------------------------------- loading
