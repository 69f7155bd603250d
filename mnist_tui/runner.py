"""Run an experiment end to end: device, data, trainer, run store. Used by every face."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

from mnist_tui import data as data_mod
from mnist_tui.events import BatchProgress, EpochEnded, Event, RunEnded
from mnist_tui.spec import ExperimentSpec
from mnist_tui.store import RunHandle, RunInfo, RunStore, environment, write_json_atomic
from mnist_tui.train import EventSink, Trainer, device_name, resolve_device


def run_experiment(
    spec: ExperimentSpec,
    store: RunStore,
    *,
    device: str = "auto",
    data_dir: Path | None = None,
    download: bool = True,
    on_event: EventSink | None = None,
    should_stop: Callable[[], bool] | None = None,
    group: str | None = None,
    handle: RunHandle | None = None,
    engine: str = "auto",
) -> RunInfo:
    """Train `spec` once, recording everything in `store`; returns the finished run.

    Interrupting with Ctrl-C marks the run killed before re-raising.
    """
    dev = resolve_device(device)
    if dev.type == "cpu":
        torch.set_num_threads(max(1, torch.get_num_threads()))
    dataset = data_mod.prepare(spec.data, spec.augment, dev, data_dir, download)
    if handle is None:
        handle = store.create(spec.name, spec.to_toml(), seed=spec.train.seed, group=group)
    handle.update(status="running", device=device_name(dev), pid=os.getpid())
    env = environment(device_name(dev), spec.train.seed)
    write_json_atomic(handle.path / "env.json", env)

    last_progress = [0.0]

    def sink(event: Event) -> None:
        if isinstance(event, BatchProgress):
            # the console shows progress within an epoch; at most one write a second
            now = time.monotonic()
            if now - last_progress[0] >= 1.0:
                last_progress[0] = now
                handle.update(epoch_in_progress=event.epoch, step=event.step, steps=event.steps)
        elif isinstance(event, EpochEnded):
            handle.append_metrics(event.metrics.to_json())
            handle.update(
                epochs_done=event.metrics.epoch,
                best_epoch=event.best_epoch,
                last={k: v for k, v in asdict(event.metrics).items() if k != "test_confusion"},
            )
        elif isinstance(event, RunEnded):
            handle.update(**event.summary)
        if on_event is not None:
            on_event(event)

    trainer = Trainer(
        spec,
        dataset,
        dev,
        run_id=handle.id,
        on_event=sink,
        should_stop=should_stop,
        checkpoint=handle.save_checkpoint,
        engine=engine,
    )
    handle.update(parameters=trainer.parameters, epochs=spec.train.epochs)
    try:
        trainer.run()
    except KeyboardInterrupt:
        handle.update(status="killed", reason="interrupted from the keyboard")
        raise
    except Exception as exc:
        handle.update(status="failed", reason=f"{type(exc).__name__}: {exc}")
        raise
    return handle.info()
