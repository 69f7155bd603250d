"""Commands that train in this process: run, cv, tune, resume (and the worker's train-run)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from mnist_tui.cli.options import (
    DataDir,
    Device,
    Download,
    Epochs,
    ExpDir,
    JsonOut,
    Overrides,
    Quiet,
    Repeats,
    RunsDir,
    Seed,
    Seeds,
    Threads,
    app,
    console,
    context_stores,
    err,
    global_option,
    overrides_with,
    print_json,
)
from mnist_tui.errors import MnistTuiError
from mnist_tui.status import RunStatus
from mnist_tui.views import fmt
from mnist_tui.views.safe_console import SafeConsole

if TYPE_CHECKING:  # the core is imported inside commands, so --help stays fast
    from contextlib import AbstractContextManager

    from mnist_tui.runs.record import RunInfo
    from mnist_tui.studies.batch import EventSink, PlannedRun


def progress_factory(
    quiet: bool, json_out: bool
) -> Callable[[PlannedRun], AbstractContextManager[EventSink]]:
    """Progress bars (or none) for each planned run, as a context giving its event sink."""
    from mnist_tui.views.render import RunProgress

    @contextmanager
    def progress(plan: PlannedRun) -> Iterator[EventSink]:
        bars = RunProgress(
            console if not json_out else SafeConsole(file=sys.stderr),
            enabled=not quiet and not json_out,
        )
        with bars:
            yield bars.on_event

    return progress


def report_failure(info: RunInfo) -> None:
    err.print(f"[red]{info.experiment}/{info.id} {info.status}[/]: {escape(info.reason)}")


# ----------------------------------------------------------------------------- run


@app.command()
def run(
    ctx: typer.Context,
    experiments: Annotated[list[str], typer.Argument(help="Experiment names or TOML files.")],
    set_: Overrides = None,
    epochs: Epochs = None,
    seed: Seed = None,
    repeats: Repeats = None,
    seeds: Seeds = None,
    device: Device = "auto",
    engine: Annotated[
        str, typer.Option(metavar="ENGINE", help="auto (CUDA graphs on a GPU), graph or eager.")
    ] = "auto",
    threads: Threads = None,
    data_dir: DataDir = None,
    runs_dir: RunsDir = None,
    experiments_dir: ExpDir = None,
    download: Download = True,
    quiet: Quiet = False,
    json_out: JsonOut = False,
) -> None:
    """Train experiments in this terminal and store the runs; prints reported vs reproduced."""
    from mnist_tui.config.loading import load_experiment
    from mnist_tui.studies.batch import parse_seeds, plan_seeds, train_planned
    from mnist_tui.studies.run_options import RunOptions
    from mnist_tui.views.render import run_summary_table

    exp_dir, store = context_stores(ctx, experiments_dir, runs_dir)
    options = RunOptions(
        device, engine, global_option(ctx, "data_dir", data_dir), download, threads
    )
    overrides = overrides_with(set_, epochs, seed)
    # validate everything before training anything
    specs = [load_experiment(e, exp_dir, overrides) for e in experiments]
    planned = plan_seeds(specs, overrides, repeats, parse_seeds(seeds))
    results = []
    try:
        for plan, info in train_planned(planned, store, options, progress_factory(quiet, json_out)):
            results.append((plan.spec, info))
            if info.status != RunStatus.COMPLETED:
                report_failure(info)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]: the run is stored as killed")
        raise typer.Exit(130) from None
    if json_out:
        print_json([{"experiment": s.name, "run": i.id, **i.summary} for s, i in results])
    else:
        console.print(run_summary_table(results))
        print_group_summaries([i for _, i in results])
        from mnist_tui.studies.diagnose import chance_note

        for spec, info in results:  # a result at chance level says why, when known
            note = chance_note(spec, info)
            if note:
                err.print(f"[yellow]note:[/] {info.id}: {escape(note)}", highlight=False)
    if any(i.status != RunStatus.COMPLETED for _, i in results):
        raise typer.Exit(1)


def print_group_summaries(infos: list[RunInfo]) -> None:
    """A group of seeds ends with its mean ± std, the figure a reader compares."""
    from mnist_tui.studies.batch import group_result

    groups: dict[str, list[RunInfo]] = {}
    for info in infos:
        if info.group:
            groups.setdefault(info.group, []).append(info)
    for group, members in groups.items():
        result = group_result(members)
        if len(result.test_acc) < 2:
            continue
        t = result.test
        runs = f"{len(result.test_acc)} of {fmt.plural(len(members), 'run')} completed"
        console.print(
            f"group {group}: test accuracy {100 * t.mean:.2f} ± {100 * t.std:.2f}% "
            f"(mean ± std over seeds, {runs})",
            highlight=False,
        )


@app.command("train-run", hidden=True)
def train_run(
    run_dir: Annotated[Path, typer.Argument(help="A queued run directory.")],
    device: Device = "auto",
    threads: Threads = None,
    data_dir: DataDir = None,
) -> None:
    """Train a queued run from its own spec.toml; the worker starts this, one per run."""
    import os

    from mnist_tui.config.loading import load_spec_file
    from mnist_tui.errors import SpecError, StoreError
    from mnist_tui.runs.scheduler import cancel_requested
    from mnist_tui.runs.store import RunStore
    from mnist_tui.studies.batch import stop_on_sigterm
    from mnist_tui.studies.run_options import RunOptions
    from mnist_tui.studies.runner import run_experiment

    run_dir = run_dir.resolve()
    store = RunStore(run_dir.parent.parent)
    info = store.read_run(run_dir.parent.name, run_dir.name)
    if info is None:
        raise StoreError(f"no readable run in {run_dir}")
    handle = store.handle(info)
    try:
        spec = load_spec_file(info.spec_path())  # never the experiment file: it may have changed
    except SpecError as exc:
        handle.update(status=RunStatus.FAILED, reason=f"its spec.toml does not load: {exc}")
        raise
    sigterm = stop_on_sigterm()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    label = f"cuda:{visible}" if device.startswith("cuda") and visible.isdigit() else None
    # a Ray task names the node it runs on (runs/ray_tasks.py); views show it, and the
    # host is this node's, so only this node judges the pid
    node, node_id = os.environ.get("MNIST_TUI_NODE"), os.environ.get("MNIST_TUI_NODE_ID")
    if node:
        import socket

        handle.update(host=socket.gethostname(), node=node, node_id=node_id)
    from rich.console import Console

    from mnist_tui.views.render import RunProgress

    # the log gets a line per epoch and per step report (`logs` shows them, `--steps` all)
    lines = RunProgress(Console(file=sys.stdout, soft_wrap=True), enabled=False, steps=True)
    options = RunOptions(
        device=device,
        data_dir=data_dir,
        threads=threads,
        device_label=label,
        env_extra={
            "slot": os.environ.get("MNIST_TUI_SLOT"),
            "cuda_visible_devices": visible or None,
            **({"node": node, "node_id": node_id} if node else {}),
        },
    )
    done = run_experiment(
        spec,
        store,
        options,
        handle=handle,
        on_event=lines.on_event,
        should_stop=lambda: sigterm() or cancel_requested(run_dir),
    )
    print(f"{done.experiment}/{done.id} {done.status}", flush=True)
    if done.status != RunStatus.COMPLETED:
        raise typer.Exit(1)


@app.command()
def cv(
    ctx: typer.Context,
    experiment: Annotated[str, typer.Argument(help="Experiment name or TOML file.")],
    folds: Annotated[
        int | None,
        typer.Option(metavar="K", help="K (default: the experiment's \\[cv] folds, else 5)."),
    ] = None,
    set_: Overrides = None,
    epochs: Epochs = None,
    seed: Seed = None,
    device: Device = "auto",
    threads: Threads = None,
    data_dir: DataDir = None,
    runs_dir: RunsDir = None,
    experiments_dir: ExpDir = None,
    download: Download = True,
    quiet: Quiet = False,
    json_out: JsonOut = False,
) -> None:
    """Stratified K-fold cross-validation: one stored run per fold, in one group."""
    from rich.table import Table

    from mnist_tui.config.loading import load_experiment
    from mnist_tui.studies.batch import group_result, plan_folds, train_planned
    from mnist_tui.studies.run_options import RunOptions

    exp_dir, store = context_stores(ctx, experiments_dir, runs_dir)
    options = RunOptions(
        device, "auto", global_option(ctx, "data_dir", data_dir), download, threads
    )
    overrides = overrides_with(set_, epochs, seed)
    base = load_experiment(experiment, exp_dir, overrides)
    planned = plan_folds(base, folds, overrides)
    k, group = len(planned), planned[0].group
    results = []
    try:
        for plan, info in train_planned(
            planned, store, options, progress_factory(quiet, json_out), stop_on_failure=True
        ):
            results.append(info)
            if info.status != RunStatus.COMPLETED:
                raise MnistTuiError(f"fold {plan.extra['fold']} {info.status}: {info.reason}")
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]: the fold's run is stored as killed")
        raise typer.Exit(130) from None
    result = group_result(results)
    if json_out:
        print_json(
            {
                "experiment": base.name,
                "folds": k,
                "group": group,
                "runs": result.runs,
                "val_acc": result.val_acc,
                "test_acc": result.test_acc,
                "val_acc_mean_std": (result.val.mean, result.val.std),
                "test_acc_mean_std": (result.test.mean, result.test.std),
            }
        )
        return
    t = Table(title=f"{base.name}: {k}-fold cross-validation (group {group})", title_justify="left")
    for col in ("fold", "run", "val acc", "test acc (held-out test set)"):
        t.add_column(col, justify="right")
    for i, r in enumerate(results):
        t.add_row(str(i), r.id, fmt.pct(r.final("val_acc")), fmt.pct(r.final("test_acc")))
    v, te = result.val, result.test
    t.add_row(
        "mean ± std",
        "",
        f"{100 * v.mean:.2f} ± {100 * v.std:.2f}%",
        f"{100 * te.mean:.2f} ± {100 * te.std:.2f}%",
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
    set_: Overrides = None,
    epochs: Epochs = None,
    seed: Seed = None,
    out: Annotated[
        Path | None, typer.Option(help="Where to write the best trial's experiment.")
    ] = None,
    device: Device = "auto",
    threads: Threads = None,
    parallel: Annotated[
        int | None,
        typer.Option(
            metavar="K",
            min=1,
            help="Queue trials for the worker, K at a time (default: one by one, here).",
        ),
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="Where the study lives: a database URL or a journal file "
            "(default: tune.journal in the run store).",
        ),
    ] = None,
    backend: Annotated[
        str,
        typer.Option(metavar="local|ray", help="With --parallel: the worker's backend."),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(metavar="HOST:PORT", help="With --backend ray: the Ray cluster."),
    ] = None,
    data_dir: DataDir = None,
    runs_dir: RunsDir = None,
    experiments_dir: ExpDir = None,
    download: Download = True,
    quiet: Quiet = False,
    json_out: JsonOut = False,
) -> None:
    """Hyper-parameter search (Optuna) over the experiment's search table.

    Each trial is a stored run; the best trial is written as a new experiment that
    extends this one. With --parallel K, K trials train at once through the worker
    (local slots, or a Ray cluster with --backend ray), all on one study.
    """
    from mnist_tui.config.loading import load_experiment
    from mnist_tui.studies.tune import tune as run_tune
    from mnist_tui.views import render, search_tables

    exp_dir, store = context_stores(ctx, experiments_dir, runs_dir)
    spec = load_experiment(experiment, exp_dir, overrides_with(set_, epochs, seed))
    if threads:  # trials trained here (without --parallel) use this many CPU threads
        import torch

        torch.set_num_threads(threads)

    def show_trial(row: dict[str, Any]) -> None:
        if json_out or quiet:
            return
        state = {"state": row.get("status")} if row.get("value") is None else {}
        console.print(
            search_tables.trial_line({**row, **state}, spec.search.metric), highlight=False
        )

    worker = None
    if parallel is not None or backend != "local" or address:
        from mnist_tui.runs import backends
        from mnist_tui.runs.worker import WorkerOptions

        backends.backend(backend)  # a wrong name first, with the names there are
        if parallel is None:
            raise MnistTuiError("--backend and --address go with --parallel K")
        backends.check(backend, address)
        worker = WorkerOptions(
            data_dir=global_option(ctx, "data_dir", data_dir),
            backend=backend,
            address=address,
            threads=threads,
        )
    try:
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
            parallel=parallel,
            storage=storage,
            worker=worker,
        )
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]: the search stopped; its trials in flight are killed")
        raise typer.Exit(130) from None
    for note in result.notes:
        err.print(f"note: {escape(note)}", highlight=False)
    if json_out:
        print_json({**result.__dict__, "written": str(result.written)})
        return
    for part in render.tune_summary(
        result.trials,
        result.importances,
        spec.search.metric,
        min(console.width, 100),
        result.completed,
    ):
        console.print(part)
    metric = spec.search.metric
    console.print(
        f"best trial by {metric} (at each run's best epoch): "
        f"{search_tables.metric_text(metric, result.best_value)} (run {result.best_run}): "
        + ", ".join(f"{k}={fmt.value(v)}" for k, v in result.best_params.items()),
        highlight=False,
    )
    console.print(
        f"written: {result.written}  (study '{result.study_name}' in "
        f"{result.storage.removeprefix('sqlite:///')})"
    )


@app.command()
def resume(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Run id (prefix) or recency (1 = newest).")],
    device: Device = "auto",
    threads: Threads = None,
    data_dir: DataDir = None,
    runs_dir: RunsDir = None,
    download: Download = True,
    quiet: Quiet = False,
) -> None:
    """Continue an interrupted, killed or failed run from its last checkpoint."""
    from mnist_tui.config.loading import load_spec_file
    from mnist_tui.studies.batch import PlannedRun, stop_on_sigterm
    from mnist_tui.studies.run_options import RunOptions
    from mnist_tui.studies.runner import check_resumable, resume_run
    from mnist_tui.views.render import run_summary_table

    _, store = context_stores(ctx, None, runs_dir)
    info = store.resolve(ref)
    spec, _ = check_resumable(info)
    try:
        with progress_factory(quiet, False)(PlannedRun(spec)) as sink:
            done = resume_run(
                info,
                store,
                RunOptions(
                    device=device,
                    data_dir=global_option(ctx, "data_dir", data_dir),
                    download=download,
                    threads=threads,
                ),
                on_event=sink,
                should_stop=stop_on_sigterm(),
            )
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]: the run is stored as killed")
        raise typer.Exit(130) from None
    console.print(run_summary_table([(load_spec_file(done.spec_path()), done)]))
    if done.status != RunStatus.COMPLETED:
        raise typer.Exit(1)
