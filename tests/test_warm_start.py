"""Warm start: runs forked from a slot's warm parent train exactly as cold child processes do.

The parent (cli/warm_slot.py) is driven through the worker's side of it
(runs/warm_pool.py), as the local launcher drives it; the runs are queued with the CLI.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mnist_tui.runs import claim as claims
from mnist_tui.runs import scheduler
from mnist_tui.runs.record import RunInfo
from mnist_tui.runs.store import RunStore
from mnist_tui.runs.warm_pool import WarmChild, WarmParent

from .conftest import EXPERIMENTS

pytestmark = pytest.mark.realdata
TINY = ["-S", "data.subset=1000", "-S", "data.test_subset=500", "--epochs", "1"]
# wall-clock figures differ between any two runs
TIMED = ("seconds", "train_seconds", "images_per_s")


@pytest.fixture
def env(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    cache = tmp_path_factory.getbasetemp() / "warm-cache"
    return {
        **os.environ,
        "MNIST_TUI_DATA": str(real_data),
        "MNIST_TUI_CACHE": str(cache),
        "MNIST_TUI_EXPERIMENTS": str(EXPERIMENTS),
        "PYTHONUNBUFFERED": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "OMP_NUM_THREADS": "1",
    }


@pytest.fixture
def parent(env: dict[str, str]) -> Iterator[WarmParent]:
    warm = WarmParent(env, ["mnist"], None)
    deadline = time.monotonic() + 300
    while not warm.usable() and not warm.dead and time.monotonic() < deadline:
        warm.pump(0.5)
    assert warm.usable(), "the warm parent never came up"
    yield warm
    warm.close()


def queue(env: dict[str, str], store: RunStore, *args: str) -> list[RunInfo]:
    before = {r.id for r in store.runs()}
    out = subprocess.run(
        [sys.executable, "-m", "mnist_tui", "queue", "add", *args, "--no-start-worker",
         "--runs-dir", str(store.root)],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return [r for r in store.runs() if r.id not in before]


def train_args(info: RunInfo) -> list[str]:
    return ["train-run", str(info.path), "--device", "cpu", "--threads", "1"]


def title(info: RunInfo) -> list[str]:
    return [sys.executable, "-m", "mnist_tui", *train_args(info)]


def fork(parent: WarmParent, info: RunInfo) -> WarmChild:
    child = parent.fork(train_args(info), info.path / "log.txt", title(info))
    assert child is not None, "the warm parent refused a run"
    return child


def cold(env: dict[str, str], info: RunInfo) -> int:
    with (info.path / "log.txt").open("ab") as log:
        return subprocess.run(
            [sys.executable, "-m", "mnist_tui", *train_args(info)],
            env=env, stdout=log, stderr=subprocess.STDOUT, timeout=600, check=False,
        ).returncode  # fmt: skip


def metrics(info: RunInfo) -> list[dict[str, Any]]:
    rows = [json.loads(x) for x in (info.path / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in TIMED} for row in rows]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def status(store: RunStore, info: RunInfo) -> str:
    fresh = store.read_run(info.experiment, info.id)
    assert fresh is not None
    return str(fresh.summary.get("status"))


def test_a_warm_run_and_a_cold_run_of_one_seed_give_identical_metrics(
    env: dict[str, str], parent: WarmParent, tmp_path: Path
) -> None:
    store = RunStore(tmp_path / "store")
    warm_run, cold_run = queue(env, store, "logreg", "logreg", *TINY)
    assert fork(parent, warm_run).wait(timeout=600) == 0, (warm_run.path / "log.txt").read_text()
    assert cold(env, cold_run) == 0, (cold_run.path / "log.txt").read_text()
    assert status(store, warm_run) == status(store, cold_run) == "completed"
    assert metrics(warm_run) == metrics(cold_run)
    assert metrics(warm_run)[0]["test_confusion"]  # something was really compared
    # the forked child wrote its own env.json, with its own pid and the run's command
    env_json = json.loads((warm_run.path / "env.json").read_text())
    assert env_json["threads"] == 1
    assert env_json["command"][1:3] == ["train-run", str(warm_run.path)]


def test_a_crashing_warm_run_leaves_the_next_one_unaffected(
    env: dict[str, str], parent: WarmParent, tmp_path: Path
) -> None:
    store = RunStore(tmp_path / "store")
    first, again = queue(env, store, "logreg", "logreg", *TINY)
    (doomed,) = queue(env, store, "fnn1", "-S", "data.subset=20000", "--epochs", "5")
    assert fork(parent, first).wait(timeout=600) == 0
    parent_rss = rss_kib(parent.proc.pid)

    crash = fork(parent, doomed)
    deadline = time.monotonic() + 300
    while status(store, doomed) != "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert crash.poll() is None, "the run ended before it could crash"
    os.kill(crash.pid, signal.SIGSEGV)  # a hard crash: no handler, no clean-up
    assert crash.wait(timeout=60) == -signal.SIGSEGV

    # the parent is the same process, still serving, and grew no memory from the runs
    assert parent.usable() and parent.proc.poll() is None
    assert rss_kib(parent.proc.pid) - parent_rss < 20 * 1024
    assert fork(parent, again).wait(timeout=600) == 0, (again.path / "log.txt").read_text()
    # same seed, same data: the run after the crash matches the run before it exactly,
    # so no RNG state, weights or data leaked through the parent
    assert metrics(again) == metrics(first)


def test_cancel_stops_a_warm_forked_trainer_verified_by_its_command_line(
    env: dict[str, str], parent: WarmParent, tmp_path: Path
) -> None:
    store = RunStore(tmp_path / "store")
    (run,) = queue(env, store, "fnn1", "-S", "data.subset=20000", "--epochs", "20")
    held = claims.claim(run.path, "worker")
    child = fork(parent, run)
    claims.hand_over(run.path, held, child.pid, "train", " ".join(title(run)))
    deadline = time.monotonic() + 300
    while status(store, run) != "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    # the child shows the train-run command of its run, not its parent's command line
    argv = Path(f"/proc/{child.pid}/cmdline").read_bytes().split(b"\0")
    argv = [a for a in argv if a]
    assert [a.decode() for a in argv] == title(run)
    fresh = store.read_run(run.experiment, run.id)
    assert fresh is not None
    assert scheduler.cancel(store, fresh) == "asked to stop"
    code = child.wait(timeout=120)
    assert code in (0, 1), (run.path / "log.txt").read_text()
    assert status(store, run) == "killed"
    assert parent.usable()
