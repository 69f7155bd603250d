"""Variants: the runs of one resolved definition, seed aside.

Every stored run belongs to one variant of its experiment. The experiment's own variant is
the definition its file holds now; every other one is named by the keys that differ from
that file, the way they were set: `fnn1 [optim.lr=0.05]`. A variant's id is the experiment
and the first hex digits of its definition hash (`fnn1@3f2a1b`), so it stays the same
however many runs are added.

On the command line a side of `compare` (and `variants EXP...`) is any of:
    fnn1                    the experiment's own definition
    fnn1[optim.lr=0.05]     the experiment with these overrides (as -S would set them)
    fnn1@3f2a1b, 3f2a1b     a variant id, or a unique prefix of its hash part
    fnn1-8c0cb8             a group (the runs queued together, any definition)
`show` takes the same forms but a bare hash prefix (it would read as a run id), and makes
a page of one (`selection_page`): what made it, its runs, mean ± std.
No scipy and no torch here: `variants` is a read-only listing.
"""

from __future__ import annotations

import json
import re
import statistics
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnist_tui.config.loading import experiment_names, load_experiment, load_spec_file
from mnist_tui.config.spec import ExperimentSpec, flatten
from mnist_tui.errors import SpecError, StoreError, did_you_mean
from mnist_tui.runs.index import RunQuery
from mnist_tui.runs.record import RunInfo
from mnist_tui.runs.schema import DEFINITION_SECTIONS, SEED_KEYS, definition_hash
from mnist_tui.runs.store import RunStore
from mnist_tui.status import RunStatus
from mnist_tui.studies.definitions import validated_hash

ID_DIGITS = 6
# keys that never make runs differ (the seed is what a variant's runs differ in; the
# resources a cluster is asked for change no figure)
IGNORED_KEYS = frozenset({*(f"train.{k}" for k in SEED_KEYS), "train.gpus", "train.cpus"})
FIGURES = ("test_acc", "test_loss", "val_acc", "val_loss")


def show_value(v: Any) -> str:
    """A value as -S would take it: 0.05, mlp, true, [256,128]."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return v
    if isinstance(v, list | tuple | dict):
        return json.dumps(v, separators=(",", ":"))
    return repr(v) if isinstance(v, float) else str(v)


def definition_keys(raw: dict[str, Any]) -> dict[str, Any]:
    """The dotted keys training depends on, seed aside, of a resolved definition."""
    flat = flatten({k: raw.get(k) or {} for k in DEFINITION_SECTIONS})
    return {k: v for k, v in flat.items() if k not in IGNORED_KEYS}


@dataclass
class Variant:
    experiment: str
    definition: str  # definition hash (validated, so older spec files group with new ones)
    own: bool  # the experiment file's current definition
    changes: dict[str, Any]  # dotted key -> this variant's value, where it differs from the file
    runs: list[RunInfo] = field(default_factory=list)  # every status, newest first
    config: dict[str, Any] = field(default_factory=dict)  # every definition key (dotted)

    @property
    def id(self) -> str:
        return f"{self.experiment}@{self.definition[:ID_DIGITS]}"

    @property
    def label(self) -> str:
        if self.own:
            return self.experiment
        if not self.changes:
            return f"{self.experiment} [@{self.definition[:ID_DIGITS]}]"
        keys = ", ".join(f"{k}={show_value(v)}" for k, v in sorted(self.changes.items()))
        return f"{self.experiment} [{keys}]"

    @property
    def completed(self) -> list[RunInfo]:
        return [r for r in self.runs if r.status == RunStatus.COMPLETED and r.summary.get("final")]

    def values(self, metric: str = "test_acc", at: str = "final") -> list[float]:
        """The metric of each completed run, at its final or best epoch."""
        out = []
        for r in self.completed:
            v = r.figures(at).get(metric)
            if isinstance(v, int | float) and not isinstance(v, bool):
                out.append(float(v))
        return out

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "label": self.label,
            "experiment": self.experiment,
            "definition": self.definition,
            "own": self.own,
            "changes": self.changes,
            "runs": len(self.runs),
            "completed": len(self.completed),
            "run_ids": [r.id for r in self.runs],
            "seeds": sorted(r.seed for r in self.completed if r.seed is not None),
        }
        out.update(figure_stats(self.values))
        return out


def figure_stats(values: Callable[[str, str], list[float]]) -> dict[str, dict[str, float]]:
    """`final_test_acc`: {n, mean, std} ... for each figure some completed run has."""
    out: dict[str, dict[str, float]] = {}
    for at in ("final", "best"):
        for metric in FIGURES:
            xs = values(metric, at)
            if xs:
                out[f"{at}_{metric}"] = {
                    "n": len(xs),
                    "mean": statistics.fmean(xs),
                    "std": statistics.stdev(xs) if len(xs) > 1 else 0.0,
                }
    return out


def _raw_config(run: RunInfo) -> dict[str, Any]:
    try:
        raw = tomllib.loads(run.spec_path().read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}
    return raw


def build_variants(
    experiments_dir: Path,
    store: RunStore,
    names: list[str] | None = None,
    *,
    runs: list[RunInfo] | None = None,
    archived: bool = False,
) -> list[Variant]:
    """Every variant with runs (of `names`, default all), each experiment's own first,
    then by completed runs; an experiment with no runs of its own definition lists no own
    variant. Runs whose spec.toml cannot be read belong to none."""
    if runs is None:
        runs = store.runs(brief=True, archived=archived)
    wanted = set(names or ())
    by_exp: dict[str, list[RunInfo]] = {}
    for r in runs:
        if not wanted or r.experiment in wanted:
            by_exp.setdefault(r.experiment, []).append(r)
    out: list[Variant] = []
    for exp in sorted(by_exp):
        spec: ExperimentSpec | None
        try:
            spec = load_experiment(exp, experiments_dir)
        except SpecError:
            spec = None  # the file is gone or broken: variants are named by their hash
        target = definition_hash(spec.to_dict()) if spec is not None else None
        base = definition_keys(spec.to_dict()) if spec is not None else {}
        groups: dict[str, list[RunInfo]] = {}
        for r in by_exp[exp]:
            raw = r.definition_hash()
            if raw is None:
                continue
            resolved = raw if raw == target else (validated_hash(r, raw) or raw)
            groups.setdefault(resolved, []).append(r)
        variants = []
        for definition, members in groups.items():
            own = definition == target
            config = base if own else _variant_config(members[0])
            changes = {} if own or spec is None else _changes(base, config)
            variants.append(Variant(exp, definition, own, changes, members, config))
        variants.sort(key=lambda v: (not v.own, -len(v.completed), v.label))
        out += variants
    return out


def _variant_config(run: RunInfo) -> dict[str, Any]:
    """A run's definition keys, with the defaults of keys its spec.toml predates."""
    try:
        return definition_keys(load_spec_file(run.spec_path()).to_dict())
    except SpecError:
        return definition_keys(_raw_config(run))


