"""Read-only commands: list, runs, show, diff, plot, report. None imports torch
unless it must (plot's sample pictures)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.text import Text

from mnist_tui.cli.options import (
    DataDir,
    Download,
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
from mnist_tui.cli.stats_cmds import Columns, Where, column_keys
from mnist_tui.views import fmt

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
    from mnist_tui.views import run_tables
    from mnist_tui.views.render import print_table

    exp_dir, store = context_stores(ctx, experiments_dir, runs_dir)
    rows = experiment_rows(exp_dir, store, digest=True)
    if json_out:
        print_json(
            [
                {
                    "name": r.name,
                    "origin": r.origin,
                    "shadows": r.shadows,
                    "error": r.error,
                    "dataset": r.spec.data.dataset if r.spec else None,
                    "model": r.spec.model.name if r.spec else None,
                    "parameters": r.parameters,
                    "epochs": r.spec.train.epochs if r.spec else None,
                    "reported_test_acc": r.spec.reference.test_accuracy if r.spec else None,
                    "best_test_acc": r.best_run.final("test_acc") if r.best_run else None,
                    "best_run": r.best_run.id if r.best_run else None,
                    "runs": r.count,
                }
                for r in rows
            ]
        )
        return
    print_table(console, run_tables.experiments_table(rows))  # or what to do when there are none
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
    limit: Annotated[int, typer.Option("--limit", "-n", help="Show the newest N (0 = all).")] = 20,
    all_: Annotated[bool, typer.Option("--all", help="Show every matching run.")] = False,
    status: Annotated[
        list[str] | None,
        typer.Option(help="Only runs with this status (repeat or comma-separate)."),
    ] = None,
    experiments: Annotated[
        list[str] | None,
        typer.Option("--experiment", "-e", help="Only this experiment's runs (repeatable)."),
    ] = None,
    group: Annotated[str | None, typer.Option(help="Only the runs of this group.")] = None,
    tag: Annotated[
        list[str] | None, typer.Option(help="Only runs with this tag (repeat: all of them).")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Only runs created since: 2d, 3h, 45m, 1w, or a date (2025-01-31)."),
    ] = None,
    archived: Annotated[
        bool, typer.Option("--archived", help="Only archived runs (hidden otherwise).")
    ] = False,
    where: Where = None,
    columns: Columns = None,
    json_out: JsonOut = False,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Check every run's files first (edits made by hand; a store of many "
            "thousand runs does this itself every few minutes).",
        ),
    ] = False,
) -> None:
    """Stored runs, newest first: the newest 20 unless --all or --limit N.

    Ids accept a unique prefix; 1 = newest.
    """
    from mnist_tui.runs.index import RunQuery, parse_since
    from mnist_tui.runs.manage import check_experiments, check_statuses
    from mnist_tui.views.render import runs_table

    exp_dir, store = context_stores(ctx, None, runs_dir)
    index = store.index
    if check:
        index.sync()
    else:
        index.refresh()
    names = check_experiments([n for n in [experiment, *(experiments or [])] if n], exp_dir, store)
    query = RunQuery(
        experiments=tuple(names),
        statuses=check_statuses(status or []),
        group=group,
        tags=tuple(tag or ()),
        since=parse_since(since) if since else None,
        archived=archived,
    )
    keys = column_keys(columns, results=True)
    shown = None if all_ or limit <= 0 else limit
    if where:
        from mnist_tui.studies.where import filter_runs, parse_where

        parse_where(where)  # a typo fails before the store is read
        matching = filter_runs(index.runs(query, synced=True, brief=True), where)
        total = len(matching)
        infos = matching[:shown]
        if json_out:
            infos = [r.full() for r in infos]
    else:
        total = index.count(query)
        infos = index.runs(query, limit=shown, synced=True, brief=not json_out)
    out = err if json_out else console
    if keys:  # (the expression module: only where columns or --where need it)
        from mnist_tui.studies.where import run_row
    if json_out:
        print_json(
            [
                {
                    **r.summary,
                    "id": r.id,
                    "experiment": r.experiment,
                    "status": r.status,
                    "tags": r.tags,
                    "note": r.note,
                    "archived": r.archived,
                    "damaged": r.damaged,
                    **({"columns": {k: run_row(r).get(k) for k in keys}} if keys else {}),
                }
                for r in infos
            ]
        )
    elif keys:
        from mnist_tui.views import run_tables
        from mnist_tui.views.render import rich_table
        from mnist_tui.views.variant_tables import run_config_columns

        data = run_config_columns(run_tables.runs_table(infos), infos, keys, run_row)
        console.print(rich_table(data))
    else:
        console.print(runs_table(infos))
    if total > len(infos):
        out.print(
            f"[dim]the newest {len(infos)} of {total:,} runs; --all shows every one, "
            f"--limit N the newest N[/]",
            highlight=False,
        )
    if not archived:
        hidden = index.count(RunQuery(**{**query.__dict__, "archived": True}))
        if hidden:
            out.print(f"[dim]{hidden:,} archived runs hidden (--archived shows them)[/]")
    for r in infos:
        if r.damaged:
            err.print(
                f"[yellow]damaged run[/] {r.experiment}/{r.id}: {escape(r.damaged)}",
                highlight=False,
            )


# ----------------------------------------------------------------------------- show / diff


@app.command()
def show(
    ctx: typer.Context,
    ref: Annotated[
        str,
        typer.Argument(
            help="Experiment name, TOML file, run id or recency (1 = newest), a variant "
            "(EXP@id, EXP[key=value,...]) or a group id."
        ),
    ],
    runs_dir: RunsDir = None,
    experiments_dir: ExpDir = None,
    json_out: JsonOut = False,
) -> None:
    """An experiment's resolved definition and runs, a run's epochs, classes and confusion,
    or a variant's or group's runs with mean ± std."""
    from mnist_tui.studies.catalog import resolve_subject
    from mnist_tui.views.render import show_selection, show_subject

    exp_dir, store = context_stores(ctx, experiments_dir, runs_dir)
    subject = resolve_subject(ref, exp_dir, store)
    if subject.selection is not None:
        from mnist_tui.studies.variants import selection_page

        page = selection_page(subject.selection, exp_dir, store)
        if json_out:
            print_json(page.to_json())
        else:
            show_selection(console, page)
        return
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
        print_json(out)
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
    from mnist_tui.studies.catalog import compared, resolve_subject
    from mnist_tui.studies.diff import (
        MISSING,
        diff_definitions,
        model_source_diff,
        result_deltas,
    )
    from mnist_tui.views.render import diff_markdown, print_diff, print_source_diff

    exp_dir, store = context_stores(ctx, experiments_dir, runs_dir)
    sa, sb = resolve_subject(a, exp_dir, store), resolve_subject(b, exp_dir, store)
    changes = diff_definitions(*compared(sa, sb), include_same=all_)
    deltas = result_deltas(sa.results(), sb.results())
    source_lines = model_source_diff(sa.spec, sb.spec)
    if json_out:
        print_json(
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
                "model_source_diff": source_lines,
            }
        )
        return
    if md:
        sys.stdout.write(diff_markdown(sa, sb, changes, deltas))
        return
    print_diff(console, sa, sb, changes, deltas)
    if source_lines is not None:
        print_source_diff(console, sa.spec, sb.spec, source_lines if all_ else None)


@app.command()
def plot(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Run id (prefix) or recency (1 = newest).")],
    samples: Annotated[int, typer.Option(help="Test images to draw (0: none).")] = 12,
    mistakes: Annotated[bool, typer.Option(help="Draw only misclassified images.")] = False,
    seed: Annotated[int, typer.Option(help="Which images are drawn.")] = 0,
    data_dir: DataDir = None,
    runs_dir: RunsDir = None,
    download: Download = True,
    png: Annotated[
        Path | None, typer.Option(help="Also save the pictures as a PNG (needs matplotlib).")
    ] = None,
) -> None:
    """Pictures of a run in half blocks: curves, per-class bars, confusion, test images.

    Test images carry predicted and true labels, mistakes marked.
    """

    from mnist_tui.studies.predictions import predict_samples
    from mnist_tui.views import pictures

    _, store = context_stores(ctx, None, runs_dir)
    run = store.resolve(ref)
    rows = run.metrics()
    from rich.columns import Columns

    from mnist_tui.runs.steps import read_steps
    from mnist_tui.views.live import run_curves_live
    from mnist_tui.views.render import per_class_table
    from mnist_tui.views.run_tables import class_names

    width = max(40, min(console.width, 160) // 2 - 1)
    curves = run_curves_live(rows, read_steps(run.path), f"{run.experiment}/{run.id}")
    console.print(
        Columns([Text.from_ansi(pictures.plot(c, width=width, height=16)) for c in curves])
    )
    s = run.summary
    classes = class_names(s, rows)
    if per_class := s.get("per_class_acc"):
        console.print(per_class_table(classes, per_class))
    if confusion := s.get("confusion"):
        console.print(pictures.confusion_heatmap(classes, confusion))
    picked = None
    if samples > 0:
        picked = predict_samples(
            run,
            count=samples,
            mistakes_only=mistakes,
            seed=seed,
            data_dir=global_option(ctx, "data_dir", data_dir),
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
                per_row=pictures.images_per_row(picked.images, console.width),
                color=console.is_terminal and console.color_system is not None,
            )
        )
    if png is not None:
        from mnist_tui.views.png import save_run_png

        save_run_png(png, f"{run.experiment}/{run.id}", rows, s, picked)
        console.print(f"saved {png}")


@app.command()
def report(
    ctx: typer.Context,
    experiments: Annotated[
        list[str] | None, typer.Argument(help="Experiments to include (default: all).")
    ] = None,
    runs_dir: RunsDir = None,
    experiments_dir: ExpDir = None,
    md: Annotated[bool, typer.Option("--md", help="Markdown table.")] = False,
    latex: Annotated[bool, typer.Option("--latex", help="LaTeX (booktabs) tables.")] = False,
    archived: Annotated[bool, typer.Option("--archived", help="Count archived runs too.")] = False,
    json_out: JsonOut = False,
) -> None:
    """Reported vs reproduced for each experiment: mean ± std over seeds, Δ in pp, the
    95% interval of the mean; then each experiment against the one it extends."""
    from mnist_tui.config.loading import find_experiment
    from mnist_tui.studies.catalog import experiment_rows
    from mnist_tui.studies.completed import IndexRuns
    from mnist_tui.studies.report import build_steps, report_rows
    from mnist_tui.views import report_tables
    from mnist_tui.views.render import markdown_table, print_table, report_table
    from mnist_tui.views.report_tables import markdown
    from mnist_tui.views.variant_tables import latex_table, steps_table

    exp_dir, store = context_stores(ctx, experiments_dir, runs_dir)
    for name in experiments or []:
        find_experiment(name, exp_dir)  # a typo is an error, not an empty table
    experiment_list = experiment_rows(
        exp_dir, store, experiments or None, archived=archived, without_runs=True
    )
    completed = IndexRuns(store, archived=archived)
    rows = report_rows(experiment_list, completed, experiments or None)
    steps = build_steps(experiment_list, completed)
    if json_out:
        # each experiment that extends another carries its step (against the parent)
        by_child = {s.child: s for s in steps}
        print_json(
            [
                {
                    **r.to_json(),
                    "step": None
                    if r.name not in by_child
                    else {
                        "parent": by_child[r.name].parent,
                        "at": by_child[r.name].at,
                        **by_child[r.name].comparison.to_json(),
                    },
                }
                for r in rows
            ]
        )
    elif md:
        sys.stdout.write(markdown(rows))
        if steps:
            sys.stdout.write("\n" + markdown_table(steps_table(steps)) + "\n")
    elif latex:
        sys.stdout.write(latex_table(report_tables.report_table(rows)))
        if steps:
            sys.stdout.write("\n" + latex_table(steps_table(steps)))
    else:
        console.print(report_table(rows))
        if steps:
            print_table(console, steps_table(steps))
