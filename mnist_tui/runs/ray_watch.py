"""Watching the Ray head while runs are in flight.

When the head (GCS) dies, Ray's own code in the driver retries quietly and then ends the
process from C++, so no Python handler ever sees it: runs stayed `running` with no word
of why. A small thread checks that the head still accepts connections; after a few
misses in a row it marks every run in flight interrupted, with the reason and how to
continue, then ends the worker with one line.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from mnist_tui.status import RunStatus

INTERVAL = 2.0  # seconds between looks
MISSES = 4  # looks in a row without an answer before the head counts as gone


def _answers(host: str, port: int, timeout: float) -> str | None:
    """None if HOST:PORT accepts a connection, else why not."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        return exc.strerror or str(exc) or type(exc).__name__
    return None


class HeadWatch:
    """Calls `on_lost(why)` once, from its own thread, when the head stops answering."""

    def __init__(
        self,
        address: str,
        on_lost: Callable[[str], None],
        interval: float = INTERVAL,
        misses: int = MISSES,
    ) -> None:
        host, _, port = address.rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        self.address = address
        self.on_lost = on_lost
        self.interval = interval
        self.misses = misses
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="ray-head-watch", daemon=True)

    def start(self) -> HeadWatch:
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        missed = 0
        while not self._stop.wait(self.interval):
            why = _answers(self.host, self.port, self.interval)
            missed = missed + 1 if why else 0
            if why and missed >= self.misses:
                self.on_lost(
                    f"the Ray head at {self.address} stopped answering ({why}) for "
                    f"{self.misses * self.interval:g} s"
                )
                return


def lost_runs(worker: Any, why: str) -> list[str]:
    """Mark each run the worker has in flight interrupted, saying why and how to continue;
    returns their ids."""
    ids = []
    for f in list(worker.inflight.values()):
        info = f.info
        worker._mark(
            info, RunStatus.INTERRUPTED, f"{why}; continue it with: mnist-tui resume {info.id}"
        )
        ids.append(info.id)
    return ids


def watch_head(worker: Any, address: str | None, exit: Callable[[int], Any] = os._exit) -> Any:
    """Start watching the head `worker` is connected to (None: none to watch)."""
    if not address or ":" not in address or "://" in address:
        return None

    def on_lost(why: str) -> None:
        ids = lost_runs(worker, why)
        shown = f"; runs interrupted: {', '.join(ids)}" if ids else ""
        sys.stderr.write(f"error: {why}{shown}\n")
        sys.stderr.flush()
        time.sleep(0.1)
        exit(2)  # Ray would end this process from C++ anyway; the lock goes with it

    return HeadWatch(address, on_lost, INTERVAL, MISSES).start()
