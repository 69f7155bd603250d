"""Experiment definitions: schema, TOML loading, `extends`, overrides, resolved TOML.

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

`load_experiment` returns a validated, fully resolved `ExperimentSpec` (every default
filled in). Every problem is reported with the file (or override) it came from, its
dotted key and what was expected.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import tomli_w

from mnist_tui import models
from mnist_tui.errors import SpecError, SpecProblem, did_you_mean
from mnist_tui.schema import Help, Invalid, Length, Range, check_value, show

Fraction = Annotated[float, Range(ge=0, le=1)]
Positive = Annotated[float, Range(gt=0)]
NonNegative = Annotated[float, Range(ge=0)]
Metric = Literal["val_loss", "val_acc", "test_loss", "test_acc", "train_loss", "train_acc"]


@dataclass(frozen=True)
class DataSpec:
    dataset: Annotated[Literal["mnist", "fashion_mnist"], Help("which dataset")] = "mnist"
    normalize: Annotated[
        Literal["standard", "unit"],
        Help("standard: per-dataset mean/std; unit: pixels scaled to 0..1"),
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
    name: Literal["none", "reduce_on_plateau", "step", "cosine"] = "none"
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


@dataclass(frozen=True)
class CVSpec:
    folds: Annotated[int, Range(ge=2, le=100), Help("folds for mnist-tui cv")] = 5


@dataclass(frozen=True)
class SearchParam:
    key: str  # dotted definition key, e.g. "optim.lr"
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: tuple[Any, ...] = ()

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

    metric: str = "val_acc"
    trials: int = 20
    val_split: float = 0.1  # held out for trials when the experiment has no validation
    params: tuple[SearchParam, ...] = ()

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


SECTIONS: dict[str, type] = {
    "data": DataSpec,
    "optim": OptimSpec,
    "schedule": ScheduleSpec,
    "train": TrainSpec,
    "augment": AugmentSpec,
    "reference": ReferenceSpec,
    "cv": CVSpec,
}
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
    parameters: int = 0  # trainable parameters, counted by the trial build in validation

    def to_dict(self) -> dict[str, Any]:
        """Everything, sorted and without None values: the form written as TOML."""
        out: dict[str, Any] = {"name": self.name, "description": self.description}
        if self.extends:
            out["extends"] = self.extends
        for section in SECTIONS:
            out[section] = _drop_none(dataclasses.asdict(getattr(self, section)))
        out["model"] = {"name": self.model.name, **self.model.params}
        if self.search.params:
            out["search"] = self.search.to_dict()
        return _sorted(out)

    def definition(self) -> dict[str, Any]:
        """Only what training depends on (no name, description, reference)."""
        d = self.to_dict()
        return {k: d[k] for k in DEFINITION_SECTIONS}

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    def input_shape(self) -> tuple[int, int, int]:
        side = 28 + 2 * self.data.pad
        return (1, side, side)

    def build_model(self, pool_first: bool = True) -> Any:
        return models.build_model(
            self.model.name, self.model.params, self.input_shape(), pool_first=pool_first
        )

    def with_overrides(self, overrides: Iterable[str]) -> ExperimentSpec:
        """A copy with `-S key=value` overrides applied and validated."""
        overrides = list(overrides)
        if not overrides:
            return self
        raw = self.to_dict()
        origins = {k: self.source for k in _flatten(raw)}
        _apply_overrides(raw, origins, overrides)
        return _validate(raw, origins, self.source, self.lineage, self.inherited)


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _sorted(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _sorted(d[k]) for k in sorted(d)}
    return d


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


flatten = _flatten


# ----------------------------------------------------------------------------- loading


def default_experiments_dir() -> Path:
    """`MNIST_TUI_EXPERIMENTS`, else ./experiments, else the one shipped beside the package."""
    env = os.environ.get("MNIST_TUI_EXPERIMENTS")
    if env:
        return Path(env)
    local = Path.cwd() / "experiments"
    if local.is_dir():
        return local
    return Path(__file__).resolve().parent.parent / "experiments"


def experiment_names(experiments_dir: Path) -> list[str]:
    if not experiments_dir.is_dir():
        return []
    return sorted((p.stem for p in experiments_dir.glob("*.toml")), key=natural_key)


def natural_key(name: str) -> list[Any]:
    """Sort task2 before task10."""
    import re

    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def find_experiment(ref: str, experiments_dir: Path, relative_to: Path | None = None) -> Path:
    """Resolve an experiment name or TOML path to a file, or raise SpecError."""
    looks_like_path = ref.endswith(".toml") or "/" in ref or os.sep in ref
    if looks_like_path:
        path = Path(ref)
        if not path.is_absolute() and relative_to is not None and not path.exists():
            path = relative_to / path
        if path.is_file():
            return path
        raise SpecError([SpecProblem(ref, "", "no such experiment file")])
    names = experiment_names(experiments_dir)
    if ref in names:
        return experiments_dir / f"{ref}.toml"
    hint = did_you_mean(ref, names)
    raise SpecError(
        [
            SpecProblem(
                "",
                "",
                f"no experiment named '{ref}' in {_display(experiments_dir)}.{hint}",
            )
        ]
    )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError([SpecProblem(_display(path), "", f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise SpecError([SpecProblem(_display(path), "", "not a UTF-8 text file")]) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError([SpecProblem(_display(path), "", f"not valid TOML: {exc}")]) from None


def _merge(
    base: dict[str, Any],
    top: Mapping[str, Any],
    origins: dict[str, str],
    source: str,
    prefix: str = "",
) -> None:
    """Deep-merge `top` into `base` in place, recording which file set each key."""
    for k, v in top.items():
        key = f"{prefix}{k}"
        replaces_model = (
            key == "model"
            and isinstance(v, Mapping)
            and isinstance(base.get(k), dict)
            and "name" in v
            and v["name"] != base[k].get("name")
        )
        if replaces_model:
            # another architecture: the parent's model parameters do not carry over
            for old in [o for o in origins if o.startswith("model.")]:
                del origins[old]
            base[k] = {}
        if isinstance(v, Mapping) and isinstance(base.get(k), dict):
            _merge(base[k], v, origins, source, key + ".")
        else:
            base[k] = dict(v) if isinstance(v, Mapping) else v
            for sub in _flatten({k: v}, prefix) if isinstance(v, Mapping) else [key]:
                origins[sub] = source


def load_experiment(
    ref: str,
    experiments_dir: Path | None = None,
    overrides: Iterable[str] = (),
) -> ExperimentSpec:
    """Load, merge (`extends`), override and validate one experiment."""
    experiments_dir = experiments_dir or default_experiments_dir()
    path = find_experiment(ref, experiments_dir)
    chain: list[tuple[Path, dict[str, Any]]] = []
    seen: list[Path] = []
    current: Path | None = path
    while current is not None:
        resolved = current.resolve()
        if resolved in seen:
            names = " -> ".join(p.stem for p in [*seen, resolved])
            raise SpecError([SpecProblem(_display(path), "extends", f"cycle in extends: {names}")])
        seen.append(resolved)
        raw = _read_toml(current)
        chain.append((current, raw))
        parent = raw.get("extends")
        if parent is None:
            current = None
        elif not isinstance(parent, str) or not parent:
            raise SpecError(
                [
                    SpecProblem(
                        _display(current),
                        "extends",
                        f"expected the name of another experiment, got {show(parent)}",
                    )
                ]
            )
        else:
            try:
                current = find_experiment(parent, experiments_dir, relative_to=current.parent)
            except SpecError as exc:
                raise SpecError(
                    [
                        SpecProblem(_display(current), "extends", p.message.rstrip("."))
                        for p in exc.problems
                    ]
                ) from None

    merged: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for i, (file, raw) in enumerate(reversed(chain)):
        own = i == len(chain) - 1
        layer = {k: v for k, v in raw.items() if own or k not in NOT_INHERITED}
        _merge(merged, layer, origins, _display(file))
    merged["extends"] = chain[0][1].get("extends")
    merged["name"] = path.stem
    source = _display(path)
    own_keys = set(_flatten(chain[0][1]))
    inherited = frozenset(k for k, src in origins.items() if src != source and k not in own_keys)
    _apply_overrides(merged, origins, list(overrides))
    lineage = tuple(p.stem for p, _ in chain[1:])
    return _validate(merged, origins, source, lineage, inherited)


def load_spec_file(path: Path) -> ExperimentSpec:
    """Load a resolved spec written by `ExperimentSpec.to_toml` (a run's spec.toml)."""
    raw = _read_toml(path)
    raw.setdefault("name", path.parent.name)
    origins = {k: _display(path) for k in _flatten(raw)}
    return _validate(raw, origins, _display(path), (), frozenset())


def parse_override(text: str) -> tuple[str, Any]:
    """`optim.lr=0.01` -> ("optim.lr", 0.01); values are TOML, bare words are strings."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise SpecError(
            [SpecProblem(f"-S {text}", "", "expected KEY=VALUE, e.g. -S optim.lr=0.01")]
        )
    value = value.strip()
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value
    return key, parsed


def _apply_overrides(raw: dict[str, Any], origins: dict[str, str], overrides: list[str]) -> None:
    for text in overrides:
        key, value = parse_override(text)
        parts = key.split(".")
        target = raw
        for part in parts[:-1]:
            nxt = target.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise SpecError([SpecProblem(f"-S {text}", key, f"'{part}' is not a table")])
            target = nxt
        target[parts[-1]] = value
        origins[key] = f"-S {text}"


# --------------------------------------------------------------------------- validation


def _validate_fields(
    cls_or_params: type | dict[str, tuple[Any, Any]],
    raw: Any,
    section: str,
    origins: Mapping[str, str],
    fallback: str,
    problems: list[SpecProblem],
) -> dict[str, Any]:
    """Check one table against a dataclass (or a model's params); fill in defaults."""
    if isinstance(cls_or_params, dict):
        fields = cls_or_params
    else:
        hints = typing.get_type_hints(cls_or_params, include_extras=True)
        fields = {}
        for f in dataclasses.fields(cls_or_params):
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            else:  # pragma: no cover - every section field has a default
                default = None
            fields[f.name] = (hints[f.name], default)
    if not isinstance(raw, Mapping):
        problems.append(
            SpecProblem(
                origins.get(section, fallback), section, f"expected a table, got {show(raw)}"
            )
        )
        raw = {}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        dotted = f"{section}.{key}"
        source = origins.get(dotted, fallback)
        if key not in fields:
            hint = did_you_mean(key, fields)
            allowed = ", ".join(fields)
            problems.append(
                SpecProblem(source, dotted, f"unknown key.{hint} Allowed here: {allowed}")
            )
            continue
        try:
            out[key] = check_value(value, fields[key][0])
        except Invalid as exc:
            problems.append(SpecProblem(source, dotted, str(exc)))
    for key, (_, default) in fields.items():
        out.setdefault(key, list(default) if isinstance(default, list) else default)
    return out


def _validate(
    raw: dict[str, Any],
    origins: Mapping[str, str],
    source: str,
    lineage: tuple[str, ...],
    inherited: frozenset[str],
) -> ExperimentSpec:
    problems: list[SpecProblem] = []
    for key in raw:
        if key not in (*ALL_TOP_KEYS, "name"):
            hint = did_you_mean(key, ALL_TOP_KEYS)
            problems.append(
                SpecProblem(
                    origins.get(key, source),
                    key,
                    f"unknown key.{hint} Allowed at the top level: {', '.join(ALL_TOP_KEYS)}",
                )
            )
    description = raw.get("description", "")
    if not isinstance(description, str):
        problems.append(
            SpecProblem(source, "description", f"expected a string, got {show(description)}")
        )
        description = ""

    sections = {
        name: _validate_fields(cls, raw.get(name, {}), name, origins, source, problems)
        for name, cls in SECTIONS.items()
    }

    model_raw = raw.get("model", {})
    model_spec = ModelSpec("mlp", {})
    if not isinstance(model_raw, Mapping):
        problems.append(SpecProblem(source, "model", f"expected a table, got {show(model_raw)}"))
    elif "name" not in model_raw:
        problems.append(
            SpecProblem(
                source,
                "model.name",
                f"missing; expected one of {', '.join(sorted(models.MODELS))}",
            )
        )
    else:
        name = model_raw["name"]
        if not isinstance(name, str) or name not in models.MODELS:
            hint = did_you_mean(str(name), models.MODELS)
            problems.append(
                SpecProblem(
                    origins.get("model.name", source),
                    "model.name",
                    f"unknown model {show(name)}.{hint} Known models: "
                    f"{', '.join(sorted(models.MODELS))}",
                )
            )
        else:
            params = {k: v for k, v in model_raw.items() if k != "name"}
            checked = _validate_fields(
                models.model_params(name), params, "model", origins, source, problems
            )
            model_spec = ModelSpec(name, _sorted(checked))

    search = _validate_search(raw.get("search"), origins, source, problems)
    if problems:
        raise SpecError(problems)

    spec = ExperimentSpec(
        name=str(raw.get("name", "")),
        description=description,
        extends=raw.get("extends"),
        data=DataSpec(**sections["data"]),
        model=model_spec,
        optim=OptimSpec(**sections["optim"]),
        schedule=ScheduleSpec(**sections["schedule"]),
        train=TrainSpec(**sections["train"]),
        augment=AugmentSpec(**sections["augment"]),
        reference=ReferenceSpec(**sections["reference"]),
        cv=CVSpec(**sections["cv"]),
        search=search,
        source=source,
        lineage=lineage,
        inherited=inherited,
    )
    return dataclasses.replace(spec, parameters=_check_combinations(spec, origins, source))


SEARCH_METRICS = ("val_acc", "val_loss")
SEARCH_FIELDS = ("low", "high", "log", "choices")


def _validate_search(
    raw: Any, origins: Mapping[str, str], source: str, problems: list[SpecProblem]
) -> SearchSpec:
    """`[search]`: metric, trials, val_split and `[search.params]` keyed by dotted keys."""
    if raw is None:
        return SearchSpec()

    def add(key: str, message: str) -> None:
        problems.append(SpecProblem(origins.get(key, source), key, message))

    if not isinstance(raw, Mapping):
        add("search", f"expected a table, got {show(raw)}")
        return SearchSpec()
    for key in raw:
        if key not in ("metric", "trials", "val_split", "params"):
            add(
                f"search.{key}",
                "unknown key."
                + did_you_mean(key, ["metric", "trials", "val_split", "params"])
                + " Allowed here: metric, trials, val_split, params",
            )
    metric = raw.get("metric", "val_acc")
    if metric not in SEARCH_METRICS:
        add("search.metric", f"expected one of {', '.join(SEARCH_METRICS)}, got {show(metric)}")
    trials = raw.get("trials", 20)
    if isinstance(trials, bool) or not isinstance(trials, int) or not 1 <= trials <= 10000:
        add("search.trials", f"expected an integer from 1 to 10000, got {show(trials)}")
    val_split = raw.get("val_split", 0.1)
    if (
        isinstance(val_split, bool)
        or not isinstance(val_split, int | float)
        or not (0 < val_split < 1)
    ):
        add("search.val_split", f"expected a number > 0 and < 1, got {show(val_split)}")
    params: list[SearchParam] = []
    table = raw.get("params", {})
    if not isinstance(table, Mapping):
        add("search.params", f"expected a table, got {show(table)}")
        table = {}
    known = {
        f"{sec}.{f.name}"
        for sec, cls in SECTIONS.items()
        if sec in DEFINITION_SECTIONS
        for f in dataclasses.fields(cls)
    }
    for key, p in table.items():
        where = f"search.params.{key}"
        section = key.split(".", 1)[0]
        if section != "model" and key not in known:
            add(where, f"'{key}' is not a definition key." + did_you_mean(key, sorted(known)))
            continue
        if not isinstance(p, Mapping):
            add(
                where,
                "expected a table such as { low = 1e-4, high = 1e-2, log = true } "
                "or { choices = [64, 128] }",
            )
            continue
        extra = [k for k in p if k not in SEARCH_FIELDS]
        if extra:
            add(
                where,
                f"unknown field '{extra[0]}'."
                + did_you_mean(extra[0], SEARCH_FIELDS)
                + " Allowed: low, high, log, choices",
            )
            continue
        if "choices" in p:
            choices = p["choices"]
            if not isinstance(choices, list) or not choices:
                add(where, f"choices: expected a non-empty list, got {show(choices)}")
                continue
            params.append(SearchParam(key, choices=tuple(choices)))
            continue
        low, high = p.get("low"), p.get("high")
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high))
        if not numbers or low >= high:  # type: ignore[operator]
            add(where, f"expected numbers low < high, got low = {show(low)}, high = {show(high)}")
            continue
        log = p.get("log", False)
        if not isinstance(log, bool) or (log and low <= 0):  # type: ignore[operator]
            add(where, "log = true needs low > 0" if log is True else "log: expected true or false")
            continue
        integer = isinstance(low, int) and isinstance(high, int)
        # keep the TOML types: integer bounds search integers
        params.append(SearchParam(key, low, high, log, integer))  # type: ignore[arg-type]
    return SearchSpec(
        metric=metric if metric in SEARCH_METRICS else "val_acc",
        trials=trials if isinstance(trials, int) else 20,
        val_split=float(val_split) if isinstance(val_split, int | float) else 0.1,
        params=tuple(params),
    )


