"""The queue and its worker, driven as a user drives them: CLI processes, no console.

Each test uses its own run store and stops every worker it started.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mnist_tui.runs import claim as claims
from mnist_tui.runs import scheduler
from mnist_tui.runs.record import RunInfo
from mnist_tui.runs.store import RunStore
from mnist_tui.runs.worker import stop_worker, worker_info

from .conftest import EXPERIMENTS

TINY = ["-S", "data.subset=1000", "-S", "data.test_subset=500", "--epochs", "1"]
pytestmark = pytest.mark.realdata


@pytest.fixture
def env(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    cache = tmp_path_factory.getbasetemp() / "scheduler-cache"  # decoded data, shared
    return {
        **os.environ,
        "MNIST_TUI_DATA": str(real_data),
        "MNIST_TUI_CACHE": str(cache),
        "MNIST_TUI_EXPERIMENTS": str(EXPERIMENTS),
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RunStore]:
    s = RunStore(tmp_path / "store")
    yield s
    with_timeout_stop(s)


def with_timeout_stop(store: RunStore) -> None:
    """Stop any worker the test left behind, and kill it if it will not stop."""
    live = worker_info(store)
    if live is None:
        return
    try:
        stop_worker(store, timeout=30)
    except Exception:
        os.kill(live.pid, signal.SIGKILL)


def cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mnist_tui", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def statuses(store: RunStore) -> list[str]:
    """Statuses of runs nobody holds any more (the worker has reaped them)."""
    return [r.status if not (r.path / claims.CLAIM).exists() else "held" for r in store.runs()]


def starting_lines(info: RunInfo) -> int:
    text = (info.path / "log.txt").read_text(encoding="utf-8")
    return sum(1 for line in text.splitlines() if " starting on " in line)


def test_queue_add_trains_three_runs_with_no_console(env: dict[str, str], store: RunStore) -> None:
    out = cli(env, "queue", "add", "fnn1", "logreg", "fnn1", *TINY, "--runs-dir", str(store.root))
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("queued ") == 3 and "started a worker" in out.stdout
    wait_for(lambda: statuses(store) == ["completed"] * 3, 240, "three completed runs")
    for info in store.runs():
        assert starting_lines(info) == 1
        assert [h["purpose"] for h in claims.history(info.path)] == ["train"]
        assert not (info.path / claims.CLAIM).exists()
        env_json = json.loads((info.path / "env.json").read_text())
        assert env_json["device"].startswith("cpu") and env_json["slot"].startswith("cpu#")
        assert info.summary["overrides"] == [
            "data.subset=1000",
            "data.test_subset=500",
            "train.epochs=1",
        ]
    ls = cli(env, "queue", "ls", "--json", "--runs-dir", str(store.root))
    assert json.loads(ls.stdout)["runs"] == []


def test_two_workers_and_two_consoles_start_each_run_exactly_once(
    env: dict[str, str], store: RunStore
) -> None:
    # five queued runs, then two workers and two "consoles" (ensure_worker) at once
    out = cli(
        env, "queue", "add", "logreg", "--repeats", "5", *TINY, "--no-start-worker",
        "--runs-dir", str(store.root),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert statuses(store) == ["queued"] * 5
    args = ["worker", "--idle-exit", "3", "--per-device", "2", "--runs-dir", str(store.root)]
    workers = [
        subprocess.Popen([sys.executable, "-m", "mnist_tui", *args], env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(2)
    ]  # fmt: skip
    consoles = [
        subprocess.Popen([sys.executable, "-c", (
            "import sys; from mnist_tui.runs.store import RunStore; "
            "from mnist_tui.runs.worker import ensure_worker; "
            f"ensure_worker(RunStore({str(store.root)!r}))")], env=env)
        for _ in range(2)
    ]  # fmt: skip
    for c in consoles:
        c.wait(timeout=60)
    wait_for(lambda: statuses(store) == ["completed"] * 5, 300, "five completed runs")
    wait_for(lambda: worker_info(store) is None, 60, "the workers to exit when idle")
    outputs = [w.communicate(timeout=60)[0] for w in workers]
    for info in store.runs():
        assert starting_lines(info) == 1, info.id
        history = claims.history(info.path)
        assert len(history) == 1 and history[0]["ended"].startswith("completed"), history
        assert len(info.metrics()) == 1
    # one process served the store; a second worker said so and stepped aside
    assert sum("already serves" in o for o in outputs) >= 1, outputs


def _race_claim(run: str, barrier: object, results: object, done: object) -> None:
    barrier.wait()  # type: ignore[attr-defined]
    try:
        claims.claim(Path(run), "race")
        results.put("won")  # type: ignore[attr-defined]
    except claims.ClaimedError as exc:
        results.put(f"lost: {exc}")  # type: ignore[attr-defined]
    # stay alive until everyone has tried: a dead holder's claim may rightly be broken
    done.wait()  # type: ignore[attr-defined]


@pytest.mark.parametrize("contenders", [2, 6])
def test_a_run_is_claimed_by_exactly_one_of_many_processes(tmp_path: Path, contenders: int) -> None:
    run = tmp_path / "run"
    run.mkdir()
    ctx = multiprocessing.get_context("fork")
    barrier, done, results = ctx.Barrier(contenders), ctx.Barrier(contenders), ctx.Queue()
    procs = [
        ctx.Process(target=_race_claim, args=(str(run), barrier, results, done))
        for _ in range(contenders)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=30)
    outcomes = [results.get(timeout=5) for _ in procs]
    assert outcomes.count("won") == 1, outcomes
    assert all("is held by race pid" in o for o in outcomes if o != "won")


def test_a_dead_holders_claim_is_broken_once(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    stale = claims.Holder(int(dead.stdout), None, claims.Holder.me("x").host, "worker", 0.0)
    (run / claims.CLAIM).write_text(json.dumps(stale.__dict__))
    mine = claims.claim(run, "resume")
    assert mine.pid == os.getpid()
    assert claims.history(run)[0]["ended"] == "holder vanished"
    with pytest.raises(claims.ClaimedError):
        claims.claim(run, "resume")  # a live holder (this process) is never broken


def test_a_queued_run_trains_its_own_spec_not_the_edited_file(
    env: dict[str, str], store: RunStore, tmp_path: Path
) -> None:
    exps = tmp_path / "exps"
    shutil.copytree(EXPERIMENTS, exps)
    shutil.copy(EXPERIMENTS / "fnn1.toml", exps / "mine.toml")
    env = {**env, "MNIST_TUI_EXPERIMENTS": str(exps)}
    out = cli(env, "queue", "add", "mine", *TINY, "--no-start-worker",
              "--runs-dir", str(store.root))  # fmt: skip
    assert out.returncode == 0, out.stderr
    (queued,) = store.runs()
    queued_spec = (queued.path / "spec.toml").read_text()
    # while it waits, the file is rewritten into another model altogether
    (exps / "mine.toml").write_text('[data]\ndataset = "fashion_mnist"\n[model]\nname = "logreg"\n')
    out = cli(env, "worker", "--idle-exit", "1", "--runs-dir", str(store.root), timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    (done,) = store.runs()
    assert done.status == "completed"
    assert (done.path / "spec.toml").read_text() == queued_spec
    assert done.summary["parameters"] == 13_434  # fnn1's MLP, not logreg's 7,850


def test_two_cpu_slots_train_two_runs_at_once_with_half_the_cores_each(
    env: dict[str, str], store: RunStore
) -> None:
    out = cli(env, "queue", "add", "fnn1", "--repeats", "2", "-S", "data.subset=6000",
              "--epochs", "2", "--no-start-worker", "--runs-dir", str(store.root))  # fmt: skip
    assert out.returncode == 0, out.stderr
    out = cli(env, "worker", "--per-device", "2", "--idle-exit", "1",
              "--runs-dir", str(store.root), timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    runs = store.runs()
    assert [r.status for r in runs] == ["completed", "completed"]
    cores = len(os.sched_getaffinity(0))
    for r in runs:
        env_json = json.loads((r.path / "env.json").read_text())
        assert env_json["threads"] == max(1, cores // 2)
    # two children alive at once: each claim was handed to its child before either ended
    spans = [(h["claimed_at"], h["released_at"]) for r in runs for h in claims.history(r.path)]
    assert len(spans) == 2
    (a0, a1), (b0, b1) = spans
    assert max(a0, b0) < min(a1, b1), f"the two runs did not overlap: {spans}"


def test_worker_killed_mid_run_then_next_worker_interrupts_it_and_resume_finishes(
    env: dict[str, str], store: RunStore
) -> None:
    # many short epochs: the kill lands mid-run, the resume has epochs left to train
    out = cli(env, "queue", "add", "fnn1", "logreg", "-S", "data.subset=4000",
              "-S", "data.test_subset=500", "--epochs", "12",
              "--no-start-worker", "--runs-dir", str(store.root))  # fmt: skip
    assert out.returncode == 0, out.stderr
    first, second = scheduler.queue_order(store)
    worker = subprocess.Popen(
        [sys.executable, "-m", "mnist_tui", "worker", "--idle-exit", "30",
         "--runs-dir", str(store.root)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip

    def one_epoch_done() -> bool:
        info = store.read_run(first.experiment, first.id)
        return info is not None and (info.summary.get("epochs_done") or 0) >= 1

    wait_for(one_epoch_done, 180, "the first run's first epoch")
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)
    # the child dies with its worker: nobody trains the run any more
    wait_for(lambda: store.read_run(first.experiment, first.id).status == "interrupted", 30,
             "the orphaned run to stop")  # fmt: skip
    out = cli(env, "worker", "--idle-exit", "1", "--runs-dir", str(store.root), timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    killed = store.read_run(first.experiment, first.id)
    assert killed is not None and killed.summary["status"] == "interrupted"
    assert "resume" in killed.summary["reason"] and "vanished" in killed.summary["reason"]
    nxt = store.read_run(second.experiment, second.id)
    assert nxt is not None and nxt.status == "completed"
    out = cli(env, "resume", first.id, "-q", "--runs-dir", str(store.root), timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    done = store.read_run(first.experiment, first.id)
    assert done is not None and done.status == "completed"
    assert [m["epoch"] for m in done.metrics()] == list(range(1, 13))


def test_two_resumes_at_once_one_trains_the_other_names_the_holder(
    env: dict[str, str], store: RunStore
) -> None:
    out = cli(env, "run", "fnn1", "-S", "data.subset=3000", "-S", "data.test_subset=500",
              "--epochs", "3", "-q",
              "--runs-dir", str(store.root), "--seed", "0")  # fmt: skip
    assert out.returncode == 0, out.stderr
    (run,) = store.runs()
    # make it a run that stopped after epoch 1: keep the first metrics row and checkpoint
    rows = run.metrics()
    handle = store.handle(run)
    handle.rewrite_metrics(rows[:1])
    handle.update(status="killed", epochs_done=1)
    import torch

    state = torch.load(run.path / "last.pt", weights_only=True)
    state["epoch"] = 1
    state["history"] = state["history"][:1]
    torch.save(state, run.path / "last.pt")
    procs = [
        subprocess.Popen([sys.executable, "-m", "mnist_tui", "resume", run.id, "-q",
                          "--runs-dir", str(store.root)],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]  # fmt: skip
    results = [p.communicate(timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes[0] == 0 and codes[1] != 0, results
    loser = next(err for (_, err), p in zip(results, procs, strict=True) if p.returncode)
    assert "held by resume pid" in loser or "is completed now" in loser, loser
    assert "Traceback" not in loser
    done = store.read_run(run.experiment, run.id)
    assert done is not None and done.status == "completed"
    assert [m["epoch"] for m in done.metrics()] == [1, 2, 3]


def test_queue_operations_order_pause_and_cancel(env: dict[str, str], store: RunStore) -> None:
    out = cli(env, "queue", "add", "logreg", "fnn1", "fnn2", *TINY, "--no-start-worker",
              "--runs-dir", str(store.root))  # fmt: skip
    assert out.returncode == 0, out.stderr
    a, b, c = scheduler.queue_order(store)
    assert (a.experiment, b.experiment, c.experiment) == ("logreg", "fnn1", "fnn2")
    assert cli(env, "queue", "mv", c.id, "top", "--runs-dir", str(store.root)).returncode == 0
    assert [r.id for r in scheduler.queue_order(store)] == [c.id, a.id, b.id]
    assert cli(env, "queue", "mv", a.id, "down", "--runs-dir", str(store.root)).returncode == 0
    assert [r.id for r in scheduler.queue_order(store)] == [c.id, b.id, a.id]
    bad = cli(env, "queue", "mv", a.id, "dwn", "--runs-dir", str(store.root))
    assert bad.returncode == 2 and "'down'" in bad.stderr and "did you mean" in bad.stderr.lower()
    assert cli(env, "queue", "rm", b.id, "--runs-dir", str(store.root)).returncode == 0
    # a queued run that is cancelled is removed (to the trash), not kept as "killed"
    assert store.read_run(b.experiment, b.id) is None
    assert (store.root / ".trash" / b.experiment / b.id).is_dir()
    assert cli(env, "queue", "pause", "--runs-dir", str(store.root)).returncode == 0
    out = cli(env, "worker", "--idle-exit", "1", "--runs-dir", str(store.root))
    assert out.returncode == 0
    assert [r.status for r in scheduler.queue_order(store)] == ["queued", "queued"]  # paused
    assert cli(env, "queue", "resume", "--no-start-worker",
               "--runs-dir", str(store.root)).returncode == 0  # fmt: skip
    out = cli(env, "worker", "--idle-exit", "1", "--runs-dir", str(store.root), timeout=240)
    assert out.returncode == 0, out.stdout
    assert sorted(statuses(store)) == ["completed", "completed"]
    # the run that trained second was the one moved to the top
    first = min(
        (r for r in store.runs() if r.status == "completed"), key=lambda r: r.summary["started"]
    )
    assert first.id == c.id


def test_a_failed_child_stores_the_real_reason(env: dict[str, str], store: RunStore,
                                               tmp_path: Path) -> None:  # fmt: skip
    out = cli(env, "queue", "add", "fnn1", *TINY, "--no-start-worker",
              "--runs-dir", str(store.root))  # fmt: skip
    assert out.returncode == 0
    empty = tmp_path / "nodata"
    empty.mkdir()
    out = cli({**env, "MNIST_TUI_DATA": str(empty), "MNIST_TUI_CACHE": str(tmp_path / "c")},
              "worker", "--idle-exit", "1", "--runs-dir", str(store.root))  # fmt: skip
    assert out.returncode == 0
    (run,) = store.runs()
    assert run.status == "failed"
    assert "FashionMNIST/raw" in run.summary["reason"], run.summary["reason"]
    assert "exit code" not in run.summary["reason"]
