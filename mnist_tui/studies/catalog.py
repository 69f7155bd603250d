"""Experiments and runs side by side: what `list`, `show`, `diff` and the TUI read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnist_tui.config.loading import (
    experiment_names,
    experiment_sources,
    load_experiment,
    load_spec_file,
)
from mnist_tui.config.spec import ExperimentSpec
from mnist_tui.errors import SpecError, StoreError
from mnist_tui.runs.record import RunInfo
from mnist_tui.runs.schema import definition_hash
from mnist_tui.runs.store import RunStore
from mnist_tui.status import RunStatus
from mnist_tui.studies.definitions import validated_hash as _validated_hash

if TYPE_CHECKING:
    from mnist_tui.studies.variants import Selection


@dataclass
class ExperimentRow:
    name: str
    spec: ExperimentSpec | None
    error: str | None
    parameters: int | None
    runs: list[RunInfo]
    origin: str = "shipped"  # "shipped" with the package, or "user" (the experiments dir)
    shadows: bool = False  # a user file that hides a shipped experiment of the same name
    # how many runs it has, where `runs` holds only those a listing shows (digest=True)
    run_count: int | None = None

    @property
    def count(self) -> int:
        return len(self.runs) if self.run_count is None else self.run_count

    @property
    def best_run(self) -> RunInfo | None:
        """The best completed run of the experiment's current definition (as `report`)."""
        if self.spec is None:
            return None
        same, _ = split_by_definition(self.spec, self.runs)
        done = [r for r in same if r.final("test_acc") is not None]
        return max(done, key=lambda r: r.final("test_acc") or 0.0, default=None)

    @property
    def other_variants(self) -> int:
        """How many other definitions (seed aside) have completed runs: -S overrides or an
        earlier version of the file (`mnist-tui variants EXP` lists them)."""
        if self.spec is None:
            return 0
        _, other = split_by_definition(self.spec, self.runs)
        return count_variants(other)

    @property
    def latest(self) -> RunInfo | None:
        return self.runs[0] if self.runs else None


def experiment_rows(
    experiments_dir: Path,
    store: RunStore,
    names: list[str] | None = None,
    *,
    archived: bool = False,
    runs: list[RunInfo] | None = None,
    digest: bool = False,
    without_runs: bool = False,
) -> list[ExperimentRow]:
    """Every experiment file (or those in `names`); a broken one becomes a row with its
    error, not a crash. Archived runs count only with `archived`. A caller that has just
    listed the runs (newest first) passes them as `runs`, so they are not listed twice.
    `digest`: each row holds only the runs a listing shows (its newest, and the best of
    each definition) and their number: the same row from a few runs, at any store size.
    `without_runs`: no runs at all (`report` reads its figures from the index itself:
    studies.completed.IndexRuns)."""
    from mnist_tui.config.validate import parameter_count

    by_exp: dict[str, list[RunInfo]] = {}
    counts: dict[str, int] | None = None
    if digest and runs is None:
        counts, runs = store.index.digest(archived=archived)
    elif without_runs:
        runs = []
    # the index's brief summaries: all a row shows, without reading 10,000 files
    for run in store.runs(brief=True, archived=archived) if runs is None else runs:
        by_exp.setdefault(run.experiment, []).append(run)
    rows = []
    for name, source in experiment_sources(experiments_dir).items():
        if names and name not in names:
            continue
        origin, shadows = source.origin, source.shadows is not None
        try:
            spec = load_experiment(name, experiments_dir)
            params = parameter_count(spec)
            found = by_exp.get(name, [])
            count = None if counts is None else counts.get(name, 0)
            rows.append(ExperimentRow(name, spec, None, params, found, origin, shadows, count))
        except SpecError as exc:
            found = by_exp.get(name, [])
            count = None if counts is None else counts.get(name, 0)
            rows.append(ExperimentRow(name, None, str(exc), None, found, origin, shadows, count))
    return rows


def split_by_definition(
    spec: ExperimentSpec, runs: list[RunInfo]
) -> tuple[list[RunInfo], list[RunInfo]]:
    """Completed runs of this exact definition (any seed), and those of another one.

    Runs compare by the hash of their spec.toml (kept in the run index), so 10,000 runs
    cost no spec parsing. A hash that differs can still be the same definition (a
    spec.toml written before a key with a default existed): such a spec is validated
    once, and its validated hash remembered in the index for this version of the code.
    Runs whose spec.toml is unreadable or invalid count in neither list.
    """
    target = definition_hash(spec.to_dict())
    same: list[RunInfo] = []
    other: list[RunInfo] = []
    for r in runs:
        if r.status != RunStatus.COMPLETED or not r.summary.get("final"):
            continue
        raw = r.definition_hash()
        if raw is None:
            continue
        resolved = raw if raw == target else _validated_hash(r, raw)
        if resolved is not None:
            (same if resolved == target else other).append(r)
    return same, other


