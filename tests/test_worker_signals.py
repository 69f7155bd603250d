"""A worker served inside another process (a test, a notebook) leaves its signal handlers
as it found them: a hang-up ignored for the worker's sake must not outlive it (an ignored
signal is inherited through exec by every program that process starts later)."""

from __future__ import annotations

import signal
from pathlib import Path

from mnist_tui.runs.local_launcher import LocalLauncher
from mnist_tui.runs.store import RunStore
from mnist_tui.runs.worker import Worker, WorkerOptions


def test_the_worker_restores_the_hang_up_and_terminate_handlers(tmp_path: Path) -> None:
    def mine(*_: object) -> None:
        pass

    before = signal.signal(signal.SIGHUP, mine), signal.signal(signal.SIGTERM, mine)
    try:
        options = WorkerOptions(devices=("cpu",), idle_exit=0.0, poll=0.05)
        Worker(RunStore(tmp_path), options, LocalLauncher, log=lambda _: None).run()
        assert signal.getsignal(signal.SIGHUP) is mine
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGHUP, before[0])
        signal.signal(signal.SIGTERM, before[1])
