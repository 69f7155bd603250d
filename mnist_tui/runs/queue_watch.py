"""The queue as a polling worker sees it: O(changes) per poll, not O(store).

Every write through the store records its run in the index at once and moves the index's
generation (runs/index.py), so a poll needs only:
    index.state()        one small read: did anything write through the store?
    index.dirs_token()   a stat per experiment folder: run folders copied in or removed?
and reads the queue (a status-filtered query, a few rows) only when one of them moved;
moved folders are read again by `index.refresh()` (their membership, or a full check in a
small store). A full check of the run directories (`index.sync()`, a stat per run file:
summaries edited behind the store's back) runs every `RECONCILE` seconds, or less often
in a store so large that a check would cost more than `CHECK_BUDGET` of a core on average
(at 100,000 runs one check takes seconds): the period stretches to the check's own
duration / CHECK_BUDGET, so an idle worker's cost stays bounded at any size.
An index kept in memory (MNIST_TUI_INDEX=memory, a store shared over NFS) sees no other
process's writes: there every poll checks the directories, as before.

The queue's tail position lives in the index too (`tail` / `raise_tail`), so `enqueue`
places a run at the end without reading the queue.
"""

from __future__ import annotations

import time
from typing import Any

from mnist_tui.runs.index import RunQuery
from mnist_tui.runs.record import RunInfo
from mnist_tui.runs.store import RunStore
from mnist_tui.status import RunStatus

RECONCILE = 180.0  # seconds between full checks of the run directories (at least)
CHECK_BUDGET = 0.005  # the share of one core the periodic full checks may take on average
TAIL_KEY = "queue_tail"
SCHEDULER_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)


class QueueWatch:
    """The queued and running runs of a store, read again only when something changed."""

    def __init__(self, store: RunStore, reconcile: float = RECONCILE) -> None:
        self.store = store
        self.reconcile = reconcile
        self._token: Any = None
        self._dirs: Any = None
        self._last_full = float("-inf")
        self._check_cost = 0.0  # CPU seconds the last full check took
        self._runs: list[RunInfo] = []
        self.reads = 0  # how many times the queue was read (benchmarks and tests look)
        self.full_checks = 0

    @property
    def period(self) -> float:
        """Seconds between periodic full checks: `reconcile`, or longer where one check
        costs more than CHECK_BUDGET of a core over that time. `reconcile` 0: every poll."""
        if self.reconcile <= 0:
            return 0.0
        return max(self.reconcile, self._check_cost / CHECK_BUDGET)

    def active(self) -> list[RunInfo]:
        """Queued and running runs (summary status), as the index has them now."""
        index = self.store.index
        now = time.monotonic()
        dirs = index.dirs_token()
        if index.in_memory or self._dirs is None or now - self._last_full >= self.period:
            started = time.process_time()
            index.sync()  # copies in, removals, edits behind the store's back
            cost = time.process_time() - started
            self._dirs, self._last_full = dirs, time.monotonic()
            self._check_cost = cost
            self.full_checks += 1
        elif dirs != self._dirs:
            # run folders came or went (a `queue add` elsewhere, a copy): the index reads
            # the folders that moved, not every run (a full check where that is cheap)
            self._dirs = dirs
            index.refresh()
        token = index.state()
        if token != self._token or index.in_memory:
            query = RunQuery(archived=False, stored=SCHEDULER_STATUSES)
            self._runs = index.runs(query, brief=False, synced=True)
            self._token = token
            self.reads += 1
        return self._runs


def tail(store: RunStore) -> float | None:
    """The largest queue position handed out in this store (None: not known yet)."""
    raw = store.index.get_value(TAIL_KEY)
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def raise_tail(store: RunStore, position: float) -> None:
    """Remember a queue position; the tail only grows."""
    current = tail(store)
    if current is None or position > current:
        store.index.set_value(TAIL_KEY, repr(position))