def count_variants(runs: list[RunInfo]) -> int:
    """Distinct definitions among `runs` (as `split_by_definition` tells them apart)."""
    found = set()
    for r in runs:
        raw = r.definition_hash()
        if raw is not None:
            found.add(_validated_hash(r, raw) or raw)
    return len(found)


@dataclass
class Subject:
    """One side of a diff or a `show`: an experiment definition, a stored run, or the
    runs of a variant or a group (`selection`; `spec` is the definition of its newest
    run whose spec.toml reads)."""

    kind: str  # "experiment", "run", "variant" or "group"
    label: str
    spec: ExperimentSpec
    run: RunInfo | None = None
    selection: Selection | None = None

    def data_hash(self) -> str | None:
        """The content hash of the data: what a run trained on (its env.json), or what a
        user dataset's files hold now; None where unknown (a registry dataset's files are
        checked against their md5 sums instead, and a variant's or group's runs each
        have their own)."""
        if self.selection is not None:
            return None
        if self.run is not None:
            from mnist_tui.runs.io import read_json

            try:
                env = read_json(self.run.path / "env.json")
            except (OSError, ValueError):  # a run that never started has none
                return None
            data = env.get("data") if isinstance(env, dict) else None
            value = data.get("hash") if isinstance(data, dict) else None
            return value if isinstance(value, str) else None
        from mnist_tui.data.sources import describe, is_path
        from mnist_tui.errors import DataError

        if not is_path(self.spec.data.dataset):
            return None
        try:
            return describe(self.spec.data.dataset).hash
        except DataError:
            return None

    def results(self) -> Mapping[str, Any]:
        """Run summary, or for an experiment its reported figures in the same shape, or
        for a variant or a group the mean of its completed runs' figures."""
        if self.run is not None:
            return self.run.summary
        if self.selection is not None:
            from mnist_tui.studies.variants import figure_stats

            out: dict[str, dict[str, float]] = {}
            for key, stat in figure_stats(self.selection.values).items():
                at, _, metric = key.partition("_")
                out.setdefault(at, {})[metric] = stat["mean"]
            return out
        ref = self.spec.reference
        figures = {"test_acc": ref.test_accuracy, "test_loss": ref.test_loss}
        return {"final": figures} if ref.at == "final" else {"best": figures}


def resolve_subject(ref: str, experiments_dir: Path, store: RunStore) -> Subject:
    """An experiment name or TOML path first, then a variant (`EXP@digits`,
    `EXP[key=value,...]`) or a group id, then a run id prefix or recency number."""
    from mnist_tui.studies.variants import find_selection  # variants imports this module

    names = experiment_names(experiments_dir)
    if ref in names or ref.endswith(".toml"):
        spec = load_experiment(ref, experiments_dir)
        return Subject("experiment", spec.name, spec)
    selection = find_selection(ref, experiments_dir, store)
    if selection is not None:
        spec = _newest_spec(selection.runs, experiments_dir)
        return Subject(selection.kind, selection.label, spec, selection=selection)
    try:
        run = store.resolve(ref)
    except StoreError as exc:
        from mnist_tui.errors import did_you_mean

        hint = did_you_mean(ref, [*names, *store.index.groups()])
        if hint:
            raise StoreError(
                f"'{ref}' is neither an experiment, a run, a variant nor a group.{hint}"
            ) from None
        raise StoreError(
            f"'{ref}' is neither an experiment in {experiments_dir} nor a run: {exc} "
            "(a variant is EXP@digits or EXP[key=value]; `mnist-tui variants` lists them, "
            "`mnist-tui runs --columns group` the groups)"
        ) from None
    spec = load_spec_file(run.spec_path())
    return Subject("run", f"{run.experiment}/{run.id}", spec, run)


def _newest_spec(runs: list[RunInfo], experiments_dir: Path) -> ExperimentSpec:
    """The definition of the newest run whose spec.toml reads, else the experiment's file."""
    for r in runs:
        try:
            return load_spec_file(r.spec_path())
        except SpecError:
            continue
    return load_experiment(runs[0].experiment, experiments_dir)


def compared(a: Subject, b: Subject) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a diff compares: both definitions, plus `data.hash` where both sides know the
    content hash of their data (a changed file of a user's dataset shows as a change)."""
    da, db = a.spec.definition(), b.spec.definition()
    ha, hb = a.data_hash(), b.data_hash()
    if ha is not None and hb is not None:
        da["data"] = {**da["data"], "hash": ha}
        db["data"] = {**db["data"], "hash": hb}
    return da, db