def _changes(base: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    missing = object()
    out = {}
    for k in sorted(set(base) | set(config)):
        v = config.get(k, missing)
        if v != base.get(k, missing):
            out[k] = None if v is missing else v
    return out


# ----------------------------------------------------------------------------- naming sides


@dataclass
class Selection:
    """What a reference on the command line names: its label and its runs."""

    label: str
    kind: str  # "experiment", "variant" or "group"
    key: str  # the variant id or group id
    runs: list[RunInfo]
    variant: Variant | None = None

    def completed(self) -> list[RunInfo]:
        return [r for r in self.runs if r.status == RunStatus.COMPLETED and r.summary.get("final")]

    def values(self, metric: str = "test_acc", at: str = "final") -> list[float]:
        out = []
        for r in self.completed():
            v = r.figures(at).get(metric)
            if isinstance(v, int | float) and not isinstance(v, bool):
                out.append(float(v))
        return out


_WITH_KEYS = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]*)\[(.*)\]$", re.S)
_VARIANT_ID = re.compile(r"^(?:([A-Za-z0-9][A-Za-z0-9_.-]*)@)?([0-9a-f]{4,20})$")


def split_overrides(text: str) -> list[str]:
    """`optim.lr=0.05, model.hidden=[256,128]` -> two overrides (commas inside brackets
    or quotes belong to the value)."""
    parts: list[str] = []
    cur: list[str] = []
    depth, quote = 0, ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur).strip())
    return [p for p in parts if p]


def resolve_selection(
    ref: str, experiments_dir: Path, store: RunStore, variants: list[Variant]
) -> Selection:
    """An experiment, `EXP[key=value,...]`, a variant id or a group id (see the module)."""
    ref = ref.strip()
    m = _WITH_KEYS.match(ref)
    if m:
        exp, overrides = m.group(1), split_overrides(m.group(2))
        spec = load_experiment(exp, experiments_dir, overrides)
        target = definition_hash(spec.to_dict())
        for v in variants:
            if v.experiment == exp and v.definition == target:
                return Selection(v.label, "variant", v.id, v.runs, v)
        own = next((v for v in variants if v.experiment == exp and v.own), None)
        label = f"{exp} [{', '.join(overrides)}]"
        if own is not None and own.definition == target:
            return Selection(own.label, "variant", own.id, own.runs, own)
        raise StoreError(
            f"no runs of {label} yet: `mnist-tui queue add {exp} "
            + " ".join(f"-S {o}" for o in overrides)
            + " --seeds 0,1,2` makes three"
        )
    names = set(experiment_names(experiments_dir)) | {v.experiment for v in variants}
    if ref in names:
        own = next((v for v in variants if v.experiment == ref and v.own), None)
        if own is None:
            others = [v for v in variants if v.experiment == ref]
            hint = (
                f"; it has {len(others)} other variant(s): `mnist-tui variants {ref}`"
                if others
                else ""
            )
            raise StoreError(f"no runs of {ref}'s current definition yet{hint}")
        return Selection(own.label, "experiment", own.id, own.runs, own)
    m = _VARIANT_ID.match(ref)
    if m:
        exp, digits = m.group(1), m.group(2)
        found = [
            v
            for v in variants
            if v.definition.startswith(digits) and (exp is None or v.experiment == exp)
        ]
        if len(found) == 1:
            v = found[0]
            return Selection(v.label, "variant", v.id, v.runs, v)
        if len(found) > 1:
            raise StoreError(
                f"'{ref}' names {len(found)} variants ({', '.join(v.id for v in found)}): "
                "give more digits, or the experiment (EXP@digits)"
            )
    group = store.index.runs(RunQuery(group=ref), brief=True)
    if group:
        return Selection(ref, "group", ref, group)
    hint = did_you_mean(ref, [*names, *(v.id for v in variants)])
    raise StoreError(
        f"'{ref}' is not an experiment, a variant (EXP@id or EXP[key=value]) or a group."
        + (hint or " `mnist-tui variants` lists the variants.")
    )


