"""A Ray head that dies mid-run: the runs in flight say why, and the worker ends with one
line, instead of runs left `running` with no reason."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mnist_tui.runs import ray_watch
from mnist_tui.runs.local_launcher import LocalLauncher
from mnist_tui.runs.store import RunStore
from mnist_tui.runs.worker import Worker, WorkerOptions

from .test_ray_address import tcp_server


def _worker(store: RunStore, n: int) -> Any:
    worker = Worker(store, WorkerOptions(devices=("cpu",)), LocalLauncher, log=lambda line: None)
    runs = [store.create("fnn1", "") for _ in range(n)]
    worker.inflight = {h.id: SimpleNamespace(info=h.info()) for h in runs}  # type: ignore[attr-defined]
    return worker


def _idle(conn: Any) -> None:
    time.sleep(5)


@pytest.mark.parametrize("n", [0, 1, 3])
def test_runs_in_flight_say_why_when_the_head_dies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n: int
) -> None:
    monkeypatch.setattr(ray_watch, "INTERVAL", 0.1)
    monkeypatch.setattr(ray_watch, "MISSES", 3)
    store = RunStore(tmp_path)
    worker = _worker(store, n)
    exits: list[int] = []
    with tcp_server(_idle) as port:
        address = f"127.0.0.1:{port}"
        watch = ray_watch.watch_head(worker, address, exit=exits.append)
        time.sleep(1.0)  # the head answers: nothing happens
        assert exits == [] and all(r.status == "running" for r in store.runs())
    deadline = time.monotonic() + 10
    while not exits:
        assert time.monotonic() < deadline, "the dead head was never noticed"
        time.sleep(0.05)
    assert exits == [2] and not watch.thread.is_alive()
    for run in store.runs():
        assert run.status == "interrupted"
        reason = run.summary["reason"]
        assert f"the Ray head at {address} stopped answering" in reason
        assert f"mnist-tui resume {run.id}" in reason


def test_a_head_that_answers_again_in_time_is_not_given_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ray_watch, "INTERVAL", 0.1)
    monkeypatch.setattr(ray_watch, "MISSES", 1000)
    store = RunStore(tmp_path)
    worker = _worker(store, 2)
    exits: list[int] = []
    with tcp_server(_idle) as port:
        watch = ray_watch.watch_head(worker, f"127.0.0.1:{port}", exit=exits.append)
    time.sleep(1.0)  # gone for a while, but fewer misses than it takes
    watch.stop()
    assert exits == [] and all(r.status == "running" for r in store.runs())


@pytest.mark.parametrize("address", [None, "auto", "ray://host:10001"])
def test_nothing_to_watch_without_a_head_address(address: str | None) -> None:
    assert ray_watch.watch_head(SimpleNamespace(inflight={}), address) is None
