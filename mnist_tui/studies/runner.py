"""Run an experiment end to end: device, data, trainer, run store. Used by every face."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from mnist_tui.config.spec import ExperimentSpec
from mnist_tui.data import device as data_device
from mnist_tui.errors import MnistTuiError, StoreError
from mnist_tui.runs.io import write_json_atomic
from mnist_tui.runs.provenance import environment
from mnist_tui.runs.store import RunHandle, RunInfo, RunStore
from mnist_tui.train.events import BatchProgress, EpochEnded, Event, RunEnded
from mnist_tui.train.setup import device_name, resolve_device
from mnist_tui.train.trainer import EventSink, Trainer


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
    resume_state: dict[str, Any] | None = None,
) -> RunInfo:
    """Train `spec` once, recording everything in `store`; returns the finished run.

    Interrupting with Ctrl-C marks the run killed before re-raising.
    """
    dev = resolve_device(device)
    if dev.type == "cpu":
        torch.set_num_threads(max(1, torch.get_num_threads()))
    dataset = data_device.prepare(spec.data, spec.augment, dev, data_dir, download)
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
    if resume_state is not None:
        trainer.load_state_dict(resume_state)
        # the checkpoint's history is the truth: it may hold an epoch the metrics file lost
        handle.rewrite_metrics([m.to_json() for m in trainer.state.history])
        handle.update(resumed_from_epoch=trainer.state.epoch, reason="")
    handle.update(parameters=trainer.parameters, epochs=spec.train.epochs)
    try:
        trainer.run()
    except KeyboardInterrupt:
        _mark(handle, "killed", "interrupted from the keyboard")
        raise
    except Exception as exc:
        _mark(
            handle,
            "failed",
            str(exc) if isinstance(exc, MnistTuiError) else f"{type(exc).__name__}: {exc}",
        )
        raise
    return handle.info()


def _mark(handle: RunHandle, status: str, reason: str) -> None:
    """Record why a run stopped; on a full disk this may fail too, and the first error wins."""
    with contextlib.suppress(StoreError):
        handle.update(status=status, reason=reason)


def resume_run(
    info: RunInfo,
    store: RunStore,
    *,
    device: str = "auto",
    data_dir: Path | None = None,
    download: bool = True,
    on_event: EventSink | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RunInfo:
    """Continue a stopped run from its last checkpoint (model, optimizer, schedule, RNG)."""
    import torch

    from mnist_tui.config.loading import load_spec_file
    from mnist_tui.errors import StoreError

    status = info.status
    if status in ("running", "queued"):
        raise StoreError(f"run {info.id} is {status}; only a stopped run can be resumed")
    if status == "completed":
        raise StoreError(f"run {info.id} already completed all its epochs")
    ckpt = info.path / "last.pt"
    if not ckpt.is_file():
        raise StoreError(
            f"run {info.id} has no checkpoint ({ckpt}): it stopped before its first epoch "
            "ended; start it again with mnist-tui run"
        )
    try:
        # weights_only: a checkpoint is data, never code
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise StoreError(f"cannot read checkpoint {ckpt}: {exc}") from None
    spec = load_spec_file(info.spec_path())
    return run_experiment(
        spec,
        store,
        device=device,
        data_dir=data_dir,
        download=download,
        on_event=on_event,
        should_stop=should_stop,
        handle=store.handle(info),
        resume_state=state,
    )
