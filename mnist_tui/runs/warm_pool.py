"""The worker's side of warm start (cli/warm_slot.py): one warm parent per slot.

The worker starts each slot's parent as soon as it serves, with the slot's environment
(CUDA_VISIBLE_DEVICES, thread counts) set before anything is imported. A claimed run is
forked from the parent when it is up; when it is not (still importing, dead, refusing),
the launcher falls back to the cold path, a plain child process.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mnist_tui.runs.launcher import die_with_parent

# Room reserved in the parent's own argv for a child's rewritten command line: the kernel
# shows /proc/<pid>/cmdline from the process's original argv memory, which cannot grow.
TITLE_ROOM = 4096
FORK_WAIT = 10.0  # seconds to wait for a parent's answer to a fork request
WARM_ENV = "MNIST_TUI_WARM_START"  # "0": never fork warm, every run starts cold


def parent_command() -> list[str]:
    """How a warm parent is started (the padding is the room for its children's titles)."""
    return [sys.executable, "-m", "mnist_tui.cli.warm_slot", "--title-room=" + " " * TITLE_ROOM]


def enabled() -> bool:
    return os.environ.get(WARM_ENV, "1") != "0"


class WarmChild:
    """A trainer forked by a warm parent; its exit code comes over the parent's pipe.

    Quacks like the subprocess.Popen the cold path keeps: pid, poll, wait, send_signal.
    """

    def __init__(self, pid: int, parent: WarmParent) -> None:
        self.pid = pid
        self.parent = parent
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.parent.pump()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0.0)
            self.parent.pump(min(0.2, left) if left is not None else 0.2)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, sig)


class WarmParent:
    """One slot's warm parent, seen from the worker."""

    def __init__(self, env: dict[str, str], datasets: list[str], data_dir: Path | None) -> None:
        config = {"datasets": datasets, "data_dir": str(data_dir) if data_dir else None}
        self.proc = subprocess.Popen(
            parent_command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**env, "MNIST_TUI_WARM": json.dumps(config)},
            start_new_session=True,  # Ctrl-C or a hang-up elsewhere never reaches it
            preexec_fn=die_with_parent,
        )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self._out = self.proc.stdout.fileno()
        os.set_blocking(self._out, False)
        self._buffer = b""
        self.ready = False
        self.dead = False
        self.children: dict[int, WarmChild] = {}
        self._forked: list[int] = []
        self._early_exits: dict[int, int] = {}

    def pump(self, timeout: float = 0.0) -> None:
        """Read what the parent said (waiting up to `timeout` for something)."""
        if self.dead:
            return
        if timeout > 0:
            # poll, not select: select refuses a descriptor above 1023 (a process with
            # many open files, a test run among them)
            poller = select.poll()
            poller.register(self._out, select.POLLIN)
            with contextlib.suppress(InterruptedError):
                poller.poll(timeout * 1000)
        while True:
            try:
                chunk = os.read(self._out, 65536)
            except BlockingIOError:
                break
            except OSError:
                chunk = b""
            if not chunk:
                self._died()
                break
            self._buffer += chunk
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            with contextlib.suppress(ValueError):
                self._handle(json.loads(line))

    def _handle(self, message: dict[str, Any]) -> None:
        if "ready" in message:
            self.ready = True
        elif "forked" in message:
            self._forked.append(int(message["forked"]))
        elif "exit" in message:
            pid, code = int(message["exit"]), int(message["code"])
            child = self.children.pop(pid, None)
            if child is not None:
                child.returncode = code
            else:  # it ended before the worker listed it
                self._early_exits[pid] = code

    def _died(self) -> None:
        """The parent is gone: its children died with it (PDEATHSIG), as if killed."""
        self.dead = True
        self.ready = False
        for child in self.children.values():
            child.returncode = -signal.SIGKILL
        self.children.clear()
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            self.proc.wait(timeout=1)

    def usable(self) -> bool:
        self.pump()
        return self.ready and not self.dead

    def fork(self, argv: list[str], log: Path, title: list[str]) -> WarmChild | None:
        """Fork a child that runs `mnist-tui <argv>`; None when the parent cannot."""
        if not self.usable():
            return None
        request = {"argv": argv, "log": str(log), "title": title}
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
        except (OSError, ValueError):
            self._died()
            return None
        deadline = time.monotonic() + FORK_WAIT
        while not self._forked and not self.dead and time.monotonic() < deadline:
            self.pump(0.05)
        if not self._forked:
            self.close()  # an unanswered request: this parent is not to be trusted again
            return None
        child = WarmChild(self._forked.pop(0), self)
        if child.pid in self._early_exits:
            child.returncode = self._early_exits.pop(child.pid)
        else:
            self.children[child.pid] = child
        return child

    def close(self) -> None:
        """End the parent at once: it never trains, so nothing is lost (its children were
        stopped first; any still alive die with it)."""
        with contextlib.suppress(OSError, ValueError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        self.proc.wait()
        self.dead = True
        self.ready = False
