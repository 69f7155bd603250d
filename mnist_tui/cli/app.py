"""The command line: `mnist-tui run|list|runs|show|diff`, and the TUI with no command.

A thin face over the core: it parses options, calls runner/catalog/diff, and prints.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from mnist_tui.errors import MnistTuiError
from mnist_tui.views import fmt

app = typer.Typer(
    name="mnist-tui",
    help="Terminal experiment console for MNIST / Fashion-MNIST studies. "
    "With no command, opens the interactive console.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
console = Console()
err = Console(stderr=True)

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Dataset root (torchvision layout). Env: MNIST_TUI_DATA.",
        show_default=False,
    ),
]
RunsDir = Annotated[
    Path | None,
    typer.Option(
        "--runs-dir", help="Run store. Env: MNIST_TUI_RUNS. Default: ./runs", show_default=False
    ),
]
ExpDir = Annotated[
    Path | None,
    typer.Option(
        "--experiments-dir",
        help="Experiment definitions. Env: MNIST_TUI_EXPERIMENTS.",
        show_default=False,
    ),
]
JsonOut = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _dirs(experiments_dir: Path | None, runs_dir: Path | None) -> tuple[Path, Any]:
    from mnist_tui.config.loading import default_experiments_dir
    from mnist_tui.runs.store import RunStore, default_runs_dir

    return experiments_dir or default_experiments_dir(), RunStore(default_runs_dir(runs_dir))


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    data_dir: DataDir = None,
    runs_dir: RunsDir = None,
    experiments_dir: ExpDir = None,
    device: Annotated[str, typer.Option(help="Device for queued runs.")] = "auto",
    concurrency: Annotated[
        int, typer.Option(help="Runs trained at once by the console (0 pauses the queue).")
    ] = 1,
) -> None:
    if ctx.invoked_subcommand is not None:
        # the global directory options also apply to subcommands that leave them unset
        ctx.obj = {"data_dir": data_dir, "runs_dir": runs_dir, "experiments_dir": experiments_dir}
        return
    if not sys.stdin.isatty() or not sys.stdout.isatty():
        raise MnistTuiError(
            "the console needs a terminal; for scripts use the commands (mnist-tui --help)"
        )
    from mnist_tui.tui.app import run_app

    run_app(
        data_dir=data_dir,
        runs_dir=runs_dir,
        experiments_dir=experiments_dir,
        device=device,
        concurrency=concurrency,
    )


def _global(ctx: typer.Context, key: str, value: Any) -> Any:
    if value is not None:
        return value
    return (ctx.obj or {}).get(key) if ctx.obj else None


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

    exp_dir, store = _dirs(
        _global(ctx, "experiments_dir", experiments_dir), _global(ctx, "runs_dir", runs_dir)
    )
    data_dir = _global(ctx, "data_dir", data_dir)
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
        _print_json([{"experiment": s.name, "run": i.id, **i.summary} for s, i in results])
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


# ----------------------------------------------------------------------------- list / runs


@app.command("list")
def list_(
    ctx: typer.Context,
    runs_dir: RunsDir = None,
    experiments_dir: ExpDir = None,
    json_out: JsonOut = False,
) -> None:
    """Experiments: dataset, model, parameters, epochs, reported and best reproduced accuracy."""
    from mnist_tui.studies.catalog import experiment_rows
    from mnist_tui.views.render import experiments_table

    exp_dir, store = _dirs(
        _global(ctx, "experiments_dir", experiments_dir), _global(ctx, "runs_dir", runs_dir)
    )
    rows = experiment_rows(exp_dir, store)
    if json_out:
        _print_json(
            [
                {
                    "name": r.name,
                    "error": r.error,
                    "dataset": r.spec.data.dataset if r.spec else None,
                    "model": r.spec.model.name if r.spec else None,
                    "parameters": r.parameters,
                    "epochs": r.spec.train.epochs if r.spec else None,
                    "reported_test_acc": r.spec.reference.test_accuracy if r.spec else None,
                    "best_test_acc": r.best_run.final("test_acc") if r.best_run else None,
                    "best_run": r.best_run.id if r.best_run else None,
                    "runs": len(r.runs),
                }
                for r in rows
            ]
        )
        return
    console.print(experiments_table(rows))
    broken = [r for r in rows if r.error]
    for r in broken:
        err.print(f"[red]{r.name}[/]: {escape(r.error or '')}")
    if broken:
        raise typer.Exit(2)


@app.command()
def runs(
    ctx: typer.Context,
    experiment: Annotated[str | None, typer.Argument(help="Only this experiment's runs.")] = None,
    runs_dir: RunsDir = None,
    limit: Annotated[int, typer.Option(help="Show at most N runs (0 = all).")] = 0,
    json_out: JsonOut = False,
) -> None:
    """Stored runs, newest first (ids accept a unique prefix; 1 = newest)."""
    from mnist_tui.views.render import runs_table

    _, store = _dirs(None, _global(ctx, "runs_dir", runs_dir))
    infos = store.runs(experiment)
    if limit:
        infos = infos[:limit]
    if json_out:
        _print_json(
            [
                {**r.summary, "id": r.id, "experiment": r.experiment, "status": r.status}
                for r in infos
            ]
        )
        return
    console.print(runs_table(infos))
    for path in store.damaged():
        err.print(f"[yellow]skipped damaged run directory[/] {path}")


# ----------------------------------------------------------------------------- show / diff


@app.command()
def show(
    ctx: typer.Context,
    ref: Annotated[
        str, typer.Argument(help="Experiment name, TOML file, run id or recency (1 = newest).")
    ],
    runs_dir: RunsDir = None,
    experiments_dir: ExpDir = None,
    json_out: JsonOut = False,
) -> None:
    """An experiment's resolved definition and runs, or a run's epochs, classes and confusion."""
    from mnist_tui.studies.catalog import resolve_subject
    from mnist_tui.views.render import show_subject

    exp_dir, store = _dirs(
        _global(ctx, "experiments_dir", experiments_dir), _global(ctx, "runs_dir", runs_dir)
    )
    subject = resolve_subject(ref, exp_dir, store)
    if json_out:
        out: dict[str, Any] = {
            "kind": subject.kind,
            "label": subject.label,
            "spec": subject.spec.to_dict(),
        }
        if subject.run is not None:
            out["summary"] = {**subject.run.summary, "status": subject.run.status}
            out["metrics"] = subject.run.metrics()
        else:
            out["inherited"] = sorted(subject.spec.inherited)
            out["runs"] = [{**r.summary, "status": r.status} for r in store.runs(subject.spec.name)]
        _print_json(out)
        return
    show_subject(console, subject, store)


@app.command()
def diff(
    ctx: typer.Context,
    a: Annotated[str, typer.Argument(help="Experiment or run.")],
    b: Annotated[str, typer.Argument(help="Experiment or run.")],
    all_: Annotated[bool, typer.Option("--all", help="Show unchanged keys too.")] = False,
    runs_dir: RunsDir = None,
    experiments_dir: ExpDir = None,
    json_out: JsonOut = False,
    md: Annotated[bool, typer.Option("--md", help="Markdown output.")] = False,
) -> None:
    """What differs between two experiments or runs: definition keys and results."""
    from mnist_tui.studies.catalog import resolve_subject
    from mnist_tui.studies.diff import MISSING, diff_definitions, result_deltas
    from mnist_tui.views.render import diff_markdown, print_diff

    exp_dir, store = _dirs(
        _global(ctx, "experiments_dir", experiments_dir), _global(ctx, "runs_dir", runs_dir)
    )
    sa, sb = resolve_subject(a, exp_dir, store), resolve_subject(b, exp_dir, store)
    changes = diff_definitions(sa.spec.definition(), sb.spec.definition(), include_same=all_)
    deltas = result_deltas(sa.results(), sb.results())
    if json_out:
        _print_json(
            {
                "a": sa.label,
                "b": sb.label,
                "definition": [
                    {
                        "key": c.key,
                        "a": None if c.a is MISSING else c.a,
                        "b": None if c.b is MISSING else c.b,
                        "changed": c.changed,
                    }
                    for c in changes
                ],
                "results": [
                    {"figure": d.label, "a": d.a, "b": d.b, "delta": d.delta} for d in deltas
                ],
            }
        )
        return
    if md:
        sys.stdout.write(diff_markdown(sa, sb, changes, deltas))
        return
    print_diff(console, sa, sb, changes, deltas)


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
    from mnist_tui.views import fmt
    from mnist_tui.views.render import RunProgress

    exp_dir, store = _dirs(
        _global(ctx, "experiments_dir", experiments_dir), _global(ctx, "runs_dir", runs_dir)
    )
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
                    data_dir=_global(ctx, "data_dir", data_dir),
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
        _print_json(
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
def plot(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Run id (prefix) or recency (1 = newest).")],
    samples: Annotated[int, typer.Option(help="Test images to draw (0: none).")] = 12,
    mistakes: Annotated[bool, typer.Option(help="Draw only misclassified images.")] = False,
    seed: Annotated[int, typer.Option(help="Which images are drawn.")] = 0,
    data_dir: DataDir = None,
    runs_dir: RunsDir = None,
    download: Annotated[bool, typer.Option("--download/--no-download")] = True,
    png: Annotated[
        Path | None, typer.Option(help="Also save the pictures as a PNG (needs matplotlib).")
    ] = None,
) -> None:
    """Pictures of a run in half blocks: curves, per-class bars, confusion, test images.

    Test images carry predicted and true labels, mistakes marked.
    """
    from rich.text import Text

    from mnist_tui.studies.predictions import predict_samples
    from mnist_tui.views import pictures

    _, store = _dirs(None, _global(ctx, "runs_dir", runs_dir))
    run = store.resolve(ref)
    rows = run.metrics()
    width = max(40, min(console.width, 160) // 2 - 1)
    loss = pictures.curves(
        [("train", rows, "train_loss"), ("val", rows, "val_loss"), ("test", rows, "test_loss")],
        title=f"{run.experiment}/{run.id}: loss",
        width=width,
        height=16,
    )
    acc = pictures.curves(
        [("train", rows, "train_acc"), ("val", rows, "val_acc"), ("test", rows, "test_acc")],
        title="accuracy %",
        width=width,
        height=16,
        percent=True,
    )
    from rich.columns import Columns

    console.print(Columns([Text.from_ansi(loss), Text.from_ansi(acc)]))
    s = run.summary
    classes = s.get("classes") or [str(i) for i in range(10)]
    if s.get("per_class_acc"):
        console.print(pictures.class_bars(classes, s["per_class_acc"]), highlight=False)
    if s.get("confusion"):
        console.print(pictures.confusion_heatmap(classes, s["confusion"]))
    picked = None
    if samples > 0:
        picked = predict_samples(
            run,
            count=samples,
            mistakes_only=mistakes,
            seed=seed,
            data_dir=_global(ctx, "data_dir", data_dir),
            download=download,
        )
        console.print(
            f"test images ({'mistakes only, ' if mistakes else ''}best checkpoint, "
            f"test accuracy {fmt.pct(picked.accuracy)}):"
        )
        console.print(
            pictures.sample_grid(
                picked.images,
                picked.predicted,
                picked.true,
                picked.classes,
                per_row=max(1, console.width // 31),
                color=console.is_terminal and console.color_system is not None,
            )
        )
    if png is not None:
        from mnist_tui.views.png import save_run_png

        save_run_png(png, f"{run.experiment}/{run.id}", rows, s, picked)
        console.print(f"saved {png}")


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
    from mnist_tui.views import fmt, pictures

    exp_dir, store = _dirs(
        _global(ctx, "experiments_dir", experiments_dir), _global(ctx, "runs_dir", runs_dir)
    )
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
        data_dir=_global(ctx, "data_dir", data_dir),
        download=download,
        experiments_dir=exp_dir,
        write_to=out,
        on_trial=show_trial,
    )
    if json_out:
        _print_json({**result.__dict__, "written": str(result.written)})
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

    _, store = _dirs(None, _global(ctx, "runs_dir", runs_dir))
    info = store.resolve(ref)
    progress = RunProgress(console, enabled=not quiet)
    try:
        with progress:
            done = resume_run(
                info,
                store,
                device=device,
                data_dir=_global(ctx, "data_dir", data_dir),
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


@app.command()
def report(
    ctx: typer.Context,
    experiments: Annotated[
        list[str] | None, typer.Argument(help="Experiments to include (default: all).")
    ] = None,
    runs_dir: RunsDir = None,
    experiments_dir: ExpDir = None,
    md: Annotated[bool, typer.Option("--md", help="Markdown table.")] = False,
    json_out: JsonOut = False,
) -> None:
    """Reported vs reproduced for each experiment: mean ± std over seeds, Δ in pp."""
    from mnist_tui.config.loading import find_experiment
    from mnist_tui.studies.report import build_report, markdown
    from mnist_tui.views.render import report_table

    exp_dir, store = _dirs(
        _global(ctx, "experiments_dir", experiments_dir), _global(ctx, "runs_dir", runs_dir)
    )
    for name in experiments or []:
        find_experiment(name, exp_dir)  # a typo is an error, not an empty table
    rows = build_report(exp_dir, store, experiments or None)
    if json_out:
        _print_json([r.to_json() for r in rows])
    elif md:
        sys.stdout.write(markdown(rows))
    else:
        console.print(report_table(rows))


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors print one clear message and exit non-zero."""
    try:
        app(args=argv, prog_name="mnist-tui")
    except MnistTuiError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise SystemExit(exc.exit_code) from None


if __name__ == "__main__":  # pragma: no cover
    main()