def _check_combinations(spec: ExperimentSpec, origins: Mapping[str, str], source: str) -> int:
    """Rules that involve more than one key, and a trial build of the model.

    Returns the model's parameter count."""
    n = 0
    problems: list[SpecProblem] = []

    def add(key: str, message: str) -> None:
        problems.append(SpecProblem(origins.get(key, source), key, message))

    if spec.optim.nesterov and (spec.optim.name != "sgd" or spec.optim.momentum <= 0):
        add("optim.nesterov", 'nesterov needs optim.name = "sgd" and optim.momentum > 0')
    for key in ("crop_scale", "scale"):
        lo, hi = getattr(spec.augment, key)
        if lo > hi:
            add(f"augment.{key}", f"expected [low, high] with low <= high, got {show([lo, hi])}")
    for p in spec.search.params:
        if p.key.startswith("model.") and p.key[6:] not in spec.model.params:
            add(
                f"search.params.{p.key}",
                f"'{p.key}' is not a parameter of model "
                f"{spec.model.name}." + did_you_mean(p.key[6:], spec.model.params),
            )
    if spec.data.folds:
        if spec.data.folds < 2:
            add("data.folds", f"expected 0 (off) or at least 2 folds, got {spec.data.folds}")
        elif spec.data.fold >= spec.data.folds:
            add("data.fold", f"expected 0 to {spec.data.folds - 1}, got {spec.data.fold}")
        if spec.data.val_split:
            add("data.val_split", "give data.val_split or data.folds, not both")
    has_val = spec.data.val_split > 0 or spec.data.folds > 1
    needs_val = {spec.schedule.monitor, spec.train.best_metric} & {"val_loss", "val_acc"}
    if needs_val and not has_val:
        key = "schedule.monitor" if spec.schedule.monitor in needs_val else "train.best_metric"
        add(key, f"{show(next(iter(needs_val)))} needs a validation split: set data.val_split")
    if not problems:
        try:
            import torch

            # a trial build on the meta device: shapes and counts, no memory, so a typo
            # such as hidden = [65536, 65536] is an error, not an out-of-memory crash
            with torch.device("meta"):
                model = spec.build_model()
                models.output_check(model, spec.input_shape())
            n = models.count_parameters(model)
            if n > MAX_PARAMETERS:
                add(
                    "model",
                    f"the model would have {n:,} parameters; at most "
                    f"{MAX_PARAMETERS:,} are allowed",
                )
        except models.ModelConfigError as exc:
            add(exc.key if "." in exc.key else f"model.{exc.key}", str(exc))
        except (RuntimeError, ValueError) as exc:
            add("model", f"the model cannot be built with these settings: {exc}")
    if problems:
        raise SpecError(problems)
    return n


def parameter_count(spec: ExperimentSpec) -> int:
    return spec.parameters
