"""How the read-only commands and the console scale with the size of the run store.

    python benchmarks/store_scale.py [--sizes 10 10000] [--repeats 3] [--idle 10]

For each size it builds a synthetic store shaped like real runs (a spec.toml resolved from
one of the shipped experiments, summary.json with final/best/last figures, per-class
accuracy and confusion, metrics.jsonl with one row per epoch, env.json; several
experiments, seeds, groups, some runs with overrides, some damaged), then prints the wall
time (median of N, after one warm-up run whose time is printed too: it pays for any
index) of `runs`, `runs --json`, `report`, `list` and `show RUN`, each a fresh process;
the console's first screen (Textual's pilot, from the start of the process until the
runs table has rows); when every run is read and shown (a large store shows its newest
runs first and reads the rest in the background); and the console's own CPU time while
idle after that, as a share of one core. The last column is the ratio largest size /
smallest size.

The tree is byte-compiled first (`compileall`), as an installed wheel is: an environment
with PYTHONDONTWRITEBYTECODE would otherwise compile every module on every start, a
quarter of a second that is not the tool's.

Damaged runs are of the kinds every version of the store survives (a torn or missing
summary.json), so the figures of an older tree are comparable.

To measure another checkout (say the commit before a change), run this file with
`--tree DIR`: commands and the console then import `mnist_tui` from DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = [
    "logreg",
    "fnn1",
    "fnn2",
    "lenet5",
    "cnn3",
    "task2",
    "task8",
    "task12",
    "custom_mlp",
    "mlp_validation",
]
FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat"]
FASHION += ["Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
DIGITS = [str(i) for i in range(10)]

CONSOLE = r"""
import asyncio, json, os, sys, time
t0 = time.perf_counter()
from pathlib import Path
from textual.widgets import DataTable
from mnist_tui.tui.app import MnistTuiApp

def runs_table(app):
    for t in app.query(DataTable):
        if t.id and "run" in t.id and "queue" not in t.id:
            return t
    raise SystemExit("no runs table in the console")

async def main():
    out = {"import_s": time.perf_counter() - t0}
    app = MnistTuiApp(runs_dir=Path(sys.argv[1]))
    async with app.run_test(size=(120, 40)) as pilot:
        table = None
        while time.perf_counter() - t0 < 120:
            try:
                table = table or runs_table(app)
            except Exception:
                table = None
            if table is not None and table.row_count > 0:
                break
            await pilot.pause(0.01)
        out["first_screen_s"] = time.perf_counter() - t0
        c = os.times()
        out["first_screen_cpu"] = c.user + c.system
        out["rows"] = table.row_count if table is not None else 0
        # a large store shows its newest runs first, then reads the rest in the store
        # thread: idle is measured once every run is read
        while time.perf_counter() - t0 < 600:
            if getattr(app.reader, "complete", True) and "reading them" not in app.main.summary:
                break
            await pilot.pause(0.05)
        out["all_read_s"] = time.perf_counter() - t0
        idle = float(sys.argv[2])
        if idle > 0:
            await pilot.pause(1.0)  # let the first poll settle
            c0, w0 = os.times(), time.perf_counter()
            await asyncio.sleep(idle)
            c1, w1 = os.times(), time.perf_counter()
            cpu = (c1.user - c0.user) + (c1.system - c0.system)
            out["idle_cpu"] = cpu / (w1 - w0)
    print("RESULT " + json.dumps(out))