# ----------------------------------------------------------------------------- show


def find_selection(ref: str, experiments_dir: Path, store: RunStore) -> Selection | None:
    """A variant (`EXP@digits`, `EXP[key=value,...]`) or a group, as `show` names them;
    None when `ref` is neither form (an experiment or a run is looked up elsewhere). A
    variant form that names nothing stored raises `compare`'s error (did-you-mean)."""
    ref = ref.strip()
    m = _WITH_KEYS.match(ref) or _VARIANT_ID.match(ref)
    if m is not None and m.group(1):
        variants = build_variants(experiments_dir, store, [m.group(1)])
        return resolve_selection(ref, experiments_dir, store, variants)
    if re.fullmatch(r"@?\d{1,3}|[0-9a-f]{1,8}", ref):
        return None  # a run id prefix or a recency number; no group id looks like one
    index = store.index
    # an archived group still has a page (compare and variants leave archived runs out)
    runs = index.runs(RunQuery(group=ref), brief=True) or index.runs(
        RunQuery(group=ref, archived=None), brief=True, synced=True
    )
    return Selection(ref, "group", ref, runs) if runs else None


def _unseeded(override: str) -> bool:
    """An override that made the runs differ, not one that numbers them (seed, fold)."""
    key = override.partition("=")[0].strip()
    return key not in IGNORED_KEYS and key not in ("data.fold", "data.folds")


@dataclass
class SelectionPage:
    """What `show GROUP` and `show VARIANT` say: the experiment(s), what made the runs
    (overrides as -S takes them, seed and fold aside), the variants its runs belong to,
    the groups they were queued in, the runs, and mean ± std of each figure."""

    selection: Selection
    experiments: list[str]
    made_with: list[str]
    variants: list[Variant]
    groups: list[str]
    runs: list[RunInfo]  # whole summaries (fold, trial), newest first

    def to_json(self) -> dict[str, Any]:
        sel = self.selection
        return {
            "kind": sel.kind,
            "id": sel.key,
            "label": sel.label,
            "experiments": self.experiments,
            "made_with": self.made_with,
            "variants": [
                {"id": v.id, "label": v.label, "runs": len(v.runs)} for v in self.variants
            ],
            "groups": self.groups,
            "runs": [
                {
                    "id": r.id,
                    "experiment": r.experiment,
                    "status": r.status,
                    **{k: r.summary.get(k) for k in ("seed", "fold", "trial", "group")},
                    "final_test_acc": r.final("test_acc"),
                    "best_test_acc": r.best("test_acc"),
                }
                for r in self.runs
            ],
            "completed": len(sel.completed()),
            **figure_stats(sel.values),
        }


def selection_page(sel: Selection, experiments_dir: Path, store: RunStore) -> SelectionPage:
    variants = (
        [sel.variant]
        if sel.kind == "variant" and sel.variant is not None
        else build_variants(experiments_dir, store, runs=sel.runs)
    )
    runs = [r.full() for r in sel.runs]  # a group's handful: fold and trial are not brief
    if sel.kind == "variant" and sel.variant is not None:
        made = [f"{k}={show_value(v)}" for k, v in sel.variant.changes.items()]
    else:
        # the overrides every run of the group was queued with, in the first one's order
        each = [[str(o) for o in r.summary.get("overrides") or ()] for r in runs]
        made = [o for o in (each[0] if each else []) if all(o in e for e in each[1:])]
        made = [o for o in made if _unseeded(o)]
    return SelectionPage(
        sel,
        sorted({r.experiment for r in sel.runs}),
        made,
        variants,
        sorted({str(g) for r in runs if (g := r.summary.get("group"))}),
        runs,
    )
