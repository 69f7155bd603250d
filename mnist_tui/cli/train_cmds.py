"""Commands that train: run, cv, tune, resume."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from mnist_tui.cli.options import (
    DataDir,
    ExpDir,
    JsonOut,
    RunsDir,
    app,
    console,
    context_stores,
    err,
    global_option,
    print_json,
)
from mnist_tui.errors import MnistTuiError
from mnist_tui.views import fmt

# ----------------------------------------------------------------------------- run


@app.command()
def run(
    ctx: typer.Context,
    experiments: Annotated[list[str], typer.Argument(help="Experiment names or TOML files.")],
    set_: Annotated[
        list[str] | None,
        typer.Option("-S", "--set", help="Override a key, e.g. -S optim.lr=0.01 (repeatable)."),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Shortcut for -S train.epochs=N.")] = None,
    seed: Annotated[int | None, typer.Option(help="Shortcut for -S train.seed=N.")] = None,
    repeats: Annotated[
        int | None,
        typer.Option(help="Train N seeds (seed, seed+1, ...); overrides \\[train] repeats."),
    ] = None,
    seeds: Annotated[
        str | None, typer.Option(help="Comma-separated seeds, e.g. 0,1,2 (a group of runs).")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    engine: Annotated[
        str, typer.Option(help="auto (CUDA graphs on a GPU), graph or eager.")
    ] = "auto",
    data_dir: DataDir = None,
    runs_dir: RunsDir = None,
    experiments_dir: ExpDir = None,
    download: Annotated[
        bool, typer.Option("--download/--no-download", help="Download missing datasets.")
    ] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    attach: Annotated[
        str | None, typer.Option(hidden=True, help="Train into this queued run directory.")
    ] = None,
    json_out: JsonOut = False,
) -> None:
    """Train experiments and store the runs; prints reported vs reproduced accuracy."""
    from mnist_tui.config.loading import load_experiment
    from mnist_tui.studies.runner import run_experiment
    from mnist_tui.views.render import RunProgress, run_summary_table

    exp_dir, store = context_stores(ctx, experiments_dir, runs_dir)
    data_dir = global_option(ctx, "data_dir", data_dir)
    if engine not in ("auto", "graph", "eager"):
        raise MnistTuiError(f"--engine: expected auto, graph or eager, got '{engine}'")
    overrides = list(set_ or [])
    if epochs is not None:
        overrides.append(f"train.epochs={epochs}")
    if seed is not None:
        overrides.append(f"train.seed={seed}")
    # validate everything before training anything
    specs = [load_experiment(e, exp_dir, overrides) for e in experiments]
    groups: list[str | None] = [None] * len(specs)
    if attach is None:
        specs, groups = _expand_seeds(specs, repeats, seeds)
    handle = None
    if attach is not None:
        handle = _attach(store, specs, attach)
    stop = _stop_on_sigterm()
    results = []
    failed = False
    for spec, group in zip(specs, groups, strict=True):
        progress = RunProgress(
            console if not json_out else Console(file=sys.stderr),
            enabled=not quiet and not json_out,
        )
        try:
            with progress:
                info = run_experiment(
                    spec,
                    store,
                    device=device,
                    data_dir=data_dir,
                    download=download,
                    on_event=progress.on_event,
                    engine=engine,
                    handle=handle,
                    should_stop=stop,
                    group=group,
                )
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/]: the run is stored as killed")
            raise typer.Exit(130) from None
        results.append((spec, info))
        if info.status != "completed":
            failed = True
            err.print(
                f"[red]{info.experiment}/{info.id} {info.status}[/]: "
                f"{escape(str(info.summary.get('reason', '')))}"
            )
    if json_out:
        print_json([{"experiment": s.name, "run": i.id, **i.summary} for s, i in results])
    elif attach is None:  # a console-started run logs its epochs, not a table
        console.print(run_summary_table(results))
    if failed:
        raise typer.Exit(1)


def _expand_seeds(
    specs: list[Any], repeats: int | None, seeds: str | None
) -> tuple[list[Any], list[str | None]]:
    """One spec per seed; the runs of one experiment in one invocation share a group."""
    import secrets

    if repeats is not None and seeds is not None:
        raise MnistTuiError("give --repeats or --seeds, not both")
    if repeats is not None and repeats < 1:
        raise MnistTuiError(f"--repeats: expected a positive integer, got {repeats}")
    explicit: list[int] | None = None
    if seeds is not None:
        try:
            explicit = [int(x) for x in seeds.split(",") if x.strip()]
        except ValueError:
            raise MnistTuiError(f"--seeds: expected integers like 0,1,2, got '{seeds}'") from None
        if not explicit or any(x < 0 for x in explicit):
            raise MnistTuiError(f"--seeds: expected non-negative integers, got '{seeds}'")
    out_specs: list[Any] = []
    out_groups: list[str | None] = []
    for spec in specs:
        n = repeats if repeats is not None else spec.train.repeats
        chosen = explicit or [spec.train.seed + i for i in range(n)]
        group = f"{spec.name}-{secrets.token_hex(3)}" if len(chosen) > 1 else None
        for s in chosen:
            out_specs.append(
                spec.with_overrides([f"train.seed={s}"]) if s != spec.train.seed else spec
            )
            out_groups.append(group)
    return out_specs, out_groups


def _attach(store: Any, specs: list[Any], run_id: str) -> Any:
    """The queued run directory a background run trains into (used by the console)."""
    if len(specs) != 1:
        raise MnistTuiError("--attach takes exactly one experiment")
    info = store.read_run(specs[0].name, run_id)
    if info is None:
        raise MnistTuiError(f"--attach: no run {specs[0].name}/{run_id} in {store.root}")
    return store.handle(info)


def _stop_on_sigterm() -> Any:
    """SIGTERM (the console's cancel) ends the run cleanly as killed."""
    import signal
    import threading

    flag = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: flag.set())
    return flag.is_set


