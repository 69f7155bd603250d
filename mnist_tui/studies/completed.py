"""The completed runs a report compares, grouped by definition, from either of two places.

A report needs, per experiment and per definition (spec.toml hash, seed aside): how many
completed runs, the mean, spread and range of five figures, the most common hardest
class and the seeds; a step (an experiment against its parent) needs the accuracies
themselves. `IndexRuns` asks the run index for these as aggregates, so a report of
100,000 runs reads a few hundred numbers, not 100,000 rows; `ListedRuns` computes the
same from runs already in memory (the console holds them). Both give `Group`s, and the
report's statistics are computed once, from groups, whichever place they came from.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Protocol

from mnist_tui.runs.index import COMPLETED_FIGURES
from mnist_tui.runs.record import RunInfo
from mnist_tui.runs.store import RunStore
from mnist_tui.status import RunStatus


@dataclass(frozen=True)
class Moments:
    """One figure over a group of runs: count, mean, sum of squared deviations from the
    mean (the standard deviation without its rounding), lowest and highest."""

    n: int
    mean: float
    m2: float
    low: float
    high: float

    @property
    def std(self) -> float:
        """Sample standard deviation; 0 for one run."""
        return math.sqrt(max(self.m2, 0.0) / (self.n - 1)) if self.n > 1 else 0.0

    def merged(self, other: Moments) -> Moments:
        """Both groups as one (Chan, Golub and LeVeque's pairwise update: no sums of
        squares of large numbers, so no cancellation)."""
        n = self.n + other.n
        delta = other.mean - self.mean
        mean = self.mean + delta * other.n / n
        m2 = self.m2 + other.m2 + delta * delta * self.n * other.n / n
        return Moments(n, mean, m2, min(self.low, other.low), max(self.high, other.high))

    @classmethod
    def of(cls, xs: list[float]) -> Moments | None:
        if not xs:
            return None
        mean = math.fsum(xs) / len(xs)
        m2 = math.fsum((x - mean) ** 2 for x in xs)
        return cls(len(xs), mean, m2, min(xs), max(xs))


@dataclass
class Group:
    """An experiment's completed runs of one definition (raw spec.toml hash)."""

    experiment: str
    definition: str
    sample: str  # the id of one of its runs (its spec.toml is validated if need be)
    runs: int
    figures: dict[str, Moments | None]  # by index column: final_test_acc, ...
    hardest: dict[str, tuple[int, float]] = field(default_factory=dict)  # class: runs, newest
    seeds: list[int] = field(default_factory=list)

    def merged(self, other: Group) -> Group:
        """Two groups found to be one definition (an older spec.toml of the same one)."""
        figures: dict[str, Moments | None] = {}
        for name in COMPLETED_FIGURES:
            a, b = self.figures.get(name), other.figures.get(name)
            figures[name] = a.merged(b) if a and b else a or b
        hardest = dict(self.hardest)
        for cls, (count, newest) in other.hardest.items():
            mine = hardest.get(cls, (0, -math.inf))
            hardest[cls] = (mine[0] + count, max(mine[1], newest))
        return Group(
            self.experiment,
            self.definition,
            self.sample,
            self.runs + other.runs,
            figures,
            hardest,
            self.seeds + other.seeds,
        )

    def most_common_hardest(self) -> str | None:
        """The hardest class of most runs; of equal counts, the one of the newest run."""
        if not self.hardest:
            return None
        return max(self.hardest.items(), key=lambda kv: kv[1])[0]


class CompletedRuns(Protocol):
    """Where a report's completed runs come from."""

    root: Path  # the run store (a run's spec.toml is validated from there)

    def groups(self, experiment: str) -> list[Group]:
        """The experiment's completed runs, a group per definition."""
        ...

    def values(self, experiment: str, definitions: Iterable[str], figure: str) -> list[float]:
        """One figure (index column) of the experiment's completed runs of `definitions`."""
        ...


