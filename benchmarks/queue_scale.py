"""What the queue costs as the store grows: the worker's poll, enqueue, writes, claims.

    python benchmarks/queue_scale.py [--sizes 1000 10000] [--claims 2000] [--dir DIR]

For each size N it builds a store of N runs, 1% of them queued (at least 10; `--queued 1`
for all) and the rest completed (one real `enqueue`, then copies with their own ids and
queue positions, so that building 10,000 does not cost 10,000 enqueues), then prints in
milliseconds (median of 5 after a warm-up):

- queue_order: what a worker with a free slot calls on every poll (0.5 s);
- stored=queued: the same through the index's status filter (`runs(stored=...)`);
- sync: the index's check of the directories alone (one stat per run), nothing changed;
- enqueue: one more run at the end of the queue (it reads the queue to place it);
- update: one summary write by a trainer (summary.json + the index row);
- cancel: a queued run taken off the queue (claim, summary, release).

Then claim throughput (one process claiming and releasing `--claims` fresh runs; two
processes racing for the same runs, each must be won exactly once), and summary writes
per second from 1, 4 and 8 processes at once (trainers reporting progress).
Run it on the file system the store will live on: a local disk and NFS differ a lot.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# --tree DIR: time another checkout's mnist_tui (e.g. the code before a change)
TREE = Path(sys.argv[sys.argv.index("--tree") + 1]) if "--tree" in sys.argv else ROOT
sys.path.insert(0, str(TREE))

from mnist_tui.config.loading import load_experiment  # noqa: E402
from mnist_tui.runs import claim as claims  # noqa: E402
from mnist_tui.runs import scheduler  # noqa: E402
from mnist_tui.runs.store import RunStore  # noqa: E402


def build(root: Path, n: int, share: float = 0.01) -> RunStore:
    store = RunStore(root)
    spec = load_experiment("logreg", ROOT / "experiments")
    first = scheduler.enqueue(store, spec, scheduler.QueueRequest())
    summary = json.loads((first.path / "summary.json").read_text())
    queued = max(10, int(n * share))
    for i in range(1, n):
        rid = f"{i:08x}"
        d = first.path.parent / rid
        d.mkdir()
        shutil.copy(first.path / "spec.toml", d / "spec.toml")
        s = dict(summary, id=rid, queue_position=summary["queue_position"] + i)
        if i >= queued:
            s.update(status="completed", epochs_done=s.get("epochs"), wall_seconds=60.0)
        (d / "summary.json").write_text(json.dumps(s))
    return store


def _updater(root: str, run: str, seconds: float, out: Any) -> None:
    store = RunStore(Path(root))
    info = store.read_run("logreg", run)
    assert info is not None
    handle = store.handle(info)
    n, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        handle.update(step=n)
        n += 1
    out.put(n)


def update_rates(store: RunStore, seconds: float = 5.0) -> None:
    runs = [r.id for r in store.runs("logreg")][:8]
    ctx = multiprocessing.get_context("fork")
    for k in (1, 4, 8):
        out = ctx.Queue()
        procs = [
            ctx.Process(target=_updater, args=(str(store.root), runs[i], seconds, out))
            for i in range(k)
        ]
        for p in procs:
            p.start()
        total = sum(out.get(timeout=120) for _ in procs)
        for p in procs:
            p.join()
        print(f"summary updates, {k} process(es) at once: {total / seconds:,.0f}/s in all")


def timed(fn: Any, repeats: int = 5) -> tuple[float, float]:
    """(first call, median of the next `repeats`), in ms."""
    t = time.perf_counter()
    fn()
    first = (time.perf_counter() - t) * 1e3
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return first, statistics.median(times)


def _race(runs: list[str], barrier: Any, out: Any) -> None:
    barrier.wait()
    won = 0
    t = time.perf_counter()
    for r in runs:
        try:
            h = claims.claim(Path(r), "bench")
        except claims.ClaimedError:
            continue
        won += 1
        claims.hand_over(Path(r), h, os.getpid(), "train")
    out.put((won, time.perf_counter() - t))


def claim_rates(root: Path, n: int) -> None:
    runs = []
    for i in range(n):
        d = root / f"c{i:06d}"
        d.mkdir(parents=True)
        runs.append(d)
    t = time.perf_counter()
    for d in runs:
        h = claims.claim(d, "bench")
        claims.release(d, h, ended="bench")
    one = time.perf_counter() - t
    print(f"claim + release, one process: {n / one:,.0f} runs/s ({one / n * 1e3:.2f} ms each)")
    ctx = multiprocessing.get_context("fork")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_race, args=([str(d) for d in runs], barrier, out)) for _ in "ab"]
    for p in procs:
        p.start()
    results = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    wins = sum(w for w, _ in results)
    slowest = max(s for _, s in results)
    print(
        f"two processes racing for the same {n} runs: {wins} won in all "
        f"({'each once' if wins == n else 'WRONG'}), {n / slowest:,.0f} runs/s settled"
    )


def build_done(root: Path, n: int) -> RunStore:
    """N completed runs, nothing queued: the store an idle worker watches."""
    store = RunStore(root)
    spec = load_experiment("logreg", ROOT / "experiments")
    first = scheduler.enqueue(store, spec, scheduler.QueueRequest())
    store.handle(first).update(status="completed", queue_position=None)
    summary = json.loads((first.path / "summary.json").read_text())
    spec_text = (first.path / "spec.toml").read_text()
    for i in range(1, n):
        rid = f"{i:08x}"
        d = first.path.parent / rid
        d.mkdir()
        (d / "spec.toml").write_text(spec_text)
        (d / "summary.json").write_text(json.dumps(dict(summary, id=rid)))
    return store


def idle_worker_cpu(store: RunStore, seconds: float) -> float:
    """Percent of one core an idle `mnist-tui worker --forever` uses over `seconds`, measured
    once its start (imports, first reconcile, the first full check) is over: the moment its
    CPU time stops growing for two seconds, or after a minute for a worker that never rests
    (the code before the watch checked every run directory on every poll). The periodic
    full checks that fall outside the window are accounted for separately (`full_check`)."""
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(TREE), "MNIST_TUI_WARM_START": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mnist_tui", "worker", "--forever", "--runs-dir", str(store.root)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        cwd=TREE,  # `python -m` looks in the working directory before PYTHONPATH
    )  # fmt: skip

    def cpu() -> float:
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    try:
        time.sleep(2.0)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # started: two quiet seconds in a row
            before = cpu()
            time.sleep(2.0)
            if cpu() - before <= 0.02:
                break
        c0, t0 = cpu(), time.monotonic()
        time.sleep(seconds)
        return 100 * (cpu() - c0) / (time.monotonic() - t0)
    finally:
        proc.terminate()
        proc.wait()


def full_check(store: RunStore) -> tuple[float, float]:
    """(CPU ms of one full check of the run directories with nothing changed, the seconds
    between two of them that an idle worker of this tree waits)."""
    try:
        from mnist_tui.runs.queue_watch import CHECK_BUDGET, RECONCILE
    except ImportError:  # the code before the watch checked the directories every poll
        return timed(store.index.sync)[1], 0.5
    costs = []
    for _ in range(3):
        t = time.process_time()
        store.index.sync()
        costs.append(time.process_time() - t)
    cost = statistics.median(costs)
    return cost * 1e3, max(RECONCILE, cost / CHECK_BUDGET)


def worker_poll(store: RunStore) -> Any:
    """One poll of an idle worker's queue read, as this tree's worker does it."""
    try:
        from mnist_tui.runs.queue_watch import QueueWatch
    except ImportError:  # the code before the watch: every poll read the queue
        return lambda: scheduler.queue_order(store)
    watch = QueueWatch(store)
    return lambda: scheduler.queue_order(store, watch.active())


def scale(base: Path, sizes: list[int], idle: float) -> None:
    """The issue's figures at each size, side by side, with the ratio last/first."""
    spec = load_experiment("logreg", ROOT / "experiments")
    rows: dict[str, list[float]] = {}
    for n in sizes:
        t = time.perf_counter()
        store = build_done(base / f"done{n}", n)
        built = time.perf_counter() - t
        t = time.perf_counter()
        store.index.sync()
        indexed = time.perf_counter() - t
        print(f"  built {n} runs in {built:.0f} s, indexed in {indexed:.1f} s", flush=True)
        rows.setdefault("idle poll (ms)", []).append(timed(worker_poll(store), 9)[1])
        rows.setdefault("idle worker (% core)", []).append(idle_worker_cpu(store, idle))
        check_ms, period = full_check(store)
        rows.setdefault("full check (CPU ms)", []).append(check_ms)
        rows.setdefault("  every (s)", []).append(period)
        rows.setdefault("  average (% core)", []).append(check_ms / 10 / period)
        _, one = timed(lambda s=store: scheduler.enqueue(s, spec, scheduler.QueueRequest()), 9)
        rows.setdefault("enqueue one (ms)", []).append(one)
        t = time.perf_counter()
        for _ in range(1000):
            scheduler.enqueue(store, spec, scheduler.QueueRequest())
        rows.setdefault("enqueue 1,000 (s)", []).append(time.perf_counter() - t)
        shutil.rmtree(store.root, ignore_errors=True)
        print("  " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in rows.items()), flush=True)
    print(f"\n{'runs in store':<22}" + "".join(f"{n:>12,}" for n in sizes) + f"{'ratio':>9}")
    for name, values in rows.items():
        ratio = values[-1] / values[0] if values[0] > 0 else float("inf")
        cells = "".join(f"{v:>12.2f}" for v in values)
        print(f"{name:<22}{cells}{ratio:>8.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tree", type=Path, default=ROOT, help="checkout whose mnist_tui to time")
    ap.add_argument("--scale", action="store_true",
                    help="only the scaling table: idle poll, idle worker CPU (between full "
                    "checks), the periodic full check's cost and period, enqueue, 1,000 "
                    "enqueues at 10 and 10,000 runs (and 100,000 with --big)")  # fmt: skip
    ap.add_argument("--big", action="store_true", help="add the 100,000-run store (minutes)")
    ap.add_argument("--idle", type=float, default=10.0, help="seconds of idle worker measured")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--claims", type=int, default=2000)
    ap.add_argument("--dir", type=Path, default=None, help="where to build (default: /tmp)")
    ap.add_argument("--queued", type=float, default=0.01, help="share of the runs queued")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="queue-scale-", dir=args.dir))
    if args.scale:
        print(f"load average {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores), tree {args.tree}")
        try:
            scale(base, [10, 10_000] + ([100_000] if args.big else []), args.idle)
        finally:
            shutil.rmtree(base, ignore_errors=True)
        return
    try:
        print(f"store under {base}")
        head = ["runs", "queue_order", "(cold)", "stored=queued", "sync", "enqueue", "update"]
        print(" ".join(f"{h:>13}" for h in [*head, "cancel"]))
        store = None
        for n in args.sizes:
            t = time.perf_counter()
            store = build(base / f"s{n}", n, args.queued)
            built = time.perf_counter() - t
            first, warm = timed(lambda s=store: scheduler.queue_order(s))
            _, filtered = timed(lambda s=store: s.runs(stored=("queued",), brief=True))
            _, sync = timed(lambda s=store: s.index.sync())
            one = store.runs("logreg")[-1]
            _, update = timed(lambda s=store, r=one: s.handle(r).update(note_bench=1))
            spec = load_experiment("logreg", ROOT / "experiments")
            _, enq = timed(
                lambda s=store, sp=spec: scheduler.enqueue(s, sp, scheduler.QueueRequest())
            )
            victims = iter(scheduler.queue_order(store))
            _, cancel = timed(lambda s=store, v=victims: scheduler.cancel(s, next(v)))
            row = [warm, first, filtered, sync, enq, update, cancel]
            print(f"{n:>13}" + "".join(f"{v:>14.1f}" for v in row) + f"   (built in {built:.0f} s)")
        claim_rates(base / "claims", args.claims)
        if store is not None:
            update_rates(store)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
