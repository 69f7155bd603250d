"""Start-up costs: where a fresh `mnist-tui run` spends its time, and the worker's per-run cost.

    python benchmarks/startup.py [--experiment logreg] [--repeats 3] [--runs 10] [--skip-worker]
                                 [--tree DIR]

`--tree DIR` times another checkout's mnist_tui beside this one (e.g. the code before a
change): every figure is printed for both, side by side, from the same invocation.

1. Phases of a run in a fresh process (each repeat a new interpreter), median seconds:
   interpreter + imports (the CLI, torch, the trainer), spec, data (locate, verify,
   decode or cache, device tensors), provenance (env.json: versions, git commit), model
   build, first step (one optimiser step and its progress event). The same sequence
   `run_experiment` follows, timed from the moment the process was asked for.
2. The worker: `--runs` queued one-epoch runs on a 1,000-image subset drained by
   `mnist-tui worker`, cold (MNIST_TUI_WARM_START=0: a new process per run) and warm
   (forked from each slot's warm parent). Per run, from the claims history, the summary
   and the step reports: claim -> running (data loaded), claim -> the first step report
   (its first optimiser steps taken) and claim -> end; and the whole drain.
Needs the real datasets (MNIST_TUI_DATA). Other load on the machine skews every figure:
the load average is printed with the tables.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PHASES = ("imports", "spec", "data", "provenance", "model", "first step")
TINY = ["-S", "data.subset=1000", "-S", "data.test_subset=500", "--epochs", "1"]


def phase_child(experiment: str, asked: float) -> None:
    """Run in a fresh interpreter: time each phase of a run, print them as JSON."""
    marks: dict[str, float] = {}
    last = asked

    def mark(name: str) -> None:
        nonlocal last
        now = time.time()
        marks[name] = now - last
        last = now

    import mnist_tui.cli  # noqa: F401  (what `mnist-tui run` imports before anything)
    from mnist_tui.config.loading import load_experiment
    from mnist_tui.data import device as data_device
    from mnist_tui.runs.provenance import environment
    from mnist_tui.train.events import BatchProgress
    from mnist_tui.train.setup import resolve_device
    from mnist_tui.train.trainer import Trainer

    mark("imports")
    spec = load_experiment(experiment, overrides=["data.subset=1000", "data.test_subset=500"])
    mark("spec")
    dev = resolve_device("cpu")
    dataset = data_device.prepare(spec.data, spec.augment, dev, None, False)
    mark("data")
    environment("cpu", spec.train.seed)
    mark("provenance")
    stepped: list[float] = []

    def on_event(event: object) -> None:
        if isinstance(event, BatchProgress) and not stepped:
            stepped.append(time.time())

    trainer = Trainer(spec, dataset, dev, on_event=on_event, progress_every=1,
                      should_stop=lambda: bool(stepped))  # fmt: skip
    mark("model")
    with contextlib.suppress(Exception):  # it ends on the stop after its first step
        trainer.run()
    if stepped:
        marks["first step"] = stepped[0] - last
    print(json.dumps(marks))


def tree_env(tree: Path | None, **extra: str) -> dict[str, str]:
    """The environment of a child that imports `tree`'s mnist_tui (None: this checkout).
    Such a child must also start in `tree` (`tree_cwd`): `python -m` puts the working
    directory before PYTHONPATH, so a child started in this checkout imports this one."""
    env = {**os.environ, **extra}
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    return env


def tree_cwd(tree: Path | None) -> str | None:
    return str(tree) if tree is not None else None


def phases(experiment: str, repeats: int, tree: Path | None) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {p: [] for p in PHASES}
    out["total"] = []
    for _ in range(repeats):
        asked = time.time()
        res = subprocess.run(
            [sys.executable, __file__, "--phase-child", experiment, "--asked", repr(asked)],
            capture_output=True, text=True, check=True, env=tree_env(tree),
        )  # fmt: skip
        marks = json.loads(res.stdout.strip().splitlines()[-1])
        for k, v in marks.items():
            out[k].append(v)
        out["total"].append(sum(marks.values()))
    return out


def drain(
    experiment: str, runs: int, warm: bool, tmp: Path, tree: Path | None = None
) -> dict[str, list[float]]:
    store = tmp / f"{'warm' if warm else 'cold'}-{'tree' if tree else 'this'}"
    env = tree_env(tree, MNIST_TUI_WARM_START="1" if warm else "0")
    base = [sys.executable, "-m", "mnist_tui"]
    subprocess.run(
        [*base, "queue", "add", experiment, "--repeats", str(runs), *TINY, "--device", "cpu",
         "--no-start-worker", "--runs-dir", str(store)],
        env=env, capture_output=True, check=True, cwd=tree_cwd(tree),
    )  # fmt: skip
    t0 = time.monotonic()
    subprocess.run(
        [*base, "worker", "--idle-exit", "0.3", "--runs-dir", str(store)],
        env=env, capture_output=True, check=True, cwd=tree_cwd(tree),
    )  # fmt: skip
    wall = time.monotonic() - t0
    to_running, to_step, to_end = [], [], []
    for summary_path in store.glob("*/*/summary.json"):
        summary = json.loads(summary_path.read_text())
        (h,) = [json.loads(x) for x in (summary_path.parent / "claims.jsonl").open()]
        # the claim as handed to the trainer: a few ms after the worker's claim, the
        # moment its process exists (cold) or was forked (warm)
        claimed = float(h["claimed_at"])
        to_running.append(float(summary["started"]) - claimed)
        steps = summary_path.parent / "steps.jsonl"
        if steps.is_file():  # the first step report (the code before reports has none)
            first = steps.read_text().splitlines()[:1]
            if first:
                to_step.append(float(json.loads(first[0])["time"]) - claimed)
        to_end.append(float(h["released_at"]) - claimed)
        assert summary["status"] == "completed", summary
    return {
        "drain": [wall],
        "claim->running": to_running,
        "claim->1st step": to_step,
        "claim->end": to_end,
    }


def med(xs: list[float]) -> str:
    return f"{statistics.median(xs):7.3f}" if xs else "      -"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--experiment", default="logreg")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--skip-worker", action="store_true")
    ap.add_argument("--skip-phases", action="store_true")
    ap.add_argument("--tree", type=Path, default=None, help="another checkout, timed beside")
    ap.add_argument("--phase-child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--asked", type=float, default=0.0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase_child:
        phase_child(args.phase_child, args.asked)
        return
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")
    trees: list[tuple[str, Path | None]] = [("this", None)]
    if args.tree:
        trees.insert(0, (args.tree.name, args.tree.resolve()))
    if not args.skip_phases:
        res = {name: phases(args.experiment, args.repeats, tree) for name, tree in trees}
        print(f"\nfresh-process start-up of `{args.experiment}` (median of {args.repeats}, s)")
        print(f"  {'':<12} " + " ".join(f"{name:>10}" for name, _ in trees))
        for phase in (*PHASES, "total"):
            cells = " ".join(f"{med(res[name][phase]):>10}" for name, _ in trees)
            print(f"  {phase:<12} {cells}")
    if args.skip_worker:
        return
    with tempfile.TemporaryDirectory() as tmp:
        # the other tree has one way to start a run; this one has two (cold, warm)
        modes = [(f"{name} cold", tree, False) for name, tree in trees]
        modes.append(("this warm", None, True))
        drains = {label: drain(args.experiment, args.runs, warm, Path(tmp), tree)
                  for label, tree, warm in modes}  # fmt: skip
    print(f"\nworker: {args.runs} one-epoch runs, 1,000 images, median per run (s)")
    print(f"  {'':<16} " + " ".join(f"{label:>12}" for label in drains))
    for key in ("claim->running", "claim->1st step", "claim->end"):
        print(f"  {key:<16} " + " ".join(f"{med(d[key]):>12}" for d in drains.values()))
    print(f"  {'drain (total)':<16} " + " ".join(f"{med(d['drain']):>12}" for d in drains.values()))
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
