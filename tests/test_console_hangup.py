"""The console in a real pseudo-terminal, as over SSH: queue two runs from the keyboard,
then the terminal hangs up (SIGHUP). The runs belong to the worker, not the console: both
complete. Nothing here imports Textual; the console is a separate process."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mnist_tui.runs.claim import CLAIM
from mnist_tui.runs.store import RunStore
from mnist_tui.runs.worker import stop_worker, worker_info

from .conftest import EXPERIMENTS

pytestmark = pytest.mark.realdata


class Console:
    """`mnist-tui` on a pty of 120x40; its screen output is drained so it never blocks."""

    def __init__(self, env: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the console, as a user starts it
            # from a login shell: a hang-up ends it (an ignored signal survives exec, and
            # this test process may have run a worker that ignores hang-ups)
            signal.signal(signal.SIGHUP, signal.SIG_DFL)
            os.execvpe(env["PYTHON"], [env["PYTHON"], "-m", "mnist_tui"], env)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self.output = bytearray()
        self.alive = True
        self.status: int | None = None  # once reaped
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()

    def _drain(self) -> None:
        while self.alive:
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if ready:
                try:
                    data = os.read(self.fd, 65536)
                except OSError:
                    return
                if not data:
                    return
                self.output += data

    def type(self, keys: str | bytes, pause: float = 0.4) -> None:
        os.write(self.fd, keys.encode() if isinstance(keys, str) else keys)
        time.sleep(pause)

    def wait_for_text(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text.encode() in self.output:
                return
            time.sleep(0.2)
        raise AssertionError(f"the console never showed {text!r}")

    def exit_status(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while self.status is None and time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = status
            else:
                time.sleep(0.2)
        return self.status

    def close(self) -> None:
        self.alive = False
        if self.exit_status(0.1) is None:
            os.kill(self.pid, signal.SIGKILL)
            self.status = os.waitpid(self.pid, 0)[1]
        os.close(self.fd)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RunStore]:
    s = RunStore(tmp_path / "store")
    yield s
    if worker_info(s) is not None:
        stop_worker(s, timeout=30)


def test_runs_queued_in_the_console_complete_after_the_terminal_hangs_up(
    real_data: Path, store: RunStore, tmp_path_factory: pytest.TempPathFactory
) -> None:
    import sys

    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "TERM": "xterm-256color",
        "MNIST_TUI_DATA": str(real_data),
        "MNIST_TUI_RUNS": str(store.root),
        "MNIST_TUI_EXPERIMENTS": str(EXPERIMENTS),
        "MNIST_TUI_CACHE": str(tmp_path_factory.getbasetemp() / "hangup-cache"),
    }
    console = Console(env)
    try:
        console.wait_for_text("fnn1", timeout=60)
        time.sleep(1.5)  # the first store read has filled the tables
        console.type("/")
        console.type("fnn")
        console.type("\r")
        console.type(" ")  # mark fnn1 (the cursor moves to fnn2)
        console.type(" ")  # mark fnn2
        console.type("a", pause=1.0)
        console.type("train.epochs=3 data.subset=3000 data.test_subset=500")
        console.type("\r", pause=0.5)

        def queued() -> int:
            return len(store.runs())

        deadline = time.monotonic() + 60
        while queued() < 2 and time.monotonic() < deadline:
            time.sleep(0.3)
        assert queued() == 2, console.output[-2000:].decode("utf-8", "replace")
        # the SSH session drops: the terminal's hang-up reaches the console
        os.kill(console.pid, signal.SIGHUP)
        status = console.exit_status(timeout=30)
        assert status is not None, "the console did not end on SIGHUP"
    finally:
        console.close()

    def all_done() -> bool:
        runs = store.runs()
        return len(runs) == 2 and all(
            r.status == "completed" and not (r.path / CLAIM).exists() for r in runs
        )

    deadline = time.monotonic() + 240
    while not all_done() and time.monotonic() < deadline:
        time.sleep(0.5)
    runs = store.runs()
    assert all_done(), [(r.experiment, r.status, r.summary.get("reason")) for r in runs]
    assert sorted(r.experiment for r in runs) == ["fnn1", "fnn2"]
    for r in runs:
        assert r.summary["overrides"] == [
            "train.epochs=3",
            "data.subset=3000",
            "data.test_subset=500",
        ]
        assert len(r.metrics()) == 3
