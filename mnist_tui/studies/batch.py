"""Many runs from one request: seeds and repeats, K-fold folds, and the loop that trains them.

Both faces describe what they want with `RunOptions` and a list of `PlannedRun`s; the CLI
trains them in the foreground with `train_planned`, the console and `queue add` hand
them to the worker with `queue_planned`. Nothing here prints.
"""

from __future__ import annotations

import secrets
import signal
import statistics
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from mnist_tui.config.loading import check_runnable
from mnist_tui.config.overrides import with_overrides
from mnist_tui.config.spec import ExperimentSpec
from mnist_tui.errors import MnistTuiError
from mnist_tui.runs import scheduler
from mnist_tui.runs.record import RunInfo
from mnist_tui.runs.store import RunStore
from mnist_tui.status import RunStatus
from mnist_tui.studies.run_options import RunOptions
from mnist_tui.train.events import Event

EventSink = Callable[[Event], None]


@dataclass(frozen=True)
class PlannedRun:
    """One run to make: its resolved definition and what it is part of."""

    spec: ExperimentSpec
    overrides: tuple[str, ...] = ()
    group: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # fold, trial: stored and shown


def parse_seeds(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise MnistTuiError(f"--seeds: expected integers like 0,1,2, got '{text}'") from None
    if not seeds or any(x < 0 for x in seeds):
        raise MnistTuiError(f"--seeds: expected non-negative integers, got '{text}'")
    return seeds


def plan_seeds(
    specs: Iterable[ExperimentSpec],
    overrides: Iterable[str] = (),
    repeats: int | None = None,
    seeds: list[int] | None = None,
) -> list[PlannedRun]:
    """One run per seed; the runs of one experiment in one request share a group."""
    if repeats is not None and seeds is not None:
        raise MnistTuiError("give --repeats or --seeds, not both")
    if repeats is not None and repeats < 1:
        raise MnistTuiError(f"--repeats: expected a positive integer, got {repeats}")
    base = tuple(overrides)
    specs = list(specs)
    for spec in specs:  # every name checked before the first run trains
        check_runnable(spec)
    out: list[PlannedRun] = []
    for spec in specs:
        n = repeats if repeats is not None else spec.train.repeats
        chosen = seeds or [spec.train.seed + i for i in range(n)]
        group = f"{spec.name}-{secrets.token_hex(3)}" if len(chosen) > 1 else None
        for s in chosen:
            if s == spec.train.seed:
                out.append(PlannedRun(spec, base, group))
            else:
                seeded = (*base, f"train.seed={s}")
                out.append(PlannedRun(with_overrides(spec, [f"train.seed={s}"]), seeded, group))
    return out


def plan_folds(
    spec: ExperimentSpec, folds: int | None = None, overrides: Iterable[str] = ()
) -> list[PlannedRun]:
    """Stratified K-fold: one run per fold, every fold validated before any trains."""
    check_runnable(spec)
    k = folds if folds is not None else spec.cv.folds
    if k < 2:
        raise MnistTuiError(f"--folds: expected at least 2, got {k}")
    group = f"{spec.name}-cv{k}-{secrets.token_hex(3)}"
    out = []
    for i in range(k):
        extra = [f"data.folds={k}", f"data.fold={i}"]
        out.append(
            PlannedRun(
                with_overrides(spec, extra),
                (*overrides, *extra),
                group,
                {"fold": i, "folds": k},
            )
        )
    return out


@dataclass(frozen=True)
class MeanStd:
    mean: float
    std: float

    @classmethod
    def of(cls, xs: list[float]) -> MeanStd:
        if not xs:
            return cls(float("nan"), float("nan"))
        return cls(statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0)


@dataclass(frozen=True)
class GroupResult:
    """A group's figures: per-run values and mean ± std (repeats or folds)."""

    runs: list[str]
    val_acc: list[float]
    test_acc: list[float]

    @property
    def val(self) -> MeanStd:
        return MeanStd.of(self.val_acc)

    @property
    def test(self) -> MeanStd:
        return MeanStd.of(self.test_acc)


def group_result(infos: Iterable[RunInfo]) -> GroupResult:
    done = [i for i in infos if i.status == RunStatus.COMPLETED]
    return GroupResult(
        [i.id for i in done],
        [v for i in done if (v := i.final("val_acc")) is not None],
        [v for i in done if (v := i.final("test_acc")) is not None],
    )


def stop_on_sigterm() -> Callable[[], bool]:
    """SIGTERM (a cancel from the console or the worker) ends the run cleanly as killed."""
    flag = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: flag.set())
    return flag.is_set


ProgressFactory = Callable[[PlannedRun], AbstractContextManager[EventSink]]


def train_planned(
    planned: list[PlannedRun],
    store: RunStore,
    options: RunOptions,
    progress: ProgressFactory,
    should_stop: Callable[[], bool] | None = None,
    stop_on_failure: bool = False,
) -> Iterator[tuple[PlannedRun, RunInfo]]:
    """Train each planned run in this process, yielding each finished run.

    `progress(run)` gives a context that receives the run's events (a progress bar, or
    nothing). Ctrl-C marks the current run killed and propagates KeyboardInterrupt.
    """
    from mnist_tui.studies.runner import run_experiment

    stop = should_stop or stop_on_sigterm()
    for plan in planned:
        with progress(plan) as sink:
            info = run_experiment(
                plan.spec,
                store,
                options,
                group=plan.group,
                extra_summary={"overrides": list(plan.overrides), **plan.extra},
                on_event=sink,
                should_stop=stop,
            )
        yield plan, info
        if stop_on_failure and info.status != RunStatus.COMPLETED:
            return
        if stop():
            return


def queue_planned(
    planned: list[PlannedRun], store: RunStore, device: str | None = None
) -> list[RunInfo]:
    """Queue each planned run for the worker (pinned to `device` when given)."""
    return [
        scheduler.enqueue(
            store,
            plan.spec,
            scheduler.QueueRequest(plan.overrides, plan.group, device, dict(plan.extra)),
        )
        for plan in planned
    ]
