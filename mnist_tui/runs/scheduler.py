"""The queue is the run store: a queued run is a run directory whose status is `queued`.

Order comes from each queued run's `queue_position` (then its creation time); there is no
side file of statuses to drift from the runs. The operations here are the only ones both
faces use: `enqueue`, `queue_order`, `move`, `cancel`, `pause`/`resume`. Runs are started by
the worker (runs/worker.py), never here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mnist_tui.config.loading import check_runnable
from mnist_tui.config.spec import ExperimentSpec
from mnist_tui.errors import StoreError
from mnist_tui.runs import claim as claims
from mnist_tui.runs import queue_watch
from mnist_tui.runs.record import CANCEL_FLAG as CANCEL_FLAG
from mnist_tui.runs.record import RunInfo
from mnist_tui.runs.store import RunStore
from mnist_tui.runs.trainer_check import held_note, verify_trainer
from mnist_tui.status import RunStatus

PAUSE_FLAG = ".queue-paused"
Where = Literal["up", "down", "top", "bottom"]


@dataclass(frozen=True)
class QueueRequest:
    """What a queued run carries besides its definition: why it exists and where it may run."""

    overrides: tuple[str, ...] = ()
    group: str | None = None
    device: str | None = None  # pinned device: "cpu" or a GPU id such as "1"; None = any
    extra: dict[str, Any] = field(default_factory=dict)  # fold, trial, ... shown in views


def normalize_device(device: str | None) -> str | None:
    """'cuda:1' / 'gpu1' / '1' -> '1'; 'cpu' -> 'cpu'; None / 'auto' / '' -> None (any)."""
    if device is None:
        return None
    d = device.strip().lower()
    if d in ("", "auto", "any"):
        return None
    if d == "cpu":
        return "cpu"
    for prefix in ("cuda:", "gpu:", "gpu", "cuda"):
        if d.startswith(prefix) and d[len(prefix) :].isdigit():
            return d[len(prefix) :]
    if d.isdigit():
        return d
    if d == "cuda":
        return None
    raise StoreError(f"device '{device}': expected cpu, a GPU id (0, 1, ...) or cuda:N")


def scheduler_statuses() -> tuple[str, ...]:
    """What the queue reads: a few rows of the index, not every run in the store."""
    return (RunStatus.QUEUED, RunStatus.RUNNING)


def queue_order(store: RunStore, runs: Iterable[RunInfo] | None = None) -> list[RunInfo]:
    """Queued runs in the order the worker will start them."""
    pool = store.runs(stored=scheduler_statuses()) if runs is None else runs
    queued = [r for r in pool if r.stored_status == RunStatus.QUEUED]
    return sorted(queued, key=_position)


def active_runs(store: RunStore, runs: Iterable[RunInfo] | None = None) -> list[RunInfo]:
    """Running runs (oldest start first), then queued runs in queue order."""
    pool = list(store.runs(stored=scheduler_statuses()) if runs is None else runs)
    running = sorted(
        (r for r in pool if r.status == RunStatus.RUNNING),
        key=lambda r: float(r.started or r.created),
    )
    return running + queue_order(store, pool)


def _position(info: RunInfo) -> tuple[float, float]:
    pos = info.summary.get("queue_position")
    return (float(pos) if isinstance(pos, int | float) else info.created, info.created)


def enqueue(store: RunStore, spec: ExperimentSpec, request: QueueRequest) -> RunInfo:
    """Create the run directory, status queued, at the end of the queue.

    The run's spec.toml is the definition it will train: editing the experiment file
    afterwards changes nothing for this run.
    """
    check_runnable(spec)  # a name no run directory can have: refused before anything
    # the tail kept in the index: placing a run reads no queue (O(1) in the store's size);
    # only a store whose index lost it (rebuilt, new) reads the queue once
    last = queue_watch.tail(store)
    if last is None:
        last = max([_position(r)[0] for r in queue_order(store)], default=0.0)
    position = max(last, time.time()) + 1e-3
    queue_watch.raise_tail(store, position)
    handle = store.create(
        spec.name,
        spec.to_toml(),
        files=spec.run_files(),
        status=RunStatus.QUEUED,
        seed=spec.train.seed,
        group=request.group,
        extra={
            "epochs": spec.train.epochs,
            "overrides": list(request.overrides),
            "pid": None,
            "queue_position": position,
            "pin_device": normalize_device(request.device),
            "queued_at": time.time(),
            **request.extra,
        },
    )
    return handle.info()


def move(store: RunStore, run: RunInfo, where: Where) -> None:
    """Move a queued run within the queue; running runs are not part of the order."""
    if run.stored_status != RunStatus.QUEUED:
        raise StoreError(f"run {run.id} is {run.status}: only queued runs can be moved")
    order = queue_order(store)
    ids = [r.id for r in order]
    i = ids.index(run.id)
    if where == "top":
        target = 0
    elif where == "bottom":
        target = len(order) - 1
    else:
        target = max(0, min(len(order) - 1, i + (-1 if where == "up" else 1)))
    if target == i:
        return
    order.insert(target, order.pop(i))
    # renumber only the span that moved, so other writers' positions stay put
    lo, hi = min(i, target), max(i, target)
    base = _position(order[lo - 1])[0] if lo > 0 else _position(order[0])[0] - 1.0
    top = _position(order[hi + 1])[0] if hi + 1 < len(order) else base + (hi - lo + 2)
    step = (top - base) / (hi - lo + 2)
    for k, info in enumerate(order[lo : hi + 1], start=1):
        _update_if_queued(store, info, queue_position=base + k * step)


def _update_if_queued(store: RunStore, info: RunInfo, **fields: Any) -> None:
    fresh = store.read_run(info.experiment, info.id)
    if fresh is not None and fresh.stored_status == RunStatus.QUEUED:
        store.handle(fresh).update(**fields)
        position = fields.get("queue_position")
        if isinstance(position, float):
            queue_watch.raise_tail(store, position)  # a move to the bottom may pass it


def cancel(store: RunStore, run: RunInfo) -> str:
    """Take a run off the queue, or ask a running run to stop. Returns what happened.

    A queued run is claimed first, so a worker cannot start it while it is being removed.
    A running one gets a cancel flag in its directory (seen by its trainer on any host);
    SIGTERM goes only to a process that is verifiably its trainer (runs/trainer_check.py),
    never to whatever pid a claim names. It then ends as killed with its checkpoint.
    """
    status = run.status
    if status == RunStatus.QUEUED:
        try:
            holder = claims.claim(run.path, "cancel")
        except claims.ClaimedError:
            status = RunStatus.RUNNING  # taken a moment ago (or held by someone): stop it instead
        else:
            place = run.path
            try:
                fresh = store.read_run(run.experiment, run.id)
                if fresh is not None and fresh.stored_status == RunStatus.QUEUED:
                    # it never ran: it goes (to the trash, as `delete` does), rather than
                    # staying in the store as a "killed" run that never trained
                    place = _to_trash(store, run)
            finally:
                claims.release(place, holder, ended="cancelled before it started")
            return "removed from the queue (never started; it is in the trash)"
    if status == RunStatus.RUNNING:
        with contextlib.suppress(OSError):
            (run.path / CANCEL_FLAG).write_text(str(time.time()), encoding="utf-8")
        held = claims.holder_of(run.path) or _holder_in_summary(run)
        verdict = verify_trainer(held, run.path)
        if held is None or not verdict.trainer:
            who = held.describe() if held is not None else "no process"
            return f"asked to stop through its cancel flag (held by {who}; {verdict.why})"
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(held.pid, signal.SIGTERM)
        return "asked to stop"
    raise StoreError(f"run {run.id} is {status}: there is nothing to cancel")


def _holder_in_summary(run: RunInfo) -> claims.Holder | None:
    """A run trained in a terminal holds no claim: its summary names the process."""
    s = run.summary
    pid, host, start = s.get("pid"), s.get("host"), s.get("pid_start")
    if not isinstance(pid, int) or not isinstance(host, str):
        return None
    started = s.get("started")
    return claims.Holder(
        pid,
        start if isinstance(start, int) else None,
        host,
        "run",
        float(started) if isinstance(started, int | float) else 0.0,
    )


def held_reason(run: RunInfo) -> str | None:
    """Why a queued run is not started: a live process that is not its trainer holds its
    claim (and how to release it); None when nothing holds it that way."""
    if run.status != RunStatus.QUEUED:
        return None
    holder = claims.holder_of(run.path)
    return held_note(holder, run.path) if holder is not None else None


def _to_trash(store: RunStore, run: RunInfo) -> Path:
    """Move a claimed queued run into the store's trash; where it is now."""
    from mnist_tui.runs.contained import check_path, check_runs
    from mnist_tui.runs.manage import trash_dir

    target = trash_dir(store) / run.experiment / run.id
    # never through a link out of the store (the trash, as `delete` checks it)
    check_runs(store.root, [run.path], "cancel")
    check_path(store.root, target.parent, "cancel")
    if target.exists():
        target = target.with_name(f"{run.id}.{time.time_ns()}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(run.path, target)
    except OSError as exc:
        raise StoreError(f"cannot move {run.path} to {target}: {exc.strerror}") from None
    store.index.forget(run.path)
    return target


def cancel_requested(run_path: Path) -> bool:
    return (run_path / CANCEL_FLAG).exists()


def pause(store: RunStore) -> None:
    """Start no new runs until resumed; running runs go on."""
    from mnist_tui.runs.env_errors import writing

    with writing(store.root / PAUSE_FLAG):  # a read-only or full store: say so, and where
        store.root.mkdir(parents=True, exist_ok=True)
        (store.root / PAUSE_FLAG).write_text(str(time.time()), encoding="utf-8")


def resume(store: RunStore) -> None:
    from mnist_tui.runs.env_errors import writing

    with writing(store.root / PAUSE_FLAG, "remove"), contextlib.suppress(FileNotFoundError):
        (store.root / PAUSE_FLAG).unlink()


def is_paused(store: RunStore) -> bool:
    return (store.root / PAUSE_FLAG).exists()