@app.command()
def cv(
    ctx: typer.Context,
    experiment: Annotated[str, typer.Argument(help="Experiment name or TOML file.")],
    folds: Annotated[
        int | None, typer.Option(help="K (default: the experiment's \\[cv] folds, else 5).")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("-S", "--set", help="Override a key (repeatable).")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Shortcut for -S train.epochs=N.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    data_dir: DataDir = None,
    runs_dir: RunsDir = None,
    experiments_dir: ExpDir = None,
    download: Annotated[bool, typer.Option("--download/--no-download")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    json_out: JsonOut = False,
) -> None:
    """Stratified K-fold cross-validation: one stored run per fold, in one group."""
    import secrets
    import statistics

    from rich.table import Table

    from mnist_tui.config.loading import load_experiment
    from mnist_tui.studies.runner import run_experiment
    from mnist_tui.views.render import RunProgress

    exp_dir, store = context_stores(ctx, experiments_dir, runs_dir)
    overrides = list(set_ or [])
    if epochs is not None:
        overrides.append(f"train.epochs={epochs}")
    base = load_experiment(experiment, exp_dir, overrides)
    k = folds if folds is not None else base.cv.folds
    if k < 2:
        raise MnistTuiError(f"--folds: expected at least 2, got {k}")
    # validate every fold's definition before training any
    specs = [base.with_overrides([f"data.folds={k}", f"data.fold={i}"]) for i in range(k)]
    group = f"{base.name}-cv{k}-{secrets.token_hex(3)}"
    stop = _stop_on_sigterm()
    results = []
    for spec in specs:
        progress = RunProgress(
            console if not json_out else Console(file=sys.stderr),
            enabled=not quiet and not json_out,
        )
        try:
            with progress:
                info = run_experiment(
                    spec,
                    store,
                    device=device,
                    data_dir=global_option(ctx, "data_dir", data_dir),
                    download=download,
                    on_event=progress.on_event,
                    should_stop=stop,
                    group=group,
                )
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/]: the fold's run is stored as killed")
            raise typer.Exit(130) from None
        results.append(info)
        if info.status != "completed":
            raise MnistTuiError(
                f"fold {spec.data.fold} {info.status}: {info.summary.get('reason')}"
            )
    val = [r.final("val_acc") or 0.0 for r in results]
    test = [r.final("test_acc") or 0.0 for r in results]

    def ms(xs: list[float]) -> tuple[float, float]:
        return statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0

    if json_out:
        print_json(
            {
                "experiment": base.name,
                "folds": k,
                "group": group,
                "runs": [r.id for r in results],
                "val_acc": val,
                "test_acc": test,
                "val_acc_mean_std": ms(val),
                "test_acc_mean_std": ms(test),
            }
        )
        return
    t = Table(title=f"{base.name}: {k}-fold cross-validation (group {group})", title_justify="left")
    for col in ("fold", "run", "val acc", "test acc (held-out test set)"):
        t.add_column(col, justify="right")
    for i, r in enumerate(results):
        t.add_row(str(i), r.id, fmt.pct(r.final("val_acc")), fmt.pct(r.final("test_acc")))
    (vm, vs), (tm, ts) = ms(val), ms(test)
    t.add_row(
        "mean ± std", "", f"{100 * vm:.2f} ± {100 * vs:.2f}%", f"{100 * tm:.2f} ± {100 * ts:.2f}%"
    )
    console.print(t)


@app.command()
def tune(
    ctx: typer.Context,
    experiment: Annotated[str, typer.Argument(help="Experiment with a \\[search] section.")],
    trials: Annotated[
        int | None, typer.Option(help="Trials to run (default \\[search] trials).")
    ] = None,
    study: Annotated[
        str | None, typer.Option(help="Study name; the same name resumes a search.")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("-S", "--set", help="Override a key (repeatable).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Where to write the best trial's experiment.")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    data_dir: DataDir = None,
    runs_dir: RunsDir = None,
    experiments_dir: ExpDir = None,
    download: Annotated[bool, typer.Option("--download/--no-download")] = True,
    json_out: JsonOut = False,
) -> None:
    """Hyper-parameter search (Optuna) over the experiment's search table.

    Each trial is a stored run; the best trial is written as a new experiment that
    extends this one.
    """
    from rich.table import Table

    from mnist_tui.config.loading import load_experiment
    from mnist_tui.studies.tune import tune as run_tune
    from mnist_tui.views import pictures

    exp_dir, store = context_stores(ctx, experiments_dir, runs_dir)
    spec = load_experiment(experiment, exp_dir, list(set_ or []))

    def show_trial(row: dict[str, Any]) -> None:
        if json_out:
            return
        params = "  ".join(f"{k}={fmt.value(v)}" for k, v in row["params"].items())
        value = f"{row['value']:.4f}" if row.get("value") is not None else row["status"]
        console.print(
            f"trial {row['number']:>3}  run {row['run']}  {value:>9}  {params}", highlight=False
        )

    result = run_tune(
        spec,
        store,
        trials=trials,
        study_name=study,
        device=device,
        data_dir=global_option(ctx, "data_dir", data_dir),
        download=download,
        experiments_dir=exp_dir,
        write_to=out,
        on_trial=show_trial,
    )
    if json_out:
        print_json({**result.__dict__, "written": str(result.written)})
        return
    history = [
        {"epoch": t["number"] + 1, "v": t["value"]} for t in result.trials if t["value"] is not None
    ]
    console.print(
        Text.from_ansi(
            pictures.curves(
                [(spec.search.metric, history, "v")],
                title=f"search history ({spec.search.metric})",
                width=min(console.width, 100),
                height=12,
                xlabel="trial",
            )
        )
    )
    if result.importances:
        t = Table(title="parameter importances (fANOVA)", title_justify="left")
        t.add_column("parameter")
        t.add_column("importance", justify="right")
        t.add_column("")
        for k, v in result.importances.items():
            t.add_row(k, f"{v:.3f}", "█" * round(v * 30))
        console.print(t)
    console.print(
        f"best {spec.search.metric} {result.best_value:.4f} (run {result.best_run}): "
        + ", ".join(f"{k}={fmt.value(v)}" for k, v in result.best_params.items())
    )
    console.print(
        f"written: {result.written}  (study '{result.study_name}' in "
        f"{result.storage.removeprefix('sqlite:///')})"
    )


@app.command()
def resume(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Run id (prefix) or recency (1 = newest).")],
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    data_dir: DataDir = None,
    runs_dir: RunsDir = None,
    download: Annotated[bool, typer.Option("--download/--no-download")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Continue an interrupted, killed or failed run from its last checkpoint."""
    from mnist_tui.config.loading import load_spec_file
    from mnist_tui.studies.runner import resume_run
    from mnist_tui.views.render import RunProgress, run_summary_table

    _, store = context_stores(ctx, None, runs_dir)
    info = store.resolve(ref)
    progress = RunProgress(console, enabled=not quiet)
    try:
        with progress:
            done = resume_run(
                info,
                store,
                device=device,
                data_dir=global_option(ctx, "data_dir", data_dir),
                download=download,
                on_event=progress.on_event,
                should_stop=_stop_on_sigterm(),
            )
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]: the run is stored as killed")
        raise typer.Exit(130) from None
    console.print(run_summary_table([(load_spec_file(done.spec_path()), done)]))
    if done.status != "completed":
        raise typer.Exit(1)
