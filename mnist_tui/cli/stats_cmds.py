"""Variants and comparisons: `variants`, `compare`; and `export-model`. scipy is imported
only by `compare`, torch only by `export-model`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from mnist_tui.cli.options import (
    ExpDir,
    JsonOut,
    RunsDir,
    app,
    console,
    context_stores,
    err,
    print_json,
)

Columns = Annotated[
    str | None,
    typer.Option(
        "--columns",
        metavar="KEYS",
        help="Configuration keys to show as columns, comma-separated: optim.lr,model.hidden.",
    ),
]
Where = Annotated[
    str | None,
    typer.Option(
        "--where",
        metavar="EXPR",
        help='Only runs matching, e.g. "optim.lr > 0.01 and test_acc >= 0.85".',
    ),
]


def column_keys(text: str | None, results: bool = False) -> list[str]:
    """`--columns` as keys; a key that cannot exist is an error naming it. `results`: run
    fields (group, fold, trial, tag, best.test_acc...) too, beside configuration keys."""
    from mnist_tui.errors import MnistTuiError
    from mnist_tui.studies.where import key_problem

    keys = [k.strip() for k in (text or "").split(",") if k.strip()]
    for k in keys:
        problem = key_problem(k)
        if problem is None and not results and "." not in k:
            problem = f"'{k}' is not a configuration key such as optim.lr"
        if problem is not None:
            raise MnistTuiError(f"--columns: {problem}")
    return keys


@app.command()
def variants(
    ctx: typer.Context,
    experiments: Annotated[
        list[str] | None, typer.Argument(help="Experiments (default: every one with runs).")
    ] = None,
    where: Where = None,
    columns: Columns = None,
    archived: Annotated[bool, typer.Option("--archived", help="Count archived runs too.")] = False,
    runs_dir: RunsDir = None,
    experiments_dir: ExpDir = None,
    json_out: JsonOut = False,
) -> None:
    """Each definition that has runs, seed aside: n, mean ± std, what differs from the file.

    A variant's id (EXP@3f2a1b), EXP[key=value,...] or the experiment itself names it to
    `compare`.
    """
    from mnist_tui.runs.manage import check_experiments
    from mnist_tui.studies.variants import build_variants
    from mnist_tui.studies.where import filter_runs, parse_where
    from mnist_tui.views.render import print_table
    from mnist_tui.views.variant_tables import variants_table

    exp_dir, store = context_stores(ctx, experiments_dir, runs_dir)
    keys = column_keys(columns)
    if where:
        parse_where(where)  # a typo fails before the store is read
    names = check_experiments(list(experiments or []), exp_dir, store)
    runs = store.runs(brief=True, archived=archived)
    if names:
        runs = [r for r in runs if r.experiment in names]
    if where:
        runs = filter_runs(runs, where)
    found = build_variants(exp_dir, store, names or None, runs=runs)
    if json_out:
        out = []
        for v in found:
            item = v.to_json()
            if keys:
                item["columns"] = {k: v.config.get(k) for k in keys}
            out.append(item)
        print_json(out)
        return
    print_table(console, variants_table(found, keys))


@app.command()
def compare(
    ctx: typer.Context,
    sides: Annotated[
        list[str],
        typer.Argument(
            help="Two or more: an experiment, a variant (EXP@id, EXP[key=value,...]) or a group."
        ),
    ],
    metric: Annotated[
        str, typer.Option(help="Any stored figure: test_acc, test_loss, val_acc, val_loss.")
    ] = "test_acc",
    best: Annotated[
        bool,
        typer.Option("--best/--final", help="Each run's best epoch, or its final one (default)."),
    ] = False,
    delta: Annotated[
        float | None,
        typer.Option(
            metavar="X",
            help="The difference seeds-needed aims at (pp for accuracies); default: observed.",
        ),
    ] = None,
    runs_dir: RunsDir = None,
    experiments_dir: ExpDir = None,
    json_out: JsonOut = False,
    md: Annotated[bool, typer.Option("--md", help="Markdown tables.")] = False,
    latex: Annotated[bool, typer.Option("--latex", help="LaTeX (booktabs) tables.")] = False,
) -> None:
    """Is one better? Difference of means with a 95% CI (Welch), p, effect size, verdict.

    More than two sides: ranked, every pair compared, p-values Holm-adjusted. Where a
    difference is not settled, how many runs per side would settle it (80% power).
    """
    from mnist_tui.studies.compare import compare_refs
    from mnist_tui.studies.stats import scale_of, verdict
    from mnist_tui.views.render import markdown_table, print_table
    from mnist_tui.views.variant_tables import (
        latex_table,
        pairs_table,
        sides_table,
        study_markdown,
    )

    exp_dir, store = context_stores(ctx, experiments_dir, runs_dir)
    scale = scale_of(metric)[0]
    study = compare_refs(
        list(sides),
        exp_dir,
        store,
        metric,
        "best" if best else "final",
        None if delta is None else delta / scale,
    )
    if json_out:
        print_json(study.to_json())
    elif md:
        sys.stdout.write(study_markdown(study, markdown_table))
    elif latex:
        sys.stdout.write(study_markdown(study, latex_table).replace("\n- ", "\n% "))
    else:
        print_table(console, sides_table(study))
        print_table(console, pairs_table(study))
        for c in study.pairs:
            console.print(f"• {escape(verdict(c, metric))}", highlight=False)


@app.command("export-model")
def export_model(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Run id (prefix) or recency (1 = newest).")],
    fmt: Annotated[
        str,
        typer.Option("--format", metavar="FORMAT", help="torchscript (.pt) or exported (.pt2)."),
    ] = "torchscript",
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Where (default: EXPERIMENT-RUN in this directory)."),
    ] = None,
    last: Annotated[
        bool, typer.Option("--last", help="The last checkpoint instead of the best.")
    ] = False,
    runs_dir: RunsDir = None,
) -> None:
    """The run's trained model as TorchScript or a torch.export program, with a JSON that
    says what it expects (input shape, normalisation, classes)."""
    from mnist_tui.studies.export_model import export_model as write

    _, store = context_stores(ctx, None, runs_dir)
    run = store.resolve(ref)
    target, meta = write(
        run, out or Path(f"{run.experiment}-{run.id}"), fmt, "last" if last else "best"
    )
    err.print(f"wrote {escape(str(target))} and {escape(str(meta))}", highlight=False)
