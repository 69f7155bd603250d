"""Hyper-parameter search with Optuna (optional): every trial is a stored run.

The search space is the experiment's `[search]`; the study lives in SQLite inside the
run store, so a search can be resumed (same study name) and watched from another shell.
Each epoch's validation metric is reported to Optuna and hopeless trials are pruned.
The best trial is written as a new experiment that `extends` the original.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from mnist_tui.config.spec import ExperimentSpec, SearchParam
from mnist_tui.errors import MnistTuiError
from mnist_tui.runs.store import RunStore
from mnist_tui.studies.runner import run_experiment
from mnist_tui.train.events import EpochEnded, Event


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
    study_name: str
    storage: str
    best_value: float
    best_params: dict[str, Any]
    best_run: str
    trials: list[dict[str, Any]]  # number, state, value, params, run
    importances: dict[str, float]
    written: Path | None


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
) -> TuneResult:
    optuna = _optuna()
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
        spec.with_overrides(extra)  # validate before any trial
    direction = "minimize" if search.metric.endswith("loss") else "maximize"
    name = study_name or f"{spec.name}-tune"
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", name):
        raise MnistTuiError(f"--study: '{name}' may use letters, digits, '_', '.', '-' only")
    store.root.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{(store.root / 'tune.db').resolve()}"
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        direction=direction,
        load_if_exists=True,
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
        sampler=optuna.samplers.TPESampler(seed=spec.train.seed),
    )

    def objective(trial: Any) -> float:
        values = {p.key: suggest(trial, p) for p in search.params}
        overrides = [*extra, *(f"{k}={_toml_value(v)}" for k, v in values.items())]
        trial_spec = spec.with_overrides(overrides)
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

    study.optimize(objective, n_trials=trials or search.trials)
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not completed:
        raise MnistTuiError("no trial completed; nothing to write")
    best = study.best_trial
    importances = _importances(optuna, study, len(completed)) if len(search.params) >= 2 else {}
    by_key = {p.key: p for p in search.params}
    best_params = {k: decode(by_key[k], v) if k in by_key else v for k, v in best.params.items()}
    written = write_best(spec, best_params, extra, name, best.value, experiments_dir, write_to)
    return TuneResult(
        study_name=name,
        storage=storage,
        best_value=float(best.value),
        best_params=best_params,
        best_run=str(best.user_attrs.get("run", "")),
        trials=_trial_rows(study),
        importances=importances,
        written=written,
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
    """The best trial as an experiment file that extends the searched one."""
    from mnist_tui.config.loading import parse_override

    doc: dict[str, Any] = {
        "description": f"{spec.name} tuned by mnist-tui tune (study {study}, "
        f"best {spec.search.metric} {value:.4f})",
        "extends": spec.name,
    }
    for text in [*extra, *(f"{k}={_toml_value(v)}" for k, v in params.items())]:
        key, v = parse_override(text)
        section, _, leaf = key.partition(".")
        doc.setdefault(section, {})[leaf] = v
    target = write_to or (experiments_dir or Path(spec.source).parent) / f"{study}.toml"
    header = f"# Written by mnist-tui tune from study '{study}'.\n"
    try:
        target.write_text(header + tomli_w.dumps(doc), encoding="utf-8")
    except OSError as exc:
        raise MnistTuiError(f"cannot write {target}: {exc.strerror}") from None
    return target


@dataclass
class StudySummary:
    name: str
    direction: str
    trials: list[dict[str, Any]]
    best_value: float | None
    best_params: dict[str, Any]
    importances: dict[str, float]


def read_studies(store: RunStore) -> list[StudySummary]:
    """Every search in the run store's tune.db (empty when none, or Optuna is missing)."""
    db = store.root / "tune.db"
    if not db.is_file():
        return []
    try:
        optuna = _optuna()
    except MnistTuiError:
        return []
    storage = f"sqlite:///{db.resolve()}"
    out = []
    for summary in optuna.get_all_study_summaries(storage=storage):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        out.append(
            StudySummary(
                name=summary.study_name,
                direction=study.direction.name.lower(),
                trials=_trial_rows(study),
                best_value=study.best_value if done else None,
                best_params=dict(study.best_params) if done else {},
                importances=_importances(optuna, study, len(done)),
            )
        )
    return out