asyncio.run(main())
"""


def _epoch_row(rng: random.Random, epoch: int, epochs: int, has_val: bool) -> dict[str, Any]:
    progress = epoch / epochs
    acc = min(0.995, 0.80 + 0.18 * progress + rng.uniform(-0.01, 0.01))
    per_class = [min(1.0, max(0.0, acc + rng.uniform(-0.08, 0.05))) for _ in range(10)]
    confusion = [
        [round(1000 * per_class[i]) if i == j else rng.randint(0, 12) for j in range(10)]
        for i in range(10)
    ]
    train_seconds = rng.uniform(2.0, 9.0)
    return {
        "epoch": epoch,
        "images_per_s": 60_000 / train_seconds,
        "lr": 0.001,
        "seconds": train_seconds + rng.uniform(0.2, 0.6),
        "test_acc": acc,
        "test_confusion": confusion,
        "test_loss": max(0.02, 0.6 - 0.5 * progress + rng.uniform(-0.02, 0.02)),
        "test_per_class": per_class,
        "train_acc": min(0.999, acc + 0.01),
        "train_loss": max(0.01, 0.55 - 0.5 * progress),
        "train_seconds": train_seconds,
        "val_acc": acc - 0.002 if has_val else None,
        "val_loss": 0.3 - 0.2 * progress if has_val else None,
    }


def _summary(
    rng: random.Random,
    run_id: str,
    experiment: str,
    rows: list[dict[str, Any]],
    classes: list[str],
    seed: int,
    created: float,
    group: str | None,
    overrides: list[str],
    status: str,
) -> dict[str, Any]:
    def figures(r: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in r.items() if k not in ("test_per_class", "test_confusion")}

    final = rows[-1]
    best = max(rows, key=lambda r: r["test_acc"])
    worst = min(range(10), key=final["test_per_class"].__getitem__)
    wall = sum(r["seconds"] for r in rows) + 3.0
    out: dict[str, Any] = {
        "id": run_id,
        "experiment": experiment,
        "status": status,
        "created": created,
        "seed": seed,
        "group": group,
        "pid": rng.randint(1000, 60000),
        "host": "bench-host",
        "device": "cuda:0 (NVIDIA H100)",
        "engine": "eager",
        "epochs": len(rows) if status == "completed" else len(rows) + 3,
        "epochs_done": len(rows),
        "epoch_in_progress": len(rows),
        "step": 469,
        "steps": 469,
        "best_epoch": best["epoch"],
        "best_metric": "test_acc",
        "final": figures(final),
        "best": figures(best),
        "last": {k: v for k, v in final.items() if k != "test_confusion"},
        "classes": classes,
        "per_class_acc": final["test_per_class"],
        "confusion": final["test_confusion"],
        "hardest_class": classes[worst],
        "parameters": rng.choice([7850, 13434, 61706, 93546]),
        "reason": "" if status == "completed" else "cancelled by the user",
        "train_seconds": sum(r["train_seconds"] for r in rows),
        "wall_seconds": wall,
    }
    if overrides:
        out["overrides"] = overrides
    return out


def build_store(root: Path, size: int, experiments_dir: Path, seed: int = 0) -> list[str]:
    """Write `size` runs under `root`; returns their ids."""
    from mnist_tui.config.loading import load_experiment

    rng = random.Random(seed)
    specs = {}
    for name in EXPERIMENTS:
        spec = load_experiment(name, experiments_dir)
        specs[name] = (tomllib.loads(spec.to_toml()), spec.data.dataset, spec.data.val_split > 0)
    now = time.time()
    ids: list[str] = []
    taken: set[str] = set()
    group: str | None = None
    group_left = 0
    for k in range(size):
        name = EXPERIMENTS[k % len(EXPERIMENTS)]
        raw, dataset, has_val = specs[name]
        raw = json.loads(json.dumps(raw))  # a copy to change
        seed_k = k % 5
        raw["train"]["seed"] = seed_k
        overrides: list[str] = []
        if rng.random() < 0.1:  # a quick run of another definition
            overrides = ["train.epochs=3"]
            raw["train"]["epochs"] = 3
        if group_left == 0 and rng.random() < 0.1:
            group, group_left = f"sweep-{k}", rng.randint(3, 8)
        run_group = group if group_left > 0 else None
        group_left = max(0, group_left - 1)
        epochs = raw["train"]["epochs"]
        status = rng.choices(["completed", "failed", "killed"], [0.9, 0.05, 0.05])[0]
        done = epochs if status == "completed" else rng.randint(1, max(1, epochs - 1))
        while True:
            run_id = f"{rng.getrandbits(32):08x}"
            if run_id not in taken:
                taken.add(run_id)
                break
        path = root / name / run_id
        path.mkdir(parents=True)
        rows = [_epoch_row(rng, e, epochs, has_val) for e in range(1, done + 1)]
        classes = FASHION if dataset == "fashion_mnist" else DIGITS
        created = now - rng.uniform(0, 90 * 86400)
        summary = _summary(
            rng, run_id, name, rows, classes, seed_k, created, run_group, overrides, status
        )
        (path / "spec.toml").write_text(tomli_w.dumps(raw), encoding="utf-8")
        (path / "summary.json").write_text(
            json.dumps(summary, indent=1, sort_keys=True) + "\n", encoding="utf-8"
        )
        (path / "metrics.jsonl").write_text(
            "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows), encoding="utf-8"
        )
        env = {"python": "3.11.7", "torch": "2.5.1", "device": "cuda:0", "seed": seed_k}
        (path / "env.json").write_text(json.dumps(env, indent=1), encoding="utf-8")
        if rng.random() < 0.01:  # damaged: a torn summary, or none at all
            if rng.random() < 0.5:
                (path / "summary.json").write_text('{"id": "' + run_id[:4], encoding="utf-8")
            else:
                (path / "summary.json").unlink()
        ids.append(run_id)
    return ids


def _env(tree: Path, runs_dir: Path) -> dict[str, str]:
    env = {**os.environ, "MNIST_TUI_RUNS": str(runs_dir), "COLUMNS": "120"}
    env["PYTHONPATH"] = str(tree)
    env.pop("MNIST_TUI_EXPERIMENTS", None)
    return env


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def time_command(
    tree: Path, runs_dir: Path, args: list[str], repeats: int
) -> tuple[float, float, float, int]:
    """(first run's seconds, median wall seconds of the next `repeats`, their median CPU
    seconds, exit status). CPU time hardly depends on what else the machine runs."""
    cmd = [sys.executable, "-m", "mnist_tui", *args]
    times, cpus = [], []
    rc = 0
    for _ in range(repeats + 1):
        t0, c0 = time.perf_counter(), _children_cpu()
        proc = subprocess.run(cmd, cwd=tree, env=_env(tree, runs_dir), capture_output=True)
        times.append(time.perf_counter() - t0)
        cpus.append(_children_cpu() - c0)
        rc = rc or proc.returncode
        if proc.returncode and "Traceback" in proc.stderr.decode(errors="replace"):
            print(proc.stderr.decode(errors="replace")[-2000:], file=sys.stderr)
    return times[0], statistics.median(times[1:]), statistics.median(cpus[1:]), rc


def console(tree: Path, runs_dir: Path, idle: float) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", CONSOLE, str(runs_dir), str(idle)],
        cwd=tree,
        env=_env(tree, runs_dir),
        capture_output=True,
        text=True,
        timeout=600,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line[len("RESULT ") :])
            return result
    print(proc.stdout[-2000:], proc.stderr[-3000:], file=sys.stderr)
    return {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 10_000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--idle", type=float, default=10.0, help="seconds of idle console")
    ap.add_argument("--tree", type=Path, default=ROOT, help="checkout whose mnist_tui runs")
    ap.add_argument("--keep", type=Path, default=None, help="build the stores here, keep them")
    args = ap.parse_args()
    tree = args.tree.resolve()
    sys.path.insert(0, str(tree))
    import mnist_tui

    if not Path(mnist_tui.__file__).resolve().is_relative_to(tree):
        sys.exit(f"mnist_tui comes from {mnist_tui.__file__}, not from {tree}")
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "mnist_tui")], check=True)
    work = args.keep or Path(tempfile.mkdtemp(prefix="store-scale-"))
    rows: dict[str, dict[int, str]] = {}
    values: dict[str, dict[int, float]] = {}

    def put(label: str, size: int, value: float, text: str) -> None:
        rows.setdefault(label, {})[size] = text
        values.setdefault(label, {})[size] = value

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True, text=True
    ).stdout.strip()
    print(
        f"tree {tree} ({commit or '?'}) | python {sys.version.split()[0]} | "
        f"{os.cpu_count()} CPUs | median of {args.repeats} after one warm-up"
    )
    for size in args.sizes:
        store = work / f"runs-{size}"
        if store.exists() and args.keep is None:
            shutil.rmtree(store)
        t0 = time.perf_counter()
        if not store.exists():
            ids = build_store(store, size, tree / "experiments")
        else:
            ids = sorted(p.name for p in store.glob("*/*") if p.is_dir())
        du = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
        print(
            f"store of {size} runs: built in {time.perf_counter() - t0:.1f}s, "
            f"{du / 1e6:.1f} MB, {store}"
        )
        show_id = ids[len(ids) // 2]
        commands = [
            ("runs", ["runs"]),
            ("runs --json", ["runs", "--json"]),
            ("report", ["report"]),
            ("list", ["list"]),
            ("show RUN", ["show", show_id]),
        ]
        for label, cmd in commands:
            first, med, cpu, rc = time_command(tree, store, cmd, args.repeats)
            note = f" (exit {rc})" if rc else ""
            put(label, size, med, f"{med:.3f}{note}")
            put(f"{label}  [CPU s]", size, cpu, f"{cpu:.3f}")
            if label == "runs":
                put("runs, first on this store", size, first, f"{first:.3f}")
        screens, screen_cpus, all_read = [], [], []
        idle_cpu = None
        for i in range(args.repeats):
            last = i == args.repeats - 1
            res = console(tree, store, args.idle if last else 0.0)
            if "first_screen_s" in res:
                screens.append(res["first_screen_s"])
                screen_cpus.append(res["first_screen_cpu"])
            if "all_read_s" in res:
                all_read.append(res["all_read_s"])
            if last and "idle_cpu" in res:
                idle_cpu = res["idle_cpu"]
        if screens:
            med = statistics.median(screens)
            put("console first screen", size, med, f"{med:.3f}")
            cpu = statistics.median(screen_cpus)
            put("console first screen  [CPU s]", size, cpu, f"{cpu:.3f}")
        if all_read:
            med = statistics.median(all_read)
            put("console, every run shown", size, med, f"{med:.3f}")
        if idle_cpu is not None:
            put(f"console idle CPU ({args.idle:.0f}s)", size, idle_cpu, f"{100 * idle_cpu:.1f}%")
    lo, hi = min(args.sizes), max(args.sizes)
    print()
    print(f"{'':<32}" + "".join(f"{s:>12,}" for s in args.sizes) + f"{'ratio':>9}")
    for label, by_size in rows.items():
        ratio = ""
        v = values[label]
        if lo in v and hi in v and v[lo] > 0:
            ratio = f"{v[hi] / v[lo]:.2f}"
        cells = "".join(f"{by_size.get(s, '—'):>12}" for s in args.sizes)
        print(f"{label:<32}{cells}{ratio:>9}")
    load = os.getloadavg()
    print(
        "\nwall seconds unless marked; [CPU s]: the process's own CPU seconds (user + system),"
        " which other load on the machine hardly changes; idle CPU is the console process's"
        f" CPU time / wall time. Load average at the end: {load[0]:.1f} {load[1]:.1f}"
    )


if __name__ == "__main__":
    main()
