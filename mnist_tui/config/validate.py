"""The one validator: every table checked against its schema, then cross-field rules.

Sections, the top level, `[model]` (the builder's parameters), `[search]` and each
`[search.params]` entry all go through `schema.check_table`/`check_value`, and every
problem goes to one `Problems` collector, so a file with five mistakes gets one error
listing five.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from mnist_tui.config.model_check import check_model
from mnist_tui.config.schema import (
    Field,
    Invalid,
    brief,
    check_table,
    check_value,
    fields_of,
    split_annotation,
)
from mnist_tui.config.spec import (
    DEFINITION_SECTIONS,
    MAX_PARAMETERS,
    SEARCH_PARAM_KEYS,
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
from mnist_tui.errors import Problems, did_you_mean
from mnist_tui.user_models import ModelCatalog, shipped_catalog

# The top level's own keys; `name` is the file's name (a run's spec.toml writes it).
TOP_FIELDS: dict[str, Field] = {
    "description": (str, ""),
    "extends": (str | None, None),
    "name": (str, ""),
}
TOP_TABLES = ("model", *SECTIONS, "search")


def validate_raw(
    raw: dict[str, Any],
    origins: Mapping[str, str],
    source: str,
    lineage: tuple[str, ...],
    inherited: frozenset[str],
    *,
    catalog: ModelCatalog | None = None,
) -> ExperimentSpec:
    """`catalog`: the models `[model]` may name (default: the shipped ones)."""
    catalog = catalog or shipped_catalog()
    problems = Problems(origins, source)
    top = check_table(raw, TOP_FIELDS, "", problems, tables=TOP_TABLES, where="at the top level")
    sections = {
        name: check_table(raw.get(name, {}), fields_of(cls), name, problems)
        for name, cls in SECTIONS.items()
    }
    model = _check_model(raw.get("model", {}), catalog, problems)
    search = _check_search(raw.get("search"), model, catalog, problems)
    problems.raise_if_any()
    _check_dataset(sections["data"], problems)
    problems.raise_if_any()
    assert model is not None  # no problems: the model was checked

    spec = ExperimentSpec(
        name=top["name"],
        description=top["description"],
        extends=top["extends"],
        data=DataSpec(**sections["data"]),
        model=model,
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
        set_keys=frozenset(origins),
        catalog=catalog,
    )
    _check_combinations(spec, problems)
    problems.raise_if_any()
    n = _check_model_build(spec, problems)
    problems.raise_if_any()
    return dataclasses.replace(spec, parameters=n)


def _check_model(raw: Any, catalog: ModelCatalog, problems: Problems) -> ModelSpec | None:
    """`[model]`: a registered name, then that builder's parameters as the schema."""
    known = ", ".join(sorted(catalog.models))
    if not isinstance(raw, Mapping):
        problems.at("model").add(f"expected a table, got {brief(raw)}")
        return None
    if "name" not in raw:
        problems.at("model.name").add(f"missing; expected one of {known}")
        return None
    name = raw["name"]
    if isinstance(name, str) and name in catalog.collisions:
        problems.extend(catalog.collisions[name])
        return None
    if not isinstance(name, str) or name not in catalog.models:
        hint = did_you_mean(str(name), catalog.models)
        if catalog.broken:  # the model may be in a file that does not load: say why
            problems.extend(catalog.broken)
            hint += " (a model file above does not load)"
        problems.at("model.name").add(f"unknown model {brief(name)}.{hint} Known models: {known}")
        return None
    params = {k: v for k, v in raw.items() if k != "name"}
    checked = check_table(params, catalog.params(name), "model", problems)
    return ModelSpec(name, sorted_dict(checked), catalog.models[name].source)


def _check_search(
    raw: Any, model: ModelSpec | None, catalog: ModelCatalog, problems: Problems
) -> SearchSpec:
    """`[search]`: metric, trials, val_split, and `[search.params]` keyed by dotted keys."""
    if raw is None:
        return SearchSpec()
    fields = {k: v for k, v in fields_of(SearchSpec).items() if k != "params"}
    top = check_table(raw, fields, "search", problems, tables=("params",))
    table = raw.get("params", {}) if isinstance(raw, Mapping) else {}
    if not isinstance(table, Mapping):
        problems.at("search.params").add(f"expected a table, got {brief(table)}")
        table = {}
    targets = _search_targets(model, catalog)
    params = []
    for key, entry in table.items():
        param = _check_search_param(str(key), entry, targets, model, catalog, problems)
        if param is not None:
            params.append(param)
    return SearchSpec(**top, params=tuple(params))


def _search_targets(model: ModelSpec | None, catalog: ModelCatalog) -> dict[str, Any]:
    """Every key a search may vary, with its type hint."""
    out = {
        f"{sec}.{name}": hint
        for sec, cls in SECTIONS.items()
        if sec in DEFINITION_SECTIONS
        for name, (hint, _) in fields_of(cls).items()
    }
    if model is not None:
        params = catalog.params(model.name)
        out.update({f"model.{k}": hint for k, (hint, _) in params.items()})
    return out


_PARAM_FIELDS = {k: v for k, v in fields_of(SearchParam).items() if k in SEARCH_PARAM_KEYS}
_ENTRY_EXAMPLE = "{ low = 1e-4, high = 1e-2, log = true } or { choices = [64, 128] }"


