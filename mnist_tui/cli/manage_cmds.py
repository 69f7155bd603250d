"""Looking after stored runs: delete, gc, archive, unarchive, tag, note, export.

The work is done in runs/manage.py and studies/export.py; this only parses and prints.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from mnist_tui.cli.options import RunsDir, app, console, context_stores, err
from mnist_tui.errors import MnistTuiError
from mnist_tui.views.visible import visible

if TYPE_CHECKING:
    from mnist_tui.runs.record import RunInfo
    from mnist_tui.runs.store import RunStore

Refs = Annotated[
    list[str] | None,
    typer.Argument(help="Run ids (a unique prefix will do) or recency numbers (1 = newest)."),
]
Group = Annotated[str | None, typer.Option(help="Every run of this group.")]


def _runs(
    ctx: typer.Context, refs: list[str] | None, group: str | None, runs_dir: Path | None
) -> tuple[RunStore, list[RunInfo]]:
    """The store and the runs named by refs and/or --group (each once, in order)."""
    from mnist_tui.runs.manage import group_runs

    _, store = context_stores(ctx, None, runs_dir)
    found = [store.resolve(r) for r in refs or []]
    if group is not None:
        found += group_runs(store, group)
    if not found:
        raise MnistTuiError("name at least one run (an id, a prefix or 1 = newest) or --group")
    unique = {r.path: r for r in found}
    return store, list(unique.values())


def _label(r: RunInfo) -> str:
    return f"{r.experiment}/{r.id}"


@app.command()
def delete(
    ctx: typer.Context,
    refs: Refs = None,
    group: Group = None,
    permanent: Annotated[
        bool, typer.Option("--permanent", help="Delete for good instead of moving to the trash.")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask (with --permanent).")
    ] = False,
    runs_dir: RunsDir = None,
) -> None:
    """Move runs to the store's trash (`gc` empties it); a running run is never deleted."""
    from mnist_tui.runs.manage import delete_runs, trash_dir

    store, runs = _runs(ctx, refs, group, runs_dir)
    if permanent and not yes and sys.stdin.isatty():
        from mnist_tui.views.fmt import plural

        typer.confirm(f"delete {plural(len(runs), 'run')} for good?", abort=True)
    done = delete_runs(store, runs, permanent=permanent)
    for d in done:
        console.print(f"deleted {_label(d.run)}" + ("" if d.moved_to else " for good"))
    if not permanent:
        console.print(
            f"[dim]{len(done)} runs moved to {escape(str(trash_dir(store)))}; "
            "`mnist-tui gc` empties it[/]",
            highlight=False,
        )


@app.command()
def gc(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would go.")] = False,
    runs_dir: RunsDir = None,
) -> None:
    """Empty the store's trash: deleted runs go for good."""
    from mnist_tui.runs.manage import empty_trash

    _, store = context_stores(ctx, None, runs_dir)
    n, size = empty_trash(store, dry_run=dry_run)
    verb = "would free" if dry_run else "freed"
    console.print(f"{n} runs in the trash; {verb} {size / 1e6:.1f} MB")


@app.command()
def archive(
    ctx: typer.Context, refs: Refs = None, group: Group = None, runs_dir: RunsDir = None
) -> None:
    """Hide runs from listings, the report and the console (`runs --archived` shows them)."""
    from mnist_tui.runs.manage import set_archived

    store, runs = _runs(ctx, refs, group, runs_dir)
    for r in runs:
        set_archived(store, r, True)
        console.print(f"archived {_label(r)}")


@app.command()
def unarchive(
    ctx: typer.Context, refs: Refs = None, group: Group = None, runs_dir: RunsDir = None
) -> None:
    """Show archived runs again."""
    from mnist_tui.runs.manage import set_archived

    store, runs = _runs(ctx, refs, group, runs_dir)
    for r in runs:
        set_archived(store, r, False)
        console.print(f"unarchived {_label(r)}")


@app.command()
def tag(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Run id (prefix) or recency (1 = newest).")],
    tags: Annotated[list[str], typer.Argument(help="Tags to add (or remove).")],
    remove: Annotated[bool, typer.Option("--remove", help="Remove these tags.")] = False,
    runs_dir: RunsDir = None,
) -> None:
    """Add tags to a run (`runs --tag T` finds them), or remove them."""
    from mnist_tui.runs.manage import set_tags

    _, store = context_stores(ctx, None, runs_dir)
    run = store.resolve(ref)
    now = set_tags(store, run, tags, remove=remove)
    console.print(f"{_label(run)} tags: {escape(' '.join(now)) or '(none)'}", highlight=False)


@app.command()
def note(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Run id (prefix) or recency (1 = newest).")],
    text: Annotated[str, typer.Argument(help='The note ("" clears it).')],
    runs_dir: RunsDir = None,
) -> None:
    """Keep a note with a run (shown by `runs --json` and the run's page)."""
    from mnist_tui.runs.manage import set_note

    _, store = context_stores(ctx, None, runs_dir)
    run = store.resolve(ref)
    set_note(store, run, text)
    shown = escape(visible(text, multiline=True)) or "(cleared)"
    console.print(f"{_label(run)} note: {shown}", highlight=False)


@app.command()
def export(
    ctx: typer.Context,
    refs: Refs = None,
    group: Group = None,
    csv_path: Annotated[
        Path | None,
        typer.Option("--csv", help="Write one row per epoch to this CSV file ('-': stdout)."),
    ] = None,
    runs_csv: Annotated[
        Path | None,
        typer.Option(
            "--runs-csv",
            help="Write one row per run (every configuration key, final and best figures) "
            "to this CSV file ('-': stdout).",
        ),
    ] = None,
    tensorboard: Annotated[
        Path | None,
        typer.Option(help="Write TensorBoard event files under this directory."),
    ] = None,
    runs_dir: RunsDir = None,
) -> None:
    """Export runs: a CSV of epochs or of runs, or TensorBoard event files (with HParams)."""
    from mnist_tui.studies import export as ex

    if csv_path is None and tensorboard is None and runs_csv is None:
        raise MnistTuiError("say where: --csv FILE, --runs-csv FILE and/or --tensorboard DIR")
    store, runs = _runs(ctx, refs, group, runs_dir)
    from mnist_tui.runs.contained import check_runs

    check_runs(store.root, (r.path for r in runs), "export")  # read nothing outside the store
    runs = [r.full() for r in runs]
    if csv_path is not None:
        if str(csv_path) == "-":
            columns, rows = ex.epoch_rows(runs)
            ex.write_csv_to(sys.stdout, columns, rows)
        else:
            n = ex.write_csv(csv_path, runs)
            err.print(f"wrote {n} epochs of {len(runs)} runs to {escape(str(csv_path))}")
    if runs_csv is not None:
        if str(runs_csv) == "-":
            columns, rows = ex.run_rows(runs)
            ex.write_csv_to(sys.stdout, columns, rows)
        else:
            n = ex.write_runs_csv(runs_csv, runs)
            err.print(f"wrote {n} runs to {escape(str(runs_csv))}")
    if tensorboard is not None:
        written = ex.write_tensorboard(tensorboard, runs)
        err.print(
            f"wrote event files of {len(written)} runs under {escape(str(tensorboard))}; "
            f"view them with: tensorboard --logdir {escape(str(tensorboard))}"
        )
    for r in runs:
        for line in r.notes:
            err.print(f"[yellow]{_label(r)}[/]: {escape(line)}", highlight=False)
