"""Input latency of the console while a run trains on the CPU.

Starts the app headless (Textual's pilot) with one real queued run training in its
child process, then presses keys that move the cursor and measures, for each key, the
time until the app has processed it and refreshed. Prints median, p95 and max.

    python benchmarks/tui_latency.py --data-dir ../data --presses 200
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from mnist_tui.runs.store import RunStore
from mnist_tui.tui.app import MnistTuiApp


async def measure(data_dir: Path | None, presses: int, experiment: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        app = MnistTuiApp(data_dir=data_dir, runs_dir=Path(tmp), device="cpu")
        store = RunStore(Path(tmp))
        async with app.run_test(size=(120, 40)) as pilot:
            while not app.main.loaded:
                await pilot.pause(0.1)
            table = app.main.grid("experiments")
            table.focus()
            table.move_cursor(row=table.get_row_index(experiment))
            await pilot.press("a")
            await pilot.pause()
            await pilot.press("enter")  # no overrides: the experiment as defined
            # wait until the child is really training (first epoch under way)
            while not any(r.status == "running" for r in store.runs()):
                await pilot.pause(0.2)
            await pilot.pause(3.0)
            idle, busy = [], []
            for i in range(presses):
                key = "down" if i % 2 == 0 else "up"
                t0 = time.perf_counter()
                await pilot.press(key)
                await pilot.pause()
                busy.append(time.perf_counter() - t0)
                await asyncio.sleep(0.02)
            run = store.runs()[0]
            print(
                f"while {run.experiment} trained on the CPU in a child process "
                f"(status {run.status}, epochs done {run.summary.get('epochs_done', 0)}):"
            )
            report("key -> processed+refreshed", busy)
            app.cancel_run(run.id)
            while app.queue.entries:
                await pilot.pause(0.3)
            for i in range(presses):
                t0 = time.perf_counter()
                await pilot.press("down" if i % 2 == 0 else "up")
                await pilot.pause()
                idle.append(time.perf_counter() - t0)
            print("with nothing training:")
            report("key -> processed+refreshed", idle)


def report(label: str, xs: list[float]) -> None:
    xs_ms = sorted(x * 1000 for x in xs)
    p95 = xs_ms[int(0.95 * (len(xs_ms) - 1))]
    print(
        f"  {label}: median {statistics.median(xs_ms):.1f} ms, p95 {p95:.1f} ms, "
        f"max {xs_ms[-1]:.1f} ms over {len(xs_ms)} presses"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--presses", type=int, default=200)
    p.add_argument("--experiment", default="lenet5")
    args = p.parse_args()
    asyncio.run(measure(args.data_dir, args.presses, args.experiment))


if __name__ == "__main__":
    main()
