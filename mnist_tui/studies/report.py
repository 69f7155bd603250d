"""Reported vs reproduced: group an experiment's runs and compare with its `[reference]`.

Only runs whose definition equals the experiment's current definition (apart from the
seed) count, so a quick `-S train.epochs=1` run never pollutes the statistics.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mnist_tui.config.spec import ExperimentSpec
from mnist_tui.data.sources import display_name
from mnist_tui.runs.record import RunInfo
from mnist_tui.runs.store import RunStore
from mnist_tui.studies.catalog import (
    ExperimentRow,
    count_variants,
    experiment_rows,
    split_by_definition,
)

SEED_KEYS = ("seed", "repeats")


def comparable_definition(spec: ExperimentSpec) -> dict[str, Any]:
    d = spec.definition()
    d["train"] = {k: v for k, v in d["train"].items() if k not in SEED_KEYS}
    return d


@dataclass(frozen=True)
class Stat:
    mean: float
    std: float  # sample standard deviation; 0 for a single run
    n: int
    low: float
    high: float

    @classmethod
    def of(cls, xs: list[float]) -> Stat | None:
        if not xs:
            return None
        std = statistics.stdev(xs) if len(xs) > 1 else 0.0
        return cls(statistics.fmean(xs), std, len(xs), min(xs), max(xs))

    def contains(self, x: float) -> bool:
        """Inside mean ± 2 std (about 95% of seeds), or equal to a single run's value."""
        half = 2 * self.std
        return self.mean - half - 1e-12 <= x <= self.mean + half + 1e-12


@dataclass
class ReportRow:
    name: str
    dataset: str
    parameters: int | None
    epochs: int
    reported_acc: float | None
    reported_loss: float | None
    reported_at: str
    reported_hardest: str | None
    runs: int
    other_definition_runs: int  # completed runs of an earlier or overridden definition
    final_acc: Stat | None
    best_acc: Stat | None
    final_loss: Stat | None
    best_loss: Stat | None
    train_seconds: Stat | None
    hardest: str | None  # the most common hardest class over the runs
    seeds: list[int]
    # the 95% interval of the reproduced mean at the reported epoch (Student's t over
    # the seeds); None below two runs, or where scipy is not installed
    ci_low: float | None = None
    ci_high: float | None = None
    other_variants: int = 0  # how many definitions the other_definition_runs make up

    @property
    def compared(self) -> Stat | None:
        """The reproduced figure at the epoch the study reported (final or best)."""
        return self.best_acc if self.reported_at == "best" else self.final_acc

    @property
    def delta_pp(self) -> float | None:
        """Reproduced minus reported, in points, from the figures as shown (two decimals),
        so that the Δ a reader recomputes from the table is the Δ printed."""
        c = self.compared
        if c is None or self.reported_acc is None:
            return None
        return round(round(100 * c.mean, 2) - round(100 * self.reported_acc, 2), 2)

    @property
    def inside(self) -> bool | None:
        """Whether the reported figure lies in the 95% interval of the reproduced mean."""
        if self.reported_acc is None or self.ci_low is None or self.ci_high is None:
            return None
        return self.ci_low - 1e-12 <= self.reported_acc <= self.ci_high + 1e-12

    def ci_text(self) -> str:
        if self.ci_low is None or self.ci_high is None:
            return "—"
        return f"{100 * self.ci_low:.2f} to {100 * self.ci_high:.2f}%"

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["delta_pp"] = self.delta_pp
        out["inside_ci95"] = self.inside
        return out


def split_runs(spec: ExperimentSpec, runs: list[RunInfo]) -> tuple[list[RunInfo], list[RunInfo]]:
    """Completed runs of this exact definition (any seed), and those of another one."""
    return split_by_definition(spec, runs)


def build_report(
    experiments_dir: Path,
    store: RunStore,
    names: list[str] | None = None,
    *,
    archived: bool = False,
) -> list[ReportRow]:
    """The report of `names` (default: every experiment); archived runs only if asked."""
    rows = experiment_rows(experiments_dir, store, names, archived=archived, completed=True)
    return report_rows(rows, names)


