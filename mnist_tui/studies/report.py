"""Reported vs reproduced: group an experiment's runs and compare with its `[reference]`.

Only runs whose definition equals the experiment's current definition (apart from the
seed) count, so a quick `-S train.epochs=1` run never pollutes the statistics.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

from mnist_tui.config.spec import ExperimentSpec
from mnist_tui.data.sources import display_name
from mnist_tui.runs.schema import definition_hash
from mnist_tui.runs.store import RunStore
from mnist_tui.studies.catalog import ExperimentRow, experiment_rows
from mnist_tui.studies.completed import CompletedRuns, Group, IndexRuns, Moments
from mnist_tui.studies.definitions import validated_hash_at
from mnist_tui.studies.stats import mean_and_std

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
        mean, std = mean_and_std(xs)
        return cls(mean, std, len(xs), min(xs), max(xs))

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


class Split(NamedTuple):
    """An experiment's completed runs seen from its current definition."""

    same: Group | None  # the runs of this definition (any seed), as one group
    same_definitions: list[str]  # the raw spec.toml hashes those runs have
    other: list[Group]  # the groups of other definitions
    variants: int  # how many other definitions those are


def split_groups(spec: ExperimentSpec, groups: list[Group], root: Path) -> Split:
    """As `catalog.split_by_definition`: a hash that differs is validated once (an older
    spec.toml can be the same definition), and runs whose spec.toml does not validate
    count in neither part."""
    target = definition_hash(spec.to_dict())
    same: Group | None = None
    raws: list[str] = []
    other: list[Group] = []
    variants: set[str] = set()
    for g in groups:
        run_dir = root / g.experiment / g.sample
        resolved = (
            g.definition if g.definition == target else validated_hash_at(run_dir, g.definition)
        )
        if resolved is None:
            continue
        if resolved == target:
            same = g if same is None else same.merged(g)
            raws.append(g.definition)
        else:
            other.append(g)
            variants.add(resolved)
    return Split(same, raws, other, len(variants))


def _stat(m: Moments | None) -> Stat | None:
    return None if m is None else Stat(m.mean, m.std, m.n, m.low, m.high)


def build_report(
    experiments_dir: Path,
    store: RunStore,
    names: list[str] | None = None,
    *,
    archived: bool = False,
) -> list[ReportRow]:
    """The report of `names` (default: every experiment); archived runs only if asked."""
    rows = experiment_rows(experiments_dir, store, names, archived=archived, without_runs=True)
    return report_rows(rows, IndexRuns(store, archived=archived), names)


def report_rows(
    experiments: list[ExperimentRow],
    completed: CompletedRuns,
    names: list[str] | None = None,
) -> list[ReportRow]:
    """One row per valid experiment (optionally only `names`), from its completed runs."""
    rows = []
    for er in experiments:
        if er.spec is None or (names and er.name not in names):
            continue
        spec = er.spec
        same, _, other, variants = split_groups(spec, completed.groups(er.name), completed.root)
        figures = same.figures if same is not None else {}
        ref = spec.reference
        compared = figures.get(f"{ref.at}_test_acc")
        ci = _interval(compared)
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
                runs=same.runs if same is not None else 0,
                other_definition_runs=sum(g.runs for g in other),
                final_acc=_stat(figures.get("final_test_acc")),
                best_acc=_stat(figures.get("best_test_acc")),
                final_loss=_stat(figures.get("final_test_loss")),
                best_loss=_stat(figures.get("best_test_loss")),
                train_seconds=_stat(figures.get("train_seconds")),
                hardest=same.most_common_hardest() if same is not None else None,
                seeds=sorted(same.seeds) if same is not None else [],
                ci_low=ci[0],
                ci_high=ci[1],
                other_variants=variants,
            )
        )
    return rows


def _interval(m: Moments | None) -> tuple[float | None, float | None]:
    """The 95% t interval of the mean test accuracy; (None, None) below two runs or
    without scipy (the report still works, without the interval)."""
    if m is None or m.n < 2:
        return None, None
    from mnist_tui.studies.stats import have_scipy, interval_of

    if not have_scipy():  # pragma: no cover - the test extra installs scipy
        return None, None
    got = interval_of(m.n, m.mean, m.std)
    return got.low, got.high


# ----------------------------------------------------------------------------- steps


@dataclass
class Step:
    """One change of a study's log: an experiment against the one it `extends`."""

    parent: str
    child: str
    at: str  # the epoch compared: the child's reported one (final or best)
    comparison: Any  # studies.stats.Comparison


def build_steps(experiments: list[ExperimentRow], completed: CompletedRuns) -> list[Step]:
    """Each experiment that extends another, both with completed runs of their current
    definitions, compared on test accuracy (Welch; Holm over all the steps, since together
    they ask which of the changes made a difference). Needs scipy: [] without it.

    From each side's group (size, mean, spread): the accuracies themselves are read only
    for a side of fewer than five runs, whose bootstrap interval resamples them."""
    from mnist_tui.studies.stats import Sample, compare_samples, have_scipy, holm

    if not have_scipy():  # pragma: no cover - the test extra installs scipy
        return []
    by_name = {er.name: er for er in experiments if er.spec is not None}
    steps = []
    for er in experiments:
        spec = er.spec
        if spec is None or not spec.extends or spec.extends not in by_name:
            continue
        parent = by_name[spec.extends]
        figure = f"{spec.reference.at}_test_acc"
        sides: list[tuple[Sample, ExperimentRow, list[str]]] = []
        for side in (parent, er):
            assert side.spec is not None
            same, raws, _, _ = split_groups(side.spec, completed.groups(side.name), completed.root)
            moments = same.figures.get(figure) if same is not None else None
            if moments is None:
                break
            sides.append((Sample(moments.n, moments.mean, moments.std), side, raws))
        if len(sides) < 2:
            continue
        (a, a_row, a_raws), (b, b_row, b_raws) = sides

        def values(
            a_row: ExperimentRow = a_row,
            a_raws: list[str] = a_raws,
            b_row: ExperimentRow = b_row,
            b_raws: list[str] = b_raws,
            figure: str = figure,
        ) -> tuple[list[float], list[float]]:
            return (
                completed.values(a_row.name, a_raws, figure),
                completed.values(b_row.name, b_raws, figure),
            )

        comparison = compare_samples(parent.name, a, er.name, b, values=values)
        steps.append(Step(parent.name, er.name, spec.reference.at, comparison))
    for step, adjusted in zip(steps, holm([s.comparison.p for s in steps]), strict=True):
        step.comparison.p_adjusted = adjusted
    return steps
