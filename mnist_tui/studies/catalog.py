"""Experiments and runs side by side: what `list`, `show`, `diff` and the TUI read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnist_tui.config.loading import experiment_names, load_experiment, load_spec_file
from mnist_tui.config.spec import ExperimentSpec
from mnist_tui.errors import SpecError, StoreError
from mnist_tui.runs.store import RunInfo, RunStore


@dataclass
class ExperimentRow:
    name: str
    spec: ExperimentSpec | None
    error: str | None
    parameters: int | None
    runs: list[RunInfo]

    @property
    def best_run(self) -> RunInfo | None:
        done = [r for r in self.runs if r.status == "completed" and r.final("test_acc") is not None]
        return max(done, key=lambda r: r.final("test_acc") or 0.0, default=None)

    @property
    def latest(self) -> RunInfo | None:
        return self.runs[0] if self.runs else None


def experiment_rows(experiments_dir: Path, store: RunStore) -> list[ExperimentRow]:
    """Every experiment file; a broken one becomes a row with its error, not a crash."""
    from mnist_tui.config.validate import parameter_count

    by_exp: dict[str, list[RunInfo]] = {}
    for run in store.runs():
        by_exp.setdefault(run.experiment, []).append(run)
    rows = []
    for name in experiment_names(experiments_dir):
        try:
            spec = load_experiment(name, experiments_dir)
            params = parameter_count(spec)
            rows.append(ExperimentRow(name, spec, None, params, by_exp.get(name, [])))
        except SpecError as exc:
            rows.append(ExperimentRow(name, None, str(exc), None, by_exp.get(name, [])))
    return rows


@dataclass
class Subject:
    """One side of a diff or a `show`: an experiment definition or a stored run."""

    kind: str  # "experiment" or "run"
    label: str
    spec: ExperimentSpec
    run: RunInfo | None = None

    def results(self) -> dict[str, Any]:
        """Run summary, or for an experiment its reported figures in the same shape."""
        if self.run is not None:
            return self.run.summary
        ref = self.spec.reference
        figures = {"test_acc": ref.test_accuracy, "test_loss": ref.test_loss}
        return {"final": figures} if ref.at == "final" else {"best": figures}


def resolve_subject(ref: str, experiments_dir: Path, store: RunStore) -> Subject:
    """An experiment name or TOML path first, then a run id prefix or recency number."""
    names = experiment_names(experiments_dir)
    if ref in names or ref.endswith(".toml"):
        spec = load_experiment(ref, experiments_dir)
        return Subject("experiment", spec.name, spec)
    try:
        run = store.resolve(ref)
    except StoreError as exc:
        from mnist_tui.errors import did_you_mean

        hint = did_you_mean(ref, names)
        if hint:
            raise StoreError(f"'{ref}' is neither an experiment nor a run.{hint}") from None
        raise StoreError(
            f"'{ref}' is neither an experiment in {experiments_dir} nor a run: {exc}"
        ) from None
    spec = load_spec_file(run.spec_path())
    return Subject("run", f"{run.experiment}/{run.id}", spec, run)
