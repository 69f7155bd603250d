"""The fields of a run's summary.json, typed: what `runs/schema.py` checks on reading.

Kept apart from the checks so that a reader of the type sees every field in one place;
`schema.check_summary` is the one place that makes a `RunSummary` out of a file.
"""

from __future__ import annotations

from typing import Any, TypedDict

# figure name -> value ("epoch" a whole number; a value null without a validation split)
Figures = dict[str, float | None]
# `last` adds the newest epoch's per-class lists
LastFigures = dict[str, float | list[float] | None]


class RunSummary(TypedDict, total=False):
    """summary.json as `schema.load_run` returns it: every field here passed its check in
    schema.SUMMARY_FIELDS (a field that failed is left out and the run is damaged). Keys a newer
    writer adds pass through unchecked and are not listed."""

    # identity, written when the run directory is made (RunStore.create)
    id: str
    experiment: str
    status: str  # one of STATUSES (a RunStatus's value); RunInfo.status gives the member
    created: float
    seed: int | None
    group: str | None
    overrides: list[str]
    epochs: int | None
    # the queue (runs/scheduler.py)
    queued_at: float | None
    queue_position: float | None
    pin_device: str | None
    # whoever trains it
    pid: int | None
    pid_start: int | None  # clock ticks since boot: tells a reused pid from the trainer
    host: str | None
    node: str | None  # a Ray node, when a cluster trains it
    node_id: str | None
    device: str | None
    threads: int | None
    engine: str | None
    started: float | None
    reason: str | None  # why it ended as it did ("" once resumed)
    # progress (studies/runner.py's recorder)
    epochs_done: int | None
    best_epoch: int | None
    epoch_in_progress: int | None
    step: int | None
    steps: int | None
    resumed_from_epoch: int | None
    parameters: int | None
    classes: list[str] | None
    last: LastFigures | None
    system: dict[str, Any] | None
    # results (train/trainer.py's summarize)
    final: Figures | None
    best: Figures | None
    best_metric: str | None
    hardest_class: str | None
    per_class_acc: list[float] | None
    confusion: list[list[int]] | None
    train_seconds: float | None
    wall_seconds: float | None
    # what it is part of: a K-fold fold, a search's trial
    fold: int | None
    folds: int | None
    trial: int | None
    study: str | None
