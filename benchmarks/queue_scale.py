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
sys.path.insert(0, str(ROOT))

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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--claims", type=int, default=2000)
    ap.add_argument("--dir", type=Path, default=None, help="where to build (default: /tmp)")
    ap.add_argument("--queued", type=float, default=0.01, help="share of the runs queued")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="queue-scale-", dir=args.dir))
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
