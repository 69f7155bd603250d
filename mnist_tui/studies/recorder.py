"""What a training run's events leave in its run directory.

The trainer reports events (train/events.py); `RunRecorder` turns each kind into the
files a reader sees while the run trains and after: steps.jsonl, metrics.jsonl and
summary.json, and passes every event on to whoever else listens (a progress bar, a log).
"""

from __future__ import annotations

import time
from dataclasses import asdict

from mnist_tui.runs.steps import StepWriter, step_row
from mnist_tui.runs.store import RunHandle
from mnist_tui.train.events import BatchProgress, EpochEnded, Event, RunEnded, StepReport
from mnist_tui.train.sysmon import SystemMonitor
from mnist_tui.train.trainer import PER_EPOCH_ONLY, EventSink, Trainer

PROGRESS_EVERY = 1.0  # seconds between writes of the progress within an epoch


class RunRecorder:
    """The trainer's event sink for one run: one method per kind of event."""

    def __init__(
        self, handle: RunHandle, monitor: SystemMonitor, on_event: EventSink | None = None
    ) -> None:
        self.handle = handle
        self.monitor = monitor
        self.on_event = on_event
        self.steps = StepWriter(handle.path)
        # the run's trainer, once built: its history holds the best epoch's figures (a
        # resumed run's early epochs came from its checkpoint, not from events)
        self.trainer: Trainer | None = None
        self._last_progress = 0.0

    def __call__(self, event: Event) -> None:
        if isinstance(event, StepReport):
            self.step_report(event)
        elif isinstance(event, BatchProgress):
            self.batch_progress(event)
        elif isinstance(event, EpochEnded):
            self.epoch_ended(event)
        elif isinstance(event, RunEnded):
            self.run_ended(event)
        if self.on_event is not None:
            self.on_event(event)

    def step_report(self, event: StepReport) -> None:
        self.steps.write(
            step_row(
                event.epoch,
                event.step,
                event.steps,
                event.train_loss,
                event.train_acc,
                event.images,
                event.time,
            )
        )

    def batch_progress(self, event: BatchProgress) -> None:
        # the console shows progress within an epoch; at most one write a second
        now = time.monotonic()
        if now - self._last_progress >= PROGRESS_EVERY:
            self._last_progress = now
            self.handle.update(epoch_in_progress=event.epoch, step=event.step, steps=event.steps)

    def epoch_ended(self, event: EpochEnded) -> None:
        self.handle.append_metrics(event.metrics.to_json())
        # best so far as well as the newest epoch: listings show what a run still
        # training (or stopped) has reached, not a dash until it ends
        history = self.trainer.state.history if self.trainer is not None else []
        best = next((m for m in history if m.epoch == event.best_epoch), event.metrics)
        self.handle.update(
            epochs_done=event.metrics.epoch,
            best_epoch=event.best_epoch,
            last={k: v for k, v in asdict(event.metrics).items() if k != "test_confusion"},
            best={k: v for k, v in best.to_json().items() if k not in PER_EPOCH_ONLY},
            system=self.monitor.summary(),
        )

    def run_ended(self, event: RunEnded) -> None:
        self.monitor.stop()
        self.handle.update(**event.summary, system=self.monitor.summary())

    def close(self) -> None:
        self.steps.close()
