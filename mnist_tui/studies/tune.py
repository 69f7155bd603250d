"""Hyper-parameter search with Optuna (optional): every trial is a stored run.

The search space is the experiment's `[search]`; the study lives in an Optuna journal
file inside the run store (`tune.journal`), or in a database server (`--storage URL`),
so a search can be resumed (same study name), watched from another shell and run by
several processes at once. Each epoch's validation metric is reported to Optuna and
hopeless trials are pruned. The best trial is written as a new experiment that
`extends` the original.

Two ways to run trials:
- in this process, one after another (the default);
- through the scheduler (`parallel=K`): K threads, each asking Optuna for a trial,
  queueing it as a run and following that run's metrics.jsonl until it ends; the worker
  (local slots or the Ray backend) trains up to K of them at once in its own processes.
  Threads are enough here because they only wait on files: the training happens in the
  worker's children, so the overlap is real, while one study object, one storage handle
  and Optuna's own `n_jobs` bookkeeping (trial counting, constant-liar TPE) are shared.
  Pruning writes the run's cancel flag, which the trainer honours on any node.
SQLite, the old default, locks up under parallel writers (optuna #820); a store's old
`tune.db` is still read by `read_studies`.
"""

from __future__ import annotations

import contextlib
import math
import re
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomli_w

from mnist_tui.config.overrides import with_overrides
from mnist_tui.config.spec import ExperimentSpec, SearchParam
from mnist_tui.errors import MnistTuiError
from mnist_tui.runs.record import RunInfo
from mnist_tui.runs.store import RunStore
from mnist_tui.train.events import EpochEnded, Event

if TYPE_CHECKING:
    from mnist_tui.runs.worker import WorkerOptions

