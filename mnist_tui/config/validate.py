"""The one validator: each table checked against its schema, then cross-field rules."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any

from mnist_tui import models
from mnist_tui.config.schema import Invalid, check_value, show
from mnist_tui.config.spec import (
    ALL_TOP_KEYS,
    DEFINITION_SECTIONS,
    MAX_PARAMETERS,
    SECTIONS,
    AugmentSpec,
    CVSpec,
    DataSpec,
    ExperimentSpec,
    ModelSpec,
    OptimSpec,
    ReferenceSpec,
    ScheduleSpec,
    SearchParam,
    SearchSpec,
    TrainSpec,
    sorted_dict,
)
from mnist_tui.errors import SpecError, SpecProblem, did_you_mean


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


def validate_raw(
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
            model_spec = ModelSpec(name, sorted_dict(checked))

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
