"""Parallel search (`tune --parallel K`): trials as queued runs that the worker trains.

K threads each ask Optuna for a trial, queue it as a run and follow that run's
metrics.jsonl until it ends; the worker (local slots or the Ray backend) trains up to K
of them at once in its own processes. Pruning writes the run's cancel flag, which the
trainer honours on any node. studies/tune.py holds the search itself.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnist_tui.config.overrides import with_overrides
from mnist_tui.config.spec import ExperimentSpec
from mnist_tui.errors import MnistTuiError
from mnist_tui.runs.record import RunInfo
from mnist_tui.runs.store import RunStore
from mnist_tui.status import RunStatus
from mnist_tui.studies.search_space import suggest, toml_value

if TYPE_CHECKING:
    from mnist_tui.runs.worker import WorkerOptions

POLL = 0.5  # seconds between looks at a queued trial's run
ORPHAN_WAIT = 10.0  # a running trial with no trainer and no worker is given up after this


class _Stopped(Exception):
    """The search was interrupted: a thread's trial gives up waiting."""


class QueuedTrials:
    """Trials as queued runs: enqueue, follow metrics.jsonl, prune by cancel flag."""

    def __init__(
        self,
        optuna: Any,
        spec: ExperimentSpec,
        store: RunStore,
        extra: list[str],
        study: str,
        device: str,
        data_dir: Path | None,
        on_trial: Callable[[dict[str, Any]], None] | None,
    ) -> None:
        self.optuna = optuna
        self.spec = spec
        self.store = store
        self.extra = extra
        self.study = study
        self.device = device
        self.data_dir = data_dir
        self.on_trial = on_trial
        self.stop = threading.Event()
        self.inflight: dict[str, RunInfo] = {}
        self.lock = threading.Lock()
        self.options: WorkerOptions | None = None
        self.last_check = 0.0

    def start_worker(self, parallel: int, options: WorkerOptions | None) -> list[str]:
        """A worker with room for `parallel` runs at once, unless one serves the store."""
        import dataclasses

        from mnist_tui.runs.local_launcher import detect_devices
        from mnist_tui.runs.scheduler import normalize_device
        from mnist_tui.runs.worker import WorkerOptions, ensure_worker

        opts = options or WorkerOptions()
        if opts.backend == "local":
            pin = normalize_device(self.device)
            devices = opts.devices or ((pin,) if pin else detect_devices())
            per_device = max(opts.per_device, math.ceil(parallel / len(devices)))
            opts = dataclasses.replace(opts, devices=devices, per_device=per_device)
        if opts.data_dir is None and self.data_dir is not None:
            opts = dataclasses.replace(opts, data_dir=self.data_dir)
        self.options = opts
        self.last_check = time.monotonic()  # give the new worker time to take its lock
        live = ensure_worker(self.store, opts)
        if live is None:
            return []
        slots = len(live.devices) * live.per_device
        if opts.backend == "local" and slots < parallel:
            return [
                f"a worker (pid {live.pid}) already serves {self.store.root} with {slots} "
                f"slot(s): trials run {slots} at a time, not {parallel}"
            ]
        return []

    def optimize(self, study: Any, n_trials: int, parallel: int) -> None:
        """Optuna's n_jobs threads; Ctrl-C cancels the trials' runs before it propagates."""
        main = threading.current_thread() is threading.main_thread()
        previous = signal.getsignal(signal.SIGINT) if main else None

        def interrupt(*_: Any) -> None:
            self.interrupt()
            raise KeyboardInterrupt

        if main:
            signal.signal(signal.SIGINT, interrupt)
        try:
            study.optimize(self.objective, n_trials=n_trials, n_jobs=parallel)
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)

    def interrupt(self) -> None:
        from mnist_tui.runs.scheduler import cancel

        self.stop.set()
        # each trial in flight now fails: one line from the caller, not Optuna's traceback
        self.optuna.logging.set_verbosity(self.optuna.logging.ERROR)
        with self.lock:
            runs = list(self.inflight.values())
        for info in runs:
            fresh = self.store.read_run(info.experiment, info.id)
            if fresh is not None and fresh.status in (RunStatus.QUEUED, RunStatus.RUNNING):
                with contextlib.suppress(MnistTuiError):  # it ended meanwhile
                    cancel(self.store, fresh)

    def objective(self, trial: Any) -> float:
        from mnist_tui.runs.scheduler import QueueRequest, enqueue

        search = self.spec.search
        values = {p.key: suggest(trial, p) for p in search.params}
        overrides = [*self.extra, *(f"{k}={toml_value(v)}" for k, v in values.items())]
        trial_spec = with_overrides(self.spec, overrides)
        if self.stop.is_set():
            raise _Stopped("the search was interrupted")
        info = enqueue(
            self.store,
            trial_spec,
            QueueRequest(
                tuple(overrides),
                self.study,
                None if self.device == "auto" else self.device,
                {"trial": trial.number, "study": self.study},
            ),
        )
        trial.set_user_attr("run", info.id)
        with self.lock:
            self.inflight[info.id] = info
        try:
            done, pruned = self.follow(info, trial)
        finally:
            with self.lock:
                self.inflight.pop(info.id, None)
        row: dict[str, Any] = {
            "number": trial.number,
            "run": info.id,
            "params": values,
            "status": "pruned" if pruned else done.status,
        }
        if pruned:
            self.store.handle(done).update(reason="pruned by the search")
            if self.on_trial:
                self.on_trial(row)
            raise self.optuna.TrialPruned()
        if done.status != RunStatus.COMPLETED:
            raise MnistTuiError(f"trial {trial.number} {done.status}: {done.reason}")
        value = done.best(search.metric)
        if value is None:
            raise MnistTuiError(f"trial {trial.number}: no {search.metric} was recorded")
        row["value"] = value
        if self.on_trial:
            self.on_trial(row)
        return float(value)

    def follow(self, info: RunInfo, trial: Any) -> tuple[RunInfo, bool]:
        """Report each new epoch to Optuna until the run has ended and been released."""
        from mnist_tui.runs import claim as claims
        from mnist_tui.runs.scheduler import cancel

        metric = self.spec.search.metric
        reported, pruned, orphaned = 0, False, 0.0
        while True:
            fresh = self.store.read_run(info.experiment, info.id)
            if fresh is None:
                raise MnistTuiError(f"trial {trial.number}: its run {info.id} disappeared")
            rows = fresh.metrics()
            for row in rows[reported:]:
                value = row.get(metric)
                if value is not None and not pruned:
                    trial.report(float(value), int(row["epoch"]))
                    # a run that already ended saves nothing by pruning: it keeps its value
                    if (
                        fresh.status in (RunStatus.QUEUED, RunStatus.RUNNING)
                        and trial.should_prune()
                    ):
                        with contextlib.suppress(MnistTuiError):  # it ended meanwhile
                            cancel(self.store, fresh)
                            pruned = True
            reported = len(rows)
            stored = fresh.stored_status
            held = (fresh.path / claims.CLAIM).exists()
            if stored not in (RunStatus.QUEUED, RunStatus.RUNNING) and not held:
                return fresh, pruned
            if self.stop.is_set():
                raise _Stopped("the search was interrupted")
            self.keep_worker(fresh)
            if (
                stored == RunStatus.RUNNING
                and fresh.status == RunStatus.INTERRUPTED
                and self.no_worker()
            ):
                # its trainer and its worker are both gone (give a worker time to reap it)
                orphaned = orphaned or time.monotonic()
                if time.monotonic() - orphaned > ORPHAN_WAIT:
                    return fresh, pruned
            else:
                orphaned = 0.0
            time.sleep(POLL)

    def no_worker(self) -> bool:
        from mnist_tui.runs.worker import worker_info

        return worker_info(self.store) is None

    def keep_worker(self, info: RunInfo) -> None:
        """A worker that exited or died is started again while trials wait for it."""
        from mnist_tui.runs.worker import ensure_worker

        now = time.monotonic()
        if info.stored_status != RunStatus.QUEUED or now - self.last_check < 10:
            return
        self.last_check = now
        if self.no_worker() and self.options is not None:
            ensure_worker(self.store, self.options)
