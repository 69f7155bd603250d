"""The queue from the shell: `queue add|ls|rm|mv|pause|resume`, `logs`, `worker [status|stop]`.

Everything here asks the core (runs/scheduler.py, runs/worker.py); the worker trains.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from mnist_tui.cli.options import (
    DataDir,
    Epochs,
    ExpDir,
    JsonOut,
    Overrides,
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
from mnist_tui.views.visible import VisibleStream, visible

queue_app = typer.Typer(
    help="The run queue: add, list, remove, reorder, pause. A worker trains it.",
    no_args_is_help=True,
)
worker_app = typer.Typer(
    help="The worker that trains queued runs (started on its own by `queue add`).",
    invoke_without_command=True,
)
app.add_typer(queue_app, name="queue")
app.add_typer(worker_app, name="worker")

Gpus = Annotated[
    str | None,
    typer.Option(
        "--gpus",
        metavar="0,1,3",
        help="GPU ids to use, or 'cpu' (default: CUDA_VISIBLE_DEVICES, else every GPU, else CPU).",
    ),
]
PerDevice = Annotated[
    int, typer.Option(metavar="N", min=1, help="Runs trained at once on each device.")
]
IdleExit = Annotated[
    float,
    typer.Option(metavar="SECONDS", help="Exit after the queue has been empty this long."),
]
Backend = Annotated[
    str,
    typer.Option(
        metavar="local|ray",
        help="local: child processes on this machine; ray: Ray tasks on a cluster "
        "(needs the store on storage every node sees).",
    ),
]
Address = Annotated[
    str | None,
    typer.Option(
        metavar="HOST:PORT",
        help="The Ray cluster (--backend ray); default: start one on this machine.",
    ),
]


def _worker_options(
    gpus: str | None,
    per_device: int,
    threads: int | None,
    idle_exit: float,
    forever: bool,
    data_dir: Path | None,
    backend: str = "local",
    address: str | None = None,
) -> object:
    from mnist_tui.runs import backends
    from mnist_tui.runs.scheduler import normalize_device
    from mnist_tui.runs.worker import WorkerOptions

    backends.check(backend, address)
    devices: tuple[str, ...] = ()
    if gpus:
        devices = tuple(d for d in (normalize_device(x) for x in gpus.split(",") if x.strip()) if d)
    return WorkerOptions(
        devices,
        per_device,
        threads,
        idle_exit,
        forever,
        data_dir=data_dir,
        backend=backend,
        address=address,
    )


# ----------------------------------------------------------------------------- queue


@queue_app.command("add")
def queue_add(
    ctx: typer.Context,
    experiments: Annotated[list[str], typer.Argument(help="Experiment names or TOML files.")],
    set_: Overrides = None,
    epochs: Epochs = None,
    seed: Seed = None,
    repeats: Repeats = None,
    seeds: Seeds = None,
    folds: Annotated[
        int | None, typer.Option(metavar="K", help="Queue a K-fold cross-validation instead.")
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(metavar="DEVICE", help="Pin to a device: cpu, 0, 1, cuda:1 (default: any)."),
    ] = None,
    gpus: Gpus = None,
    per_device: PerDevice = 1,
    threads: Threads = None,
    start_worker: Annotated[
        bool,
        typer.Option("--start-worker/--no-start-worker", help="Start a worker if none runs."),
    ] = True,
    backend: Backend = "local",
    address: Address = None,
    data_dir: DataDir = None,
    runs_dir: RunsDir = None,
    experiments_dir: ExpDir = None,
    json_out: JsonOut = False,
) -> None:
    """Queue runs; a detached worker trains them, whether or not a terminal stays open."""
    from mnist_tui.config.loading import load_experiment
    from mnist_tui.runs.scheduler import is_paused, normalize_device
    from mnist_tui.runs.worker import WorkerOptions, ensure_worker
    from mnist_tui.studies.batch import parse_seeds, plan_folds, plan_seeds, queue_planned

    exp_dir, store = context_stores(ctx, experiments_dir, runs_dir)
    overrides = overrides_with(set_, epochs, seed)
    pin = normalize_device(device)
    specs = [load_experiment(e, exp_dir, overrides) for e in experiments]  # all valid first
    if folds is not None:
        planned = [p for s in specs for p in plan_folds(s, folds, overrides)]
    else:
        planned = plan_seeds(specs, overrides, repeats, parse_seeds(seeds))
    # the worker's options are checked before anything is queued (a missing Ray included)
    options = _worker_options(
        gpus,
        per_device,
        threads,
        60.0,
        False,
        global_option(ctx, "data_dir", data_dir),
        backend,
        address,
    )
    assert isinstance(options, WorkerOptions)
    queued = queue_planned(planned, store, pin)
    live = None
    paused = is_paused(store)
    if start_worker and not paused:  # a paused queue starts nothing: no worker either
        live = ensure_worker(store, options)
    if json_out:
        print_json([{"run": i.id, "experiment": i.experiment, **i.summary} for i in queued])
        return
    for info in queued:
        console.print(f"queued {info.experiment}/{info.id}", highlight=False)
    if paused:
        console.print(
            "the queue is paused: nothing starts until `mnist-tui queue resume`",
            highlight=False,
        )
    elif not start_worker:
        console.print("no worker started (--no-start-worker): run `mnist-tui worker`")
    elif live is not None:
        console.print(f"worker pid {live.pid} already serves {store.root}", highlight=False)
    else:
        console.print(
            f"started a worker for {store.root} (log: {store.root / '.worker.log'})",
            highlight=False,
        )


def queue_rows(store: object) -> list[dict[str, object]]:
    """Running then queued runs as plain rows, shared by `queue ls` and its JSON."""
    from mnist_tui.runs.scheduler import active_runs, held_reason
    from mnist_tui.runs.store import RunStore

    assert isinstance(store, RunStore)
    rows: list[dict[str, object]] = []
    for pos, info in enumerate(active_runs(store), start=1):
        s = info.summary
        rows.append(
            {
                "position": pos if info.status == RunStatus.QUEUED else None,
                "run": info.id,
                "experiment": info.experiment,
                "status": info.status,
                "overrides": list(s.get("overrides") or []),
                "group": s.get("group"),
                "device": s.get("device")
                if info.status == RunStatus.RUNNING
                else s.get("pin_device"),
                "node": s.get("node") if info.status == RunStatus.RUNNING else None,  # a Ray node
                "epoch": s.get("epochs_done"),
                "epochs": s.get("epochs"),
                "step": s.get("step"),
                "steps": s.get("steps"),
                # a queued run whose claim a live non-trainer holds: never started
                "held": held_reason(info),
            }
        )
    return rows


@queue_app.command("ls")
def queue_ls(ctx: typer.Context, runs_dir: RunsDir = None, json_out: JsonOut = False) -> None:
    """Running and queued runs, in the order they run; and whether the queue is paused."""
    from mnist_tui.runs.admission import waiting
    from mnist_tui.runs.scheduler import is_paused
    from mnist_tui.runs.worker import worker_info

    _, store = context_stores(ctx, None, runs_dir)
    rows = queue_rows(store)
    live = worker_info(store)
    # why the worker holds a queued run back (GPU memory), as it last judged
    waits = {k: v for k, v in waiting(store).items() if any(r["run"] == k for r in rows)}
    if json_out:
        print_json(
            {
                "paused": is_paused(store),
                "worker": live.__dict__ if live else None,
                "runs": rows,
                "waiting": waits,
            }
        )
        return
    t = Table(title_justify="left", title=f"queue of {store.root}")
    for col in ("#", "run", "experiment", "status", "device", "progress", "overrides"):
        # overrides fold onto more lines rather than end in "train.epoch…"
        t.add_column(col, no_wrap=col in ("run", "experiment"), overflow="fold")
    for r in rows:
        progress = (
            f"{r['epoch'] or 0}/{r['epochs'] or '?'}" if r["status"] == RunStatus.RUNNING else ""
        )
        t.add_row(
            *(
                Text(visible(c))
                for c in (
                    str(r["position"] or ""),
                    str(r["run"]),
                    str(r["experiment"]),
                    str(r["status"]),
                    str(r["device"] or "any") + (f" @ {r['node']}" if r["node"] else ""),
                    progress,
                    " ".join(str(o) for o in r["overrides"]),  # type: ignore[attr-defined]
                )
            )
        )
    if rows:
        console.print(t)
        for r in rows:
            if r["held"]:
                text = visible(f"{r['experiment']}/{r['run']} is not started: {r['held']}")
                console.print(Text(text, style="yellow"), soft_wrap=True)  # a path to copy
        for run_id, why in waits.items():
            console.print(Text(visible(f"{run_id} {why}")), soft_wrap=True)
    else:
        console.print("the queue is empty: add runs with `mnist-tui queue add EXPERIMENT`")
    state = "paused (mnist-tui queue resume)" if is_paused(store) else "active"
    who = f"worker pid {live.pid} on {live.host}" if live else "no worker running"
    console.print(f"queue {state}; {who}", highlight=False)


@queue_app.command("rm")
def queue_rm(
    ctx: typer.Context,
    refs: Annotated[list[str], typer.Argument(help="Run ids (prefix).")],
    runs_dir: RunsDir = None,
) -> None:
    """Remove queued runs (stored as killed), or stop running ones (resumable)."""
    from mnist_tui.runs.scheduler import cancel

    _, store = context_stores(ctx, None, runs_dir)
    for ref in refs:
        info = store.resolve(ref)
        console.print(f"{info.experiment}/{info.id}: {cancel(store, info)}", highlight=False)


@queue_app.command("mv")
def queue_mv(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="A queued run id (prefix).")],
    where: Annotated[str, typer.Argument(help="up, down, top or bottom.")],
    runs_dir: RunsDir = None,
) -> None:
    """Reorder the queue (running runs stay where they are)."""
    from mnist_tui.errors import did_you_mean
    from mnist_tui.runs.scheduler import move

    if where not in ("up", "down", "top", "bottom"):
        hint = did_you_mean(where, ["up", "down", "top", "bottom"])
        raise MnistTuiError(f"queue mv: expected up, down, top or bottom, got '{where}'.{hint}")
    _, store = context_stores(ctx, None, runs_dir)
    info = store.resolve(ref)
    move(store, info, where)  # type: ignore[arg-type]
    console.print(f"moved {info.experiment}/{info.id} {where}", highlight=False)


@queue_app.command("pause")
def queue_pause(ctx: typer.Context, runs_dir: RunsDir = None) -> None:
    """Start no new runs (running ones go on) until `queue resume`."""
    from mnist_tui.runs.scheduler import pause

    _, store = context_stores(ctx, None, runs_dir)
    pause(store)
    console.print("queue paused: running runs go on, no new run starts")


@queue_app.command("resume")
def queue_resume(
    ctx: typer.Context,
    runs_dir: RunsDir = None,
    start_worker: Annotated[
        bool, typer.Option("--start-worker/--no-start-worker", help="Start a worker if none runs.")
    ] = True,
) -> None:
    """Start queued runs again (and a worker, if none is running)."""
    from mnist_tui.runs.scheduler import queue_order, resume
    from mnist_tui.runs.worker import ensure_worker

    _, store = context_stores(ctx, None, runs_dir)
    resume(store)
    if start_worker and queue_order(store):
        ensure_worker(store)
    console.print("queue resumed")


# ----------------------------------------------------------------------------- logs


@app.command()
def logs(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Run id (prefix) or recency (1 = newest).")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
    steps: Annotated[
        bool, typer.Option("--steps", help="Also a line per step report (~50 an epoch).")
    ] = False,
    runs_dir: RunsDir = None,
) -> None:
    """A run's log: the worker's command and starting line, then a line per epoch."""
    import sys

    from mnist_tui.views.live import STEP_PREFIX

    _, store = context_stores(ctx, None, runs_dir)
    info = store.resolve(ref)
    path = info.path / "log.txt"
    if not path.exists() and not follow:
        console.print(f"run {info.id} has no log (it was trained in a terminal, not by the worker)")
        return
    offset = 0
    shown = VisibleStream()
    partial = b""  # a line the run has not finished writing yet
    step_prefix = STEP_PREFIX.encode()
    if (
        follow and info.status == RunStatus.QUEUED
    ):  # said, not a silent wait: a paused queue or a long queue can take hours
        from mnist_tui.runs.scheduler import is_paused, queue_order

        order = [r.id for r in queue_order(store)]
        at = order.index(info.id) + 1 if info.id in order else 0
        where = f" (position {at} of {len(order)})" if at else ""
        paused = "; the queue is paused: `mnist-tui queue resume`" if is_paused(store) else ""
        err.print(
            f"run {info.id} is queued{where}: waiting for it to start{paused}", soft_wrap=True
        )
    while True:
        try:
            with path.open("rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
                offset = fh.tell()
        except FileNotFoundError:
            chunk = b""
        if chunk:
            *whole, partial = (partial + chunk).split(b"\n")
            kept = b"".join(w + b"\n" for w in whole if steps or not w.startswith(step_prefix))
            # training output is stored text too: its control characters are shown
            sys.stdout.write(shown.feed(kept))
            sys.stdout.flush()
        if not follow:
            break
        fresh = store.read_run(info.experiment, info.id)
        if (
            fresh is None or fresh.status not in (RunStatus.QUEUED, RunStatus.RUNNING)
        ) and not chunk:
            break
        time.sleep(0.5)
    # a line the run has not ended yet, and a character cut at the end
    sys.stdout.write(shown.feed(partial, final=True) + ("\n" if partial else ""))


# ----------------------------------------------------------------------------- worker


@worker_app.callback()
def worker(
    ctx: typer.Context,
    gpus: Gpus = None,
    per_device: PerDevice = 1,
    threads: Threads = None,
    idle_exit: IdleExit = 60.0,
    forever: Annotated[
        bool, typer.Option("--forever", help="Never exit when idle (for systemd or tmux).")
    ] = False,
    backend: Backend = "local",
    address: Address = None,
    data_dir: DataDir = None,
    runs_dir: RunsDir = None,
) -> None:
    """Train queued runs, several at once per device; one worker per run store."""
    if ctx.invoked_subcommand is not None:
        return
    from mnist_tui.runs.backends import make_worker
    from mnist_tui.runs.worker import WorkerOptions

    _, store = context_stores(ctx, None, runs_dir)
    options = _worker_options(
        gpus,
        per_device,
        threads,
        idle_exit,
        forever,
        global_option(ctx, "data_dir", data_dir),
        backend,
        address,
    )
    assert isinstance(options, WorkerOptions)
    raise typer.Exit(make_worker(store, options).run())


@worker_app.command("status")
def worker_status(ctx: typer.Context, runs_dir: RunsDir = None, json_out: JsonOut = False) -> None:
    """Whether a worker serves this store, and what it runs."""
    from mnist_tui.runs.scheduler import active_runs, is_paused
    from mnist_tui.runs.worker import worker_info

    _, store = context_stores(ctx, None, runs_dir)
    live = worker_info(store)
    active = active_runs(store)
    running = [r for r in active if r.status == RunStatus.RUNNING]
    queued = [r for r in active if r.status == RunStatus.QUEUED]
    if json_out:
        print_json(
            {
                "worker": live.__dict__ if live else None,
                "paused": is_paused(store),
                "running": [r.id for r in running],
                "queued": [r.id for r in queued],
            }
        )
        return
    if live is None:
        console.print(f"no worker serves {store.root}", highlight=False)
    else:
        since = time.strftime("%Y-%m-%d %H:%M", time.localtime(live.started))
        console.print(
            f"worker pid {live.pid} on {live.host} since {since}: devices "
            f"{', '.join(live.devices)}, {live.per_device} run(s) per device",
            highlight=False,
        )
    console.print(
        f"{len(running)} running, {len(queued)} queued"
        + (" (queue paused)" if is_paused(store) else ""),
        highlight=False,
    )


@worker_app.command("stop")
def worker_stop(ctx: typer.Context, runs_dir: RunsDir = None) -> None:
    """Stop the worker; its running runs end as killed and can be resumed."""
    from mnist_tui.runs.worker import stop_worker

    _, store = context_stores(ctx, None, runs_dir)
    live = stop_worker(store)
    if live is None:
        err.print(f"no worker serves {store.root}")
        raise typer.Exit(1)
    console.print(f"stopped worker pid {live.pid}", highlight=False)