JOURNAL = "tune.journal"
LEGACY_DB = "tune.db"
POLL = 0.5  # seconds between looks at a queued trial's run
ORPHAN_WAIT = 10.0  # a running trial with no trainer and no worker is given up after this


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise MnistTuiError(
            "mnist-tui tune needs Optuna: pip install 'mnist-tui[tune]' (or pip install optuna)"
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


@dataclass
class TuneResult:
    metric: str  # what each trial's value is: this metric at the run's best epoch
    completed: int  # trials that completed (importances from fewer are a rough hint)
    study_name: str
    storage: str
    best_value: float
    best_params: dict[str, Any]
    best_run: str
    trials: list[dict[str, Any]]  # number, state, value, params, run
    importances: dict[str, float]
    written: Path | None
    parallel: int | None = None  # trials at once through the scheduler; None: in-process
    notes: list[str] = field(default_factory=list)  # what the caller should tell the user


def open_storage(optuna: Any, store: RunStore, url: str | None) -> tuple[Any, str]:
    """Optuna storage and how to name it: the store's journal file by default, a path to
    another journal file, or a database URL (postgresql://..., mysql://..., sqlite:///...)."""
    if url is not None and "://" in url:
        return url, url
    path = Path(url) if url else store.root / JOURNAL
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = optuna.storages.journal.JournalFileBackend(str(path))
    except OSError as exc:
        raise MnistTuiError(f"--storage: cannot use {path}: {exc.strerror}") from None
    return optuna.storages.JournalStorage(backend), str(path)


def _labels(p: SearchParam) -> dict[Any, Any]:
    """Optuna stores scalar choices; list choices (model.hidden) go by their TOML text."""
    return {(_toml_value(c) if isinstance(c, list) else c): c for c in p.choices}


def decode(p: SearchParam, raw: Any) -> Any:
    return _labels(p).get(raw, raw) if p.choices else raw


def suggest(trial: Any, p: SearchParam) -> Any:
    if p.choices:
        return decode(p, trial.suggest_categorical(p.key, list(_labels(p))))
    if p.integer:
        return trial.suggest_int(p.key, int(p.low), int(p.high), log=p.log)  # type: ignore[arg-type]
    return trial.suggest_float(p.key, float(p.low), float(p.high), log=p.log)  # type: ignore[arg-type]


def _trial_rows(study: Any) -> list[dict[str, Any]]:
    return [
        {
            "number": t.number,
            "state": t.state.name.lower(),
            "value": t.value,
            "params": t.params,
            "run": t.user_attrs.get("run"),
        }
        for t in study.trials
    ]


def _importances(optuna: Any, study: Any, completed: int) -> dict[str, float]:
    """fANOVA importances once two trials completed; {} where Optuna cannot compute them."""
    if completed < 2:
        return {}
    try:
        return dict(optuna.importance.get_param_importances(study))
    except (RuntimeError, ValueError, ImportError):
        return {}


def _toml_value(v: Any) -> str:
    return tomli_w.dumps({"v": v}).split("=", 1)[1].strip()


def tune(
    spec: ExperimentSpec,
    store: RunStore,
    *,
    trials: int | None = None,
    study_name: str | None = None,
    device: str = "auto",
    data_dir: Path | None = None,
    download: bool = True,
    experiments_dir: Path | None = None,
    write_to: Path | None = None,
    on_trial: Callable[[dict[str, Any]], None] | None = None,
    on_event: Callable[[Event], None] | None = None,
    parallel: int | None = None,
    storage: str | None = None,
    worker: WorkerOptions | None = None,
) -> TuneResult:
    """Search; `parallel=K` queues trials for the worker (`worker`: how to start one if
    none serves the store) and keeps K in flight, else trials train in this process."""
    optuna = _optuna()
    if parallel is not None and parallel < 1:
        raise MnistTuiError(f"--parallel: expected a positive integer, got {parallel}")
    search = spec.search
    if not search.params:
        raise MnistTuiError(
            f"{spec.source or spec.name}: no [search.params] to tune; add e.g.\n"
            '[search.params]\n"optim.lr" = { low = 1e-4, high = 1e-2, log = true }'
        )
    extra: list[str] = []
    if spec.data.val_split == 0 and spec.data.folds < 2:
        # trials are judged on held-out training images, never on the test set
        extra.append(f"data.val_split={search.val_split}")
        with_overrides(spec, extra)  # validate before any trial
    direction = "minimize" if search.metric.endswith("loss") else "maximize"
    name = study_name or f"{spec.name}-tune"
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", name):
        raise MnistTuiError(f"--study: '{name}' may use letters, digits, '_', '.', '-' only")
    store.root.mkdir(parents=True, exist_ok=True)
    backend, storage_name = open_storage(optuna, store, storage)
    notes: list[str] = []
    if parallel and parallel > 1 and storage_name.startswith("sqlite:"):
        notes.append("SQLite may lock up under parallel trials; the default journal file does not")
    study = optuna.create_study(
        study_name=name,
        storage=backend,
        direction=direction,
        load_if_exists=True,
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
        sampler=optuna.samplers.TPESampler(seed=spec.train.seed),
    )
    study.set_user_attr("metric", search.metric)  # what a trial's value is, for readers

    def objective(trial: Any) -> float:
        from mnist_tui.studies.runner import run_experiment

        values = {p.key: suggest(trial, p) for p in search.params}
        overrides = [*extra, *(f"{k}={_toml_value(v)}" for k, v in values.items())]
        trial_spec = with_overrides(spec, overrides)
        pruned = {"flag": False}

        def events(event: Event) -> None:
            if on_event is not None:
                on_event(event)
            if isinstance(event, EpochEnded):
                value = getattr(event.metrics, search.metric)
                trial.report(value, event.metrics.epoch)
                if trial.should_prune():
                    pruned["flag"] = True

        info = run_experiment(
            trial_spec,
            store,
            device=device,
            data_dir=data_dir,
            download=download,
            on_event=events,
            should_stop=lambda: pruned["flag"],
            group=name,
        )
        store.handle(info).update(
            trial=trial.number,
            study=name,
            **({"reason": "pruned by the search"} if pruned["flag"] else {}),
        )
        trial.set_user_attr("run", info.id)
        row = {
            "number": trial.number,
            "run": info.id,
            "params": values,
            "status": "pruned" if pruned["flag"] else info.status,
        }
        if pruned["flag"]:
            if on_trial:
                on_trial(row)
            raise optuna.TrialPruned()
        if info.status != "completed":
            raise MnistTuiError(f"trial {trial.number} {info.status}: {info.summary.get('reason')}")
        best = info.summary.get("best") or {}
        value = best.get(search.metric)
        if value is None:
            raise MnistTuiError(f"trial {trial.number}: no {search.metric} was recorded")
        row["value"] = value
        if on_trial:
            on_trial(row)
        return float(value)

    n_trials = trials or search.trials
    if parallel is None:
        study.optimize(objective, n_trials=n_trials)
    else:
        queued = _QueuedTrials(optuna, spec, store, extra, name, device, data_dir, on_trial)
        notes += queued.start_worker(parallel, worker)
        queued.optimize(study, n_trials, parallel)
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not completed:
        raise MnistTuiError("no trial completed; nothing to write")
    best = study.best_trial
    importances = _importances(optuna, study, len(completed)) if len(search.params) >= 2 else {}
    by_key = {p.key: p for p in search.params}
    best_params = {k: decode(by_key[k], v) if k in by_key else v for k, v in best.params.items()}
    written = write_best(spec, best_params, extra, name, best.value, experiments_dir, write_to)
    return TuneResult(
        metric=search.metric,
        completed=len(completed),
        study_name=name,
        storage=storage_name,
        best_value=float(best.value),
        best_params=best_params,
        best_run=str(best.user_attrs.get("run", "")),
        trials=_trial_rows(study),
        importances=importances,
        written=written,
        parallel=parallel,
        notes=notes,
    )


class _Stopped(Exception):
    """The search was interrupted: a thread's trial gives up waiting."""


class _QueuedTrials:
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
        with self.lock:
            runs = list(self.inflight.values())
        for info in runs:
            fresh = self.store.read_run(info.experiment, info.id)
            if fresh is not None and fresh.status in ("queued", "running"):
                with contextlib.suppress(MnistTuiError):  # it ended meanwhile
                    cancel(self.store, fresh)

    def objective(self, trial: Any) -> float:
        from mnist_tui.runs.scheduler import QueueRequest, enqueue

        search = self.spec.search
        values = {p.key: suggest(trial, p) for p in search.params}
        overrides = [*self.extra, *(f"{k}={_toml_value(v)}" for k, v in values.items())]
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
        if done.status != "completed":
            raise MnistTuiError(f"trial {trial.number} {done.status}: {done.summary.get('reason')}")
        value = (done.summary.get("best") or {}).get(search.metric)
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
                    if fresh.status in ("queued", "running") and trial.should_prune():
                        with contextlib.suppress(MnistTuiError):  # it ended meanwhile
                            cancel(self.store, fresh)
                            pruned = True
            reported = len(rows)
            stored = fresh.summary.get("status")
            held = (fresh.path / claims.CLAIM).exists()
            if stored not in ("queued", "running") and not held:
                return fresh, pruned
            if self.stop.is_set():
                raise _Stopped("the search was interrupted")
            self.keep_worker(fresh)
            if stored == "running" and fresh.status == "interrupted" and self.no_worker():
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
        if info.summary.get("status") != "queued" or now - self.last_check < 10:
            return
        self.last_check = now
        if self.no_worker() and self.options is not None:
            ensure_worker(self.store, self.options)


def write_best(
    spec: ExperimentSpec,
    params: dict[str, Any],
    extra: list[str],
    study: str,
    value: float,
    experiments_dir: Path | None,
    write_to: Path | None,
) -> Path:
    """The best trial as an experiment file that extends the searched one.

    Only the searched values are written: a validation split that the search added to
    judge trials (`extra`) is not, so the tuned experiment trains on the same images as
    the one it extends."""
    from mnist_tui.config.overrides import parse_override

    doc: dict[str, Any] = {
        "description": f"{spec.name} tuned by mnist-tui tune (study {study}, "
        f"best {spec.search.metric} {value:.4f})",
        "extends": spec.name,
    }
    for text in (f"{k}={_toml_value(v)}" for k, v in params.items()):
        key, v = parse_override(text)
        section, _, leaf = key.partition(".")
        doc.setdefault(section, {})[leaf] = v
    target = write_to or (experiments_dir or Path(spec.source).parent) / f"{study}.toml"
    header = f"# Written by mnist-tui tune from study '{study}'.\n"
    if extra:
        header += (
            f"# The trials were judged with {' '.join(extra)} (held-out training images,\n"
            f"# never the test set); this experiment trains like {spec.name}, without it.\n"
        )
    try:
        target.write_text(header + tomli_w.dumps(doc), encoding="utf-8")
    except OSError as exc:
        raise MnistTuiError(f"cannot write {target}: {exc.strerror}") from None
    return target


@dataclass
class StudySummary:
    name: str
    direction: str
    metric: str  # "value" for a study written before the metric was recorded
    completed: int
    trials: list[dict[str, Any]]
    best_value: float | None
    best_params: dict[str, Any]
    importances: dict[str, float]


def read_studies(store: RunStore) -> list[StudySummary]:
    """Every search in the run store's journal (and an older store's tune.db); empty when
    there are none, or Optuna is missing."""
    journal, db = store.root / JOURNAL, store.root / LEGACY_DB
    if not journal.is_file() and not db.is_file():
        return []
    try:
        optuna = _optuna()
    except MnistTuiError:
        return []
    storages: list[Any] = []
    if journal.is_file():
        storages.append(open_storage(optuna, store, None)[0])
    if db.is_file():
        storages.append(f"sqlite:///{db.resolve()}")
    out = []
    for storage in storages:
        for summary in optuna.get_all_study_summaries(storage=storage):
            study = optuna.load_study(study_name=summary.study_name, storage=storage)
            done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
            out.append(
                StudySummary(
                    name=summary.study_name,
                    direction=study.direction.name.lower(),
                    metric=str(study.user_attrs.get("metric", "value")),
                    completed=len(done),
                    trials=_trial_rows(study),
                    best_value=study.best_value if done else None,
                    best_params=dict(study.best_params) if done else {},
                    importances=_importances(optuna, study, len(done)),
                )
            )
    return out