class IndexRuns:
    """Completed runs as aggregates from the run index (the `report` command)."""

    def __init__(self, store: RunStore, *, archived: bool = False) -> None:
        self.root = store.root
        self._index = store.index
        self._archived = archived
        self._groups: dict[str, list[Group]] | None = None

    def groups(self, experiment: str) -> list[Group]:
        if self._groups is None:
            self._groups = {}
            found = self._index.completed_groups(archived=self._archived)
            for g in found.groups:
                exp, definition, sample, runs, *moments, seeds = g
                figures = {
                    name: Moments(*moments[5 * i : 5 * i + 5]) if moments[5 * i] else None
                    for i, name in enumerate(COMPLETED_FIGURES)
                }
                seed_list = [int(s) for s in seeds.split(",")] if seeds else []
                group = Group(exp, definition, sample, runs, figures, seeds=seed_list)
                self._groups.setdefault(exp, []).append(group)
            by_key = {(g.experiment, g.definition): g for gs in self._groups.values() for g in gs}
            for exp, definition, cls, count, newest in found.hardest:
                # (one snapshot with the groups: a miss would be a run changed between)
                if (exp, definition) in by_key:
                    by_key[(exp, definition)].hardest[cls] = (count, newest)
        return self._groups.get(experiment, [])

    def values(self, experiment: str, definitions: Iterable[str], figure: str) -> list[float]:
        return self._index.completed_values(
            experiment, list(definitions), figure, archived=self._archived
        )


class Completed(NamedTuple):
    """One completed run with a final test accuracy, as a report compares it."""

    experiment: str
    run_id: str
    definition: str
    created: float
    seed: int | None
    hardest: str | None
    final_test_acc: float
    final_test_loss: float | None
    best_test_acc: float | None
    best_test_loss: float | None
    train_seconds: float | None


class ListedRuns:
    """The same from runs already listed (the console's report)."""

    def __init__(self, root: Path, runs: Iterable[RunInfo]) -> None:
        self.root = root
        self._by_exp: dict[str, list[Completed]] = {}
        self._groups: dict[str, list[Group]] = {}  # a parent is asked for by each step
        for r in runs:
            acc = r.final("test_acc")
            definition = r.definition_hash()
            if r.status != RunStatus.COMPLETED or not isinstance(acc, float | int):
                continue
            if definition is None:  # an unreadable spec.toml: in no definition's runs
                continue
            final, best = r.figures("final"), r.figures("best")
            seconds = r.summary.get("train_seconds")
            self._by_exp.setdefault(r.experiment, []).append(
                Completed(
                    r.experiment,
                    r.id,
                    definition,
                    r.created,
                    r.seed,
                    r.summary.get("hardest_class"),
                    float(acc),
                    _number(final.get("test_loss")),
                    _number(best.get("test_acc")),
                    _number(best.get("test_loss")),
                    _number(seconds),
                )
            )

    def groups(self, experiment: str) -> list[Group]:
        if experiment not in self._groups:
            self._groups[experiment] = self._grouped(experiment)
        return self._groups[experiment]

    def _grouped(self, experiment: str) -> list[Group]:
        by_definition: dict[str, list[Completed]] = {}
        for c in self._by_exp.get(experiment, []):
            by_definition.setdefault(c.definition, []).append(c)
        groups = []
        for definition, runs in by_definition.items():
            figures = {
                name: Moments.of([v for c in runs if (v := getattr(c, name)) is not None])
                for name in COMPLETED_FIGURES
            }
            hardest: dict[str, tuple[int, float]] = {}
            for c in runs:
                if c.hardest:
                    count, newest = hardest.get(c.hardest, (0, -math.inf))
                    hardest[c.hardest] = (count + 1, max(newest, c.created))
            seeds = [c.seed for c in runs if c.seed is not None]
            sample = min(c.run_id for c in runs)
            groups.append(Group(experiment, definition, sample, len(runs), figures, hardest, seeds))
        return groups

    def values(self, experiment: str, definitions: Iterable[str], figure: str) -> list[float]:
        wanted = set(definitions)
        return [
            v
            for c in self._by_exp.get(experiment, [])
            if c.definition in wanted and (v := getattr(c, figure)) is not None
        ]


def _number(x: object) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None
