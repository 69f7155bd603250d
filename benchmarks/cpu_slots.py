"""CPU oversubscription: epoch time of concurrent CPU runs, threads left to torch vs split.

    python benchmarks/cpu_slots.py [--experiment fnn1] [--epochs 3] [--repeats 3]

Cases, each repeated, median epoch time (training part) per case, side by side:
  alone          one run, torch's default threads (every core)
  beside-busy    one run with every core's thread, beside one busy process (a spinning core)
  beside-busy-1  the same with one thread fewer than cores (what the worker gives it)
  two-default    two runs at once, each with torch's default threads (the old console)
  two-worker     two runs at once through `mnist-tui worker --per-device 2` (cores / 2 each)
Needs the real datasets (MNIST_TUI_DATA). Nothing else should be running.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CORES = len(os.sched_getaffinity(0))


def mnist_tui(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "mnist_tui", *args],
        env=env or os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def epoch_seconds(store: Path) -> list[float]:
    out = []
    for metrics in store.glob("*/*/metrics.jsonl"):
        for line in metrics.read_text().splitlines():
            out.append(json.loads(line)["train_seconds"])
    return out


def spinner() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def case(name: str, exp: str, epochs: int, tmp: Path) -> list[float]:
    store = tmp / name
    common = [exp, "--epochs", str(epochs), "--device", "cpu", "-q", "--runs-dir", str(store)]
    busy = None
    if name.startswith("beside-busy"):
        busy = spinner()
        time.sleep(0.5)
    try:
        if name == "alone":
            procs = [mnist_tui("run", *common)]
        elif name == "beside-busy":
            procs = [mnist_tui("run", *common, "--threads", str(CORES))]
        elif name == "beside-busy-1":
            procs = [mnist_tui("run", *common, "--threads", str(max(1, CORES - 1)))]
        elif name == "two-default":
            procs = [mnist_tui("run", *common, "--seed", str(s)) for s in (0, 1)]
        else:  # two-worker
            add = mnist_tui(
                "queue", "add", exp, "--repeats", "2", "--epochs", str(epochs),
                "--no-start-worker", "--runs-dir", str(store),
            )  # fmt: skip
            add.wait()
            procs = [
                mnist_tui(
                    "worker", "--per-device", "2", "--idle-exit", "0.5", "--runs-dir", str(store)
                )
            ]
        for p in procs:
            p.wait()
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    return epoch_seconds(store)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", default="fnn1")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    names = ["alone", "beside-busy", "beside-busy-1", "two-default", "two-worker"]
    results: dict[str, list[float]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory() as d:
        for r in range(args.repeats):
            for n in names:
                results[n] += case(n, args.experiment, args.epochs, Path(d) / f"r{r}")
    base = statistics.median(results["alone"])
    print(f"{args.experiment}, {args.epochs} epochs x {args.repeats} repeats, {CORES} cores")
    print(f"{'case':<15} {'epoch s (median)':>17} {'max':>8} {'vs alone':>9}")
    for n in names:
        xs = results[n]
        med = statistics.median(xs)
        print(f"{n:<15} {med:>17.2f} {max(xs):>8.2f} {med / base:>8.1f}x")


if __name__ == "__main__":
    main()
