"""What the console's worker threads do, kept free of widgets so it can be tested alone.

`FileTail` reads a growing file from its last byte offset (a run's metrics.jsonl and
log.txt are appended to every epoch; reading them whole every second would cost more as
the run grows). `StoreReader` turns the run store into table data and says which parts
changed since the last read, so the UI thread only redraws those; it lists the store
again only when the store's change token moved.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Any

from mnist_tui.runs.store import ACTIVE, RunInfo, RunStore
from mnist_tui.studies.catalog import ExperimentRow, experiment_rows
from mnist_tui.tui.messages import StoreRead
from mnist_tui.views import tables


class FileTail:
    """New complete lines of an appended file since the last call.

    A file that shrank or was replaced (resuming a run rewrites metrics.jsonl atomically)
    is read again from its start, and `read` says so with `reset`. A last line without
    its newline yet is held back until it is complete.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.inode: int | None = None
        self.partial = b""

    def read(self) -> tuple[list[str], bool]:
        try:
            st = os.stat(self.path)
        except OSError:
            reset = self.offset > 0
            self.offset, self.inode, self.partial = 0, None, b""
            return [], reset
        reset = False
        if self.inode is not None and (st.st_ino != self.inode or st.st_size < self.offset):
            self.offset, self.partial, reset = 0, b"", True
        self.inode = st.st_ino
        if st.st_size == self.offset:
            return [], reset
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except OSError:
            return [], reset
        self.offset += len(data)
        *lines, self.partial = (self.partial + data).split(b"\n")
        return [line.decode("utf-8", errors="replace") for line in lines], reset


class MetricsTail:
    """Epoch rows appended to a run's metrics.jsonl since the last call."""

    def __init__(self, path: Path) -> None:
        self.tail = FileTail(path)

    def read(self) -> tuple[list[dict[str, Any]], bool]:
        lines, reset = self.tail.read()
        rows = []
        for line in lines:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn line of a run killed mid-write
            if isinstance(row, dict):
                rows.append(row)
        return rows, reset


class LogTail:
    """The last `keep` lines of a log file, read incrementally."""

    def __init__(self, path: Path, keep: int = 200) -> None:
        self.tail = FileTail(path)
        self.lines: deque[str] = deque(maxlen=keep)

    def read(self) -> bool:
        """True when the kept lines changed."""
        new, reset = self.tail.read()
        if reset:
            self.lines.clear()
        self.lines.extend(line.rstrip("\r") for line in new)
        return bool(new) or reset


def _experiment_files(experiments_dir: Path) -> tuple[tuple[str, int], ...]:
    try:
        return tuple(sorted((p.name, p.stat().st_mtime_ns) for p in experiments_dir.glob("*.toml")))
    except OSError:
        return ()


RELIST = 30.0


class StoreReader:
    """Reads the run store for the main screen; one instance per app, used by one thread."""

    def __init__(self, experiments_dir: Path, store: RunStore) -> None:
        self.experiments_dir = experiments_dir
        self.store = store
        self._files: tuple[tuple[str, int], ...] | None = None
        self._experiments: list[ExperimentRow] = []
        self._sig: dict[str, Any] = {}
        self._token: Any = None
        self._runs: list[RunInfo] = []
        self._listed = 0.0  # monotonic time of the last full listing

    def _list_runs(self) -> list[RunInfo]:
        """The store's runs, listed again only when its change token moved (or every
        RELIST seconds, for summaries edited behind the store's back)."""
        token = self.store.change_token()
        now = time.monotonic()
        if token != self._token or now - self._listed > RELIST:
            self._token, self._listed = token, now
            self._runs = self.store.runs(brief=True)
        return self._runs

    def read(self, queue: list[tables.QueuedRun]) -> StoreRead | None:
        """A snapshot with the parts that changed since the last call, or None if none did."""
        files = _experiment_files(self.experiments_dir)
        reload = files != self._files
        if reload:
            self._files = files
            self._experiments = experiment_rows(self.experiments_dir, self.store)
        runs = self._list_runs()
        by_exp: dict[str, list[RunInfo]] = {}
        for r in runs:
            by_exp.setdefault(r.experiment, []).append(r)
        # the step counter moves every second during a run: it only redraws the queue
        runs_sig = tuple((r.id, r.status, r.summary.get("epochs_done")) for r in runs)
        queue_sig = tuple(
            (
                q.run_id,
                q.started,
                q.info.status if q.info else None,
                q.info.summary.get("step") if q.info else None,
                q.info.summary.get("epochs_done") if q.info else None,
            )
            for q in queue
        )
        changed_runs = reload or runs_sig != self._sig.get("runs")
        changed_queue = queue_sig != self._sig.get("queue")
        if not (changed_runs or changed_queue):
            return None
        self._sig["runs"], self._sig["queue"] = runs_sig, queue_sig
        experiments = exp_table = run_list = runs_table = None
        if changed_runs:
            experiments = [replace(row, runs=by_exp.get(row.name, [])) for row in self._experiments]
            exp_table = tables.experiments_table(experiments)
            run_list = runs
            runs_table = tables.runs_table(runs)
        active = sum(1 for r in runs if r.status in ACTIVE)
        return StoreRead(
            experiments=experiments,
            experiments_table=exp_table,
            runs=run_list,
            runs_table=runs_table,
            queue_table=tables.queue_table(queue) if changed_queue else None,
            summary=f"{len(self._experiments)} experiments · {len(runs):,} runs · "
            f"{active} active · {len(queue)} in queue · ? help",
            in_flight=len(queue),
        )