def report_rows(
    experiments: list[ExperimentRow], names: list[str] | None = None
) -> list[ReportRow]:
    """One row per valid experiment (optionally only `names`), from already loaded rows."""
    rows = []
    for er in experiments:
        if er.spec is None or (names and er.name not in names):
            continue
        spec = er.spec
        runs, other = split_runs(spec, er.runs)

        def col(where: str, key: str, runs: list[RunInfo] = runs) -> Stat | None:
            return Stat.of([v for r in runs if (v := r.figures(where).get(key)) is not None])

        hardest = Counter(
            r.summary.get("hardest_class") for r in runs if r.summary.get("hardest_class")
        )
        ref = spec.reference
        ci = _interval(col(ref.at, "test_acc"), runs, ref.at)
        rows.append(
            ReportRow(
                name=spec.name,
                dataset=display_name(spec.data.dataset),
                parameters=er.parameters,
                epochs=spec.train.epochs,
                reported_acc=ref.test_accuracy,
                reported_loss=ref.test_loss,
                reported_at=ref.at,
                reported_hardest=ref.hardest_class,
                runs=len(runs),
                other_definition_runs=len(other),
                final_acc=col("final", "test_acc"),
                best_acc=col("best", "test_acc"),
                final_loss=col("final", "test_loss"),
                best_loss=col("best", "test_loss"),
                train_seconds=Stat.of(
                    [v for r in runs if (v := r.summary.get("train_seconds")) is not None]
                ),
                hardest=hardest.most_common(1)[0][0] if hardest else None,
                seeds=sorted(r.seed for r in runs if r.seed is not None),
                ci_low=ci[0],
                ci_high=ci[1],
                other_variants=count_variants(other),
            )
        )
    return rows


def _interval(stat: Stat | None, runs: list[RunInfo], at: str) -> tuple[float | None, float | None]:
    """The 95% t interval of the mean test accuracy at `at`; (None, None) below two runs
    or without scipy (the report still works, without the interval)."""
    if stat is None or stat.n < 2:
        return None, None
    from mnist_tui.studies.stats import have_scipy, mean_interval

    if not have_scipy():  # pragma: no cover - the test extra installs scipy
        return None, None
    values = [v for r in runs if (v := r.figures(at).get("test_acc")) is not None]
    got = mean_interval(values)
    return (None, None) if got is None else (got.low, got.high)


# ----------------------------------------------------------------------------- steps


@dataclass
class Step:
    """One change of a study's log: an experiment against the one it `extends`."""

    parent: str
    child: str
    at: str  # the epoch compared: the child's reported one (final or best)
    comparison: Any  # studies.stats.Comparison


def build_steps(experiments: list[ExperimentRow]) -> list[Step]:
    """Each experiment that extends another, both with completed runs of their current
    definitions, compared on test accuracy (Welch; Holm over all the steps, since together
    they ask which of the changes made a difference). Needs scipy: [] without it."""
    from mnist_tui.studies.stats import compare_two, have_scipy, holm

    if not have_scipy():  # pragma: no cover - the test extra installs scipy
        return []
    by_name = {er.name: er for er in experiments if er.spec is not None}
    steps = []
    for er in experiments:
        spec = er.spec
        if spec is None or not spec.extends or spec.extends not in by_name:
            continue
        parent = by_name[spec.extends]
        assert parent.spec is not None
        at = spec.reference.at
        mine, _ = split_runs(spec, er.runs)
        theirs, _ = split_runs(parent.spec, parent.runs)

        def accs(runs: list[RunInfo], at: str = at) -> list[float]:
            return [v for r in runs if (v := r.figures(at).get("test_acc")) is not None]

        a, b = accs(theirs), accs(mine)
        if a and b:
            steps.append(Step(parent.name, er.name, at, compare_two(parent.name, a, er.name, b)))
    for step, adjusted in zip(steps, holm([s.comparison.p for s in steps]), strict=True):
        step.comparison.p_adjusted = adjusted
    return steps