def _check_search_param(
    key: str,
    entry: Any,
    targets: Mapping[str, Any],
    model: ModelSpec | None,
    catalog: ModelCatalog,
    problems: Problems,
) -> SearchParam | None:
    """One `[search.params]` entry: its own fields, then its values against the key's type."""
    where = f"search.params.{key}"
    if key not in targets:
        if key.startswith("model.") and model is None:
            return None  # the model itself is wrong; that is reported already
        if key.startswith("model.") and model is not None:
            params = catalog.params(model.name)
            problems.at(where).add(
                f"'{key}' is not a parameter of model {model.name}."
                + did_you_mean(key.removeprefix("model."), params)
                + f" Its parameters: {', '.join(params)}"
            )
        else:
            known = sorted(k for k in targets if not k.startswith("model."))
            problems.at(where).add(f"'{key}' is not a definition key." + did_you_mean(key, known))
        return None
    if not isinstance(entry, Mapping):
        problems.at(where).add(f"expected a table such as {_ENTRY_EXAMPLE}")
        return None
    before = len(problems)
    fields = check_table(entry, _PARAM_FIELDS, where, problems)
    if len(problems) > before:
        return None
    hint = targets[key]
    if "choices" in entry:
        if "low" in entry or "high" in entry:
            problems.at(where).add("give either choices or low and high, not both")
            return None
        choices = []
        for i, choice in enumerate(fields["choices"]):
            try:  # each choice a valid setting of the key
                choices.append(check_value(choice, hint))
            except Invalid as exc:
                problems.at(f"{where}.choices").add(f"item {i}: {exc}")
        if len(choices) < len(fields["choices"]):
            return None
        return SearchParam(key, choices=tuple(choices))
    low, high, log = fields["low"], fields["high"], fields["log"]
    if low is None or high is None or low >= high:
        problems.at(where).add(
            f"expected numbers low < high, got low = {brief(entry.get('low'))}, "
            f"high = {brief(entry.get('high'))}"
        )
        return None
    if log and low <= 0:
        problems.at(where).add("log = true needs low > 0")
        return None
    base = split_annotation(hint)[0]
    if base not in (int, float):
        problems.at(where).add(
            f"a range needs a numeric setting, and {key} is not; use choices = [...]"
        )
        return None
    ends = {}
    for end in ("low", "high"):
        try:  # both ends must be valid settings; integer settings search integers
            ends[end] = check_value(entry[end], hint)
        except Invalid as exc:
            problems.at(f"{where}.{end}").add(str(exc))
    if len(ends) < 2:
        return None
    return SearchParam(key, ends["low"], ends["high"], log, integer=base is int)


def _check_combinations(spec: ExperimentSpec, problems: Problems) -> None:
    """Rules that involve more than one key."""
    if spec.optim.nesterov and (spec.optim.name != "sgd" or spec.optim.momentum <= 0):
        problems.at("optim.nesterov").add(
            'nesterov needs optim.name = "sgd" and optim.momentum > 0'
        )
    for key in ("crop_scale", "scale"):
        lo, hi = getattr(spec.augment, key)
        if lo > hi:
            problems.at(f"augment.{key}").add(
                f"expected [low, high] with low <= high, got {brief([lo, hi])}"
            )
    if spec.data.folds:
        if spec.data.folds < 2:
            problems.at("data.folds").add(
                f"expected 0 (off) or at least 2 folds, got {spec.data.folds}"
            )
        elif spec.data.fold >= spec.data.folds:
            problems.at("data.fold").add(
                f"expected 0 to {spec.data.folds - 1}, got {spec.data.fold}"
            )
        if spec.data.val_split:
            problems.at("data.val_split").add("give data.val_split or data.folds, not both")
    for key, metric in (
        ("schedule.monitor", spec.schedule.monitor),
        ("train.best_metric", spec.train.best_metric),
    ):
        if metric.startswith("val_") and not spec.has_validation:
            problems.at(key).add(f'"{metric}" needs a validation split: set data.val_split')
            break


def _check_dataset(data: dict[str, Any], problems: Problems) -> None:
    """`data.dataset`: a registry name, or a user dataset's path (made absolute here when
    an override or a run's spec gave it relative; files resolve theirs as they load), whose
    files are read and checked once (then cached) so bad data fails before any run exists."""
    from mnist_tui.data import sources
    from mnist_tui.data.registry import DATASETS
    from mnist_tui.errors import DataError

    dataset = data.get("dataset", "mnist")
    if not sources.is_path(dataset):
        if dataset not in DATASETS:
            problems.at("data.dataset").add(sources.unknown_message(dataset))
        return
    data["dataset"] = sources.resolve_path(dataset)
    try:
        sources.describe(data["dataset"])
    except DataError as exc:
        problems.at("data.dataset").add(str(exc))


def _check_model_build(spec: ExperimentSpec, problems: Problems) -> int:
    """The trial build of the model (cached, see model_check): its parameter count."""
    result = check_model(
        spec.model.name,
        spec.model.params,
        spec.input_shape(),
        spec.num_classes(),
        spec.model.source,
    )
    if result.error is not None:
        problems.at(result.error_key or "model").add(result.error)
        return 0
    if result.parameters > MAX_PARAMETERS:
        problems.at("model").add(
            f"the model would have {result.parameters:,} parameters; at most "
            f"{MAX_PARAMETERS:,} are allowed"
        )
    return result.parameters


def parameter_count(spec: ExperimentSpec) -> int:
    return spec.parameters
