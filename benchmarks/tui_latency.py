"""Input latency of the console while a run trains on the CPU.

Starts a real training run in a child process (`mnist-tui run`, into a temporary run
store), opens the console headless (Textual's pilot) on that store, and presses keys
that move the cursor, first on the runs table, then on the live run's view (which tails
the run's files and redraws its curves). For each key it measures the time until the app
has processed it and refreshed; on the live run's view it also measures how late a 10 ms
timer fires on the event loop (anything that blocks the loop shows up there). Then the
table again with nothing training. Prints median, p95 and max.

    python benchmarks/tui_latency.py --data-dir ../data --presses 200
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from textual.pilot import Pilot

from mnist_tui.runs.store import RunStore
from mnist_tui.tui.app import MnistTuiApp


def start_training(runs: Path, data_dir: Path | None, experiment: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "mnist_tui", "run", experiment, "--runs-dir", str(runs)]
    cmd += ["--device", "cpu", "-q", "-S", "train.epochs=200"]
    if data_dir is not None:
        cmd += ["--data-dir", str(data_dir)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def presses(pilot: Pilot[None], n: int, keys: tuple[str, str]) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        await pilot.press(keys[i % 2])
        await pilot.pause()
        out.append(time.perf_counter() - t0)
        await asyncio.sleep(0.02)
    return out


async def loop_lag(seconds: float) -> list[float]:
    """How late a 10 ms sleep wakes up, over `seconds`: the event loop's blocked time."""
    loop = asyncio.get_running_loop()
    out = []
    end = loop.time() + seconds
    while loop.time() < end:
        t0 = loop.time()
        await asyncio.sleep(0.01)
        out.append(max(0.0, loop.time() - t0 - 0.01))
    return out


async def measure(data_dir: Path | None, n: int, experiment: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp)
        store = RunStore(runs)
        child = start_training(runs, data_dir, experiment)
        try:
            while not any(r.summary.get("epochs_done", 0) >= 1 for r in store.runs()):
                if child.poll() is not None:
                    raise SystemExit(f"the training run ended early (exit {child.returncode})")
                time.sleep(0.5)
            app = MnistTuiApp(data_dir=data_dir, runs_dir=runs, device="cpu")
            async with app.run_test(size=(120, 40)) as pilot:
                while not app.main.loaded:
                    await pilot.pause(0.1)
                await pilot.press("2")
                await pilot.pause(1.0)
                table_busy = await presses(pilot, n, ("down", "up"))
                await pilot.press("enter")  # the live run's view: tailing, redrawing curves
                await pilot.pause(2.0)
                run_lag = await loop_lag(15.0)
                run = store.runs()[0]
                print(
                    f"while {run.experiment} trained on the CPU in a child process "
                    f"(status {run.status}, epochs done {run.summary.get('epochs_done', 0)}):"
                )
                report("runs table, key -> processed+refreshed", table_busy)
                report("live run view, event-loop lag of a 10 ms timer", run_lag, "ticks")
                child.terminate()
                child.wait(timeout=60)
                await pilot.press("escape")
                await pilot.pause(1.0)
                idle = await presses(pilot, n, ("down", "up"))
                print("with nothing training:")
                report("runs table, key -> processed+refreshed", idle)
        finally:
            if child.poll() is None:
                child.terminate()
                child.wait(timeout=60)


def report(label: str, xs: list[float], what: str = "presses") -> None:
    xs_ms = sorted(x * 1000 for x in xs)
    p95 = xs_ms[int(0.95 * (len(xs_ms) - 1))]
    print(
        f"  {label}: median {statistics.median(xs_ms):.1f} ms, p95 {p95:.1f} ms, "
        f"max {xs_ms[-1]:.1f} ms over {len(xs_ms)} {what}"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data-dir", type=Path, default=os.environ.get("MNIST_TUI_DATA"))
    p.add_argument("--presses", type=int, default=200)
    p.add_argument("--experiment", default="fnn1")
    args = p.parse_args()
    asyncio.run(measure(args.data_dir, args.presses, args.experiment))


if __name__ == "__main__":
    main()
