"""Hyper-parameter search with Optuna (optional): every trial is a stored run.

The search space is the experiment's `[search]`; the study lives in an Optuna journal
file inside the run store (`tune.journal`), or in a database server (`--storage URL`),
so a search can be resumed (same study name), watched from another shell and run by
several processes at once. Each epoch's validation metric is reported to Optuna and
hopeless trials are pruned. The best trial is written as a new experiment that
`extends` the original.

Two ways to run trials:
- in this process, one after another (the default);
- through the scheduler (`parallel=K`, studies/tune_parallel.py): K threads, each
  asking Optuna for a trial, queueing it as a run and following that run's metrics.jsonl
  until it ends; the worker (local slots or the Ray backend) trains up to K of them at
  once in its own processes.
  Threads are enough here because they only wait on files: the training happens in the
  worker's children, so the overlap is real, while one study object, one storage handle
  and Optuna's own `n_jobs` bookkeeping (trial counting, constant-liar TPE) are shared.
  Pruning writes the run's cancel flag, which the trainer honours on any node.
SQLite, the old default, locks up under parallel writers (optuna #820); a store's old
`tune.db` is still read by `read_studies`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomli_w

from mnist_tui.config.overrides import with_overrides
from mnist_tui.config.spec import ExperimentSpec
from mnist_tui.errors import MnistTuiError
from mnist_tui.runs.store import RunStore
from mnist_tui.status import RunStatus
from mnist_tui.studies.run_options import RunOptions
from mnist_tui.studies.search_space import decode, suggest, toml_value
from mnist_tui.studies.tune_parallel import QueuedTrials
from mnist_tui.train.events import EpochEnded, Event

if TYPE_CHECKING:
    from mnist_tui.runs.worker import WorkerOptions

JOURNAL = "tune.journal"
LEGACY_DB = "tune.db"


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
    from mnist_tui.studies.journal import open_journal

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MnistTuiError(f"--storage: cannot use {path}: {exc.strerror}") from None
    return open_journal(optuna, path), str(path)  # a damaged journal: a clear error


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
    options = RunOptions(device=device, data_dir=data_dir, download=download)

    def objective(trial: Any) -> float:
        from mnist_tui.studies.runner import run_experiment

        values = {p.key: suggest(trial, p) for p in search.params}
        overrides = [*extra, *(f"{k}={toml_value(v)}" for k, v in values.items())]
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
            options,
            group=name,
            on_event=events,
            should_stop=lambda: pruned["flag"],
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
        if info.status != RunStatus.COMPLETED:
            raise MnistTuiError(f"trial {trial.number} {info.status}: {info.reason}")
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
        queued = QueuedTrials(optuna, spec, store, extra, name, device, data_dir, on_trial)
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
    for text in (f"{k}={toml_value(v)}" for k, v in params.items()):
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
