"""What the console's worker threads do, kept free of widgets so it can be tested alone.

`FileTail` reads a growing file from its last byte offset (a run's metrics.jsonl and
log.txt are appended to every epoch; reading them whole every second would cost more as
the run grows). `StoreReader` turns the run store into table data and says which parts
changed since the last read, so the UI thread only redraws those; it follows the run
index's changes instead of listing every run again.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Any

from mnist_tui.runs.index import RunQuery
from mnist_tui.runs.record import ACTIVE, RunInfo
from mnist_tui.runs.schema import RunSummary
from mnist_tui.runs.store import RunStore
from mnist_tui.status import RunStatus
from mnist_tui.studies.catalog import ExperimentRow, experiment_rows
from mnist_tui.tui.messages import StoreRead
from mnist_tui.views import fmt, run_tables, tables
from mnist_tui.views.visible import visible


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
        # a training script's output may hold escape sequences: shown, never sent
        self.lines.extend(visible(line.rstrip("\r")) for line in new)
        return bool(new) or reset


def _experiment_files(experiments_dir: Path) -> tuple[tuple[str, int], ...]:
    try:
        return tuple(sorted((p.name, p.stat().st_mtime_ns) for p in experiments_dir.glob("*.toml")))
    except OSError:
        return ()


RELIST = 30.0  # seconds between disk checks (`RunIndex.refresh`: edits behind the store)
# runs the first read takes (the newest; the runs tab shows as many): the console is up
# in a second at 100,000 runs, and the next read, right after, takes every run
FIRST = 200
TICK = 15.0  # seconds between redraws of relative times ("3m ago") when nothing else moved


def _key(r: RunInfo) -> str:
    return f"{r.experiment}/{r.id}"


class StoreReader:
    """Reads the run store for the main screen; one instance per app, used by one thread.

    It follows the run index as runs/index.py describes for a console: a small read of
    the index's state every tick, `changes` since the last generation when it moved (a
    training run's progress costs one small query, not a re-read of every run), and the
    index's disk check (`refresh`: full in a small store, at most every few minutes in a
    large one) when run directories came or went and every RELIST seconds; what it finds
    arrives through `changes` too. Table rows of finished runs are kept until they change."""

    def __init__(self, experiments_dir: Path, store: RunStore) -> None:
        self.experiments_dir = experiments_dir
        self.store = store
        self._files: tuple[tuple[str, int], ...] | None = None
        self._experiments: list[ExperimentRow] = []
        self._sig: dict[str, Any] = {}
        self._state: tuple[str, int] | None = None  # the index's (instance, generation)
        self._dirs: Any = None
        self._synced = 0.0  # monotonic time of the last full check
        self._by_key: dict[str, RunInfo] = {}
        self._runs: list[RunInfo] = []  # newest first
        # runs-table rows of finished runs: the row, when its "3m ago" next changes, and
        # the summary it was built from (a row is reused only for an equal summary)
        self._rows: dict[str, tuple[tables.Row, float, RunSummary]] = {}
        self._tick = -1
        self._ticks = 0  # rows rebuilt because their relative time changed
        self._moves = 0  # reads that found runs changed in the index
        self._total = 0  # runs in the store (not archived): more than _by_key until complete
        self.complete = False  # every run read (the first read takes the newest FIRST)
        self._active: dict[str, RunInfo] = {}  # runs stored as queued or running
        self._changed: list[RunInfo] = []  # runs the index changed since the last read

    def _follow(self) -> bool:
        """Bring the runs up to date with the index; True when any changed."""
        index = self.store.index
        now = time.monotonic()
        if self._state is None or not self.complete:
            # the first read: the newest FIRST runs, then (the next read) every run; the
            # state is taken first, so a change made while they are read comes again
            first = self._state is None
            if first:
                self._dirs, self._synced = index.dirs_token(), now
                index.refresh()  # the index checked against the disk, before its state
            self._state = index.state()
            query = RunQuery(archived=False)
            runs = index.runs(query, brief=True, limit=FIRST if first else None, synced=True)
            self._total = index.count(query) if first else len(runs)
            self.complete = len(runs) >= self._total
            self._by_key = {_key(r): r for r in runs}
            self._renew_active()
        else:
            dirs = index.dirs_token()
            if dirs != self._dirs or now - self._synced > RELIST:
                # run directories copied in or removed, or time for the disk check: what it
                # finds is written to the index, and so reaches us through `changes`
                self._dirs, self._synced = dirs, now
                index.refresh()
            state = index.state()
            if state == self._state:
                return False
            changed = index.changes(*self._state)
            if changed is None:  # another index file: read everything
                self._by_key = {_key(r): r for r in self.store.runs(brief=True)}
                self._renew_active()
                self._rows.clear()
            else:
                for r in changed.runs:
                    key = _key(r)
                    self._rows.pop(key, None)
                    self._changed.append(r)
                    if r.archived:
                        self._by_key.pop(key, None)
                    else:
                        self._by_key[key] = r
                    if r.stored_status in ACTIVE and not r.archived:
                        self._active[key] = r
                    else:
                        self._active.pop(key, None)
                for experiment, run_id in changed.removed:
                    for kept in (self._by_key, self._rows, self._active):
                        kept.pop(f"{experiment}/{run_id}", None)
                state = (state[0], max(state[1], changed.generation))
            self._state = state
        self._runs = sorted(self._by_key.values(), key=lambda r: (r.created, r.id), reverse=True)
        return True

    def _renew_active(self) -> None:
        """The active runs from a whole new read; those active before are watched once
        more as they are now (one may have ended between the two reads)."""
        for key in self._active:
            now = self._by_key.get(key)
            if now is not None:
                self._changed.append(now)
        self._active = {k: r for k, r in self._by_key.items() if r.stored_status in ACTIVE}

    def last_runs(self) -> list[RunInfo]:
        """The runs as of the last read (brief summaries), newest first."""
        return self._runs

    def active_runs(self) -> list[RunInfo]:
        """The runs stored as queued or running, as of the last read (brief summaries)."""
        return list(self._active.values())

    def watched(self) -> list[RunInfo]:
        """The runs whose status may have moved since the last call: the active ones (a
        run's process can die without a write) and those the index changed. What a
        notice of a run that ended needs, without a look at every run."""
        changed, self._changed = self._changed, []
        return [*self._active.values(), *changed]

    def _row(self, r: RunInfo) -> tables.Row:
        """A run's table row, kept while the run is finished and unchanged and its
        relative time reads the same (a running one is built again: its status depends
        on whether its process still lives)."""
        key = _key(r)
        kept = self._rows.get(key)
        if kept is not None and kept[1] > time.time() and kept[2] == r.summary:
            return kept[0]
        row = run_tables.run_row(r)
        if r.stored_status not in ACTIVE:
            self._rows[key] = (row, fmt.ago_changes_at(r.started), r.summary)
        return row

    def _stale_rows(self) -> bool:
        """Some kept row's relative time now reads differently: drop those rows."""
        now = time.time()
        stale = [k for k, (_, expires, _) in self._rows.items() if expires <= now]
        for k in stale:
            del self._rows[k]
        return bool(stale)

    def read(self, queue: list[run_tables.QueuedRun], paused: bool = False) -> StoreRead | None:
        """A snapshot with the parts that changed since the last call, or None if none did.

        `paused`: the queue starts nothing new; it changes what happens next, so a change
        of it alone is a change to show."""
        files = _experiment_files(self.experiments_dir)
        moved = self._follow()
        runs = self._runs
        tick = int(time.monotonic() // TICK)
        if tick != self._tick:
            self._tick = tick
            # "started 3m ago" moves on: only rows whose text changed are built again,
            # and the table is redrawn only if there were any (at 10,000 runs a full
            # rebuild costs a second of CPU; almost all rows show a date)
            if self._stale_rows():
                self._ticks += 1
                moved = True
        reload = files != self._files
        if reload:
            self._files = files
            self._experiments = (
                experiment_rows(self.experiments_dir, self.store, runs=runs)
                if self.complete
                else experiment_rows(self.experiments_dir, self.store, digest=True)
            )
        # the step counter moves every second during a run: it only redraws the queue; a
        # run's status can change without a write (its process died), so active runs are
        # looked at on every tick, and only they: a finished run changes through the index
        if moved:
            self._moves += 1
        runs_sig = (
            self._ticks,
            self._moves,
            *(
                (r.id, tables.shown_status(r), r.summary.get("epochs_done"))
                for r in self._active.values()
            ),
        )
        queue_sig = (
            paused,
            *(
                (
                    q.run_id,
                    q.started,
                    q.info.status if q.info else None,
                    q.info.summary.get("step") if q.info else None,
                    q.info.summary.get("epochs_done") if q.info else None,
                )
                for q in queue
            ),
        )
        changed_runs = reload or runs_sig != self._sig.get("runs")
        changed_queue = queue_sig != self._sig.get("queue")
        if not (changed_runs or changed_queue):
            return None
        self._sig["runs"], self._sig["queue"] = runs_sig, queue_sig
        experiments = exp_table = run_list = runs_table = None
        if changed_runs:
            by_exp: dict[str, list[RunInfo]] = {}
            for r in runs:
                by_exp.setdefault(r.experiment, []).append(r)
            # the experiments' counts and figures from all their runs (a first, partial
            # read keeps the index's digest: counts and best runs of every run)
            experiments = (
                [
                    replace(row, runs=by_exp.get(row.name, []), run_count=None)
                    for row in self._experiments
                ]
                if self.complete
                else self._experiments
            )
            exp_table = run_tables.experiments_table(experiments)
            run_list = runs
            runs_table = run_tables.runs_table(runs, row_of=self._row)
        summary, title = live_summary(runs, paused)
        if not self.complete:
            summary = (
                f"{self._total:,} runs: reading them (the newest {len(runs):,} shown) · ? help"
            )
        return StoreRead(
            experiments=experiments,
            experiments_table=exp_table,
            runs=run_list,
            runs_table=runs_table,
            queue_table=run_tables.queue_table(queue) if changed_queue else None,
            summary=summary,
            title=title,
            in_flight=len(queue),
            paused=paused,
            watched=self.watched(),
        )


def live_summary(runs: list[RunInfo], paused: bool = False) -> tuple[str, str]:
    """The status line and the terminal title: runs done, running, queued, failed and
    killed, whether the queue is paused, and the newest result (the completed run that
    ended last). Everything that changes what happens next is in it."""
    done = running = queued = 0
    ended: dict[str, int] = {}
    newest: RunInfo | None = None
    newest_end = 0.0
    for r in runs:
        status = r.status
        if status == RunStatus.COMPLETED:
            done += 1
            s = r.summary
            end = float(s.get("started") or r.created) + float(s.get("wall_seconds") or 0.0)
            if end >= newest_end:
                newest, newest_end = r, end
        elif status == RunStatus.RUNNING:
            running += 1
        elif status == RunStatus.QUEUED:
            queued += 1
        else:  # failed, killed, damaged: they need a look (or a resume)
            ended[status] = ended.get(status, 0) + 1
    counts = f"{done:,} done · {running} running · {queued} queued"
    counts += "".join(f" · {n:,} {status}" for status, n in sorted(ended.items()))
    if paused:
        counts = f"⏸ QUEUE PAUSED (p on tab 3 resumes) · {counts}"
    latest = ""
    if newest is not None:
        acc = newest.final("test_acc")
        figure = f" {100 * acc:.2f}%" if isinstance(acc, float) else ""
        latest = f" · newest {newest.experiment}{figure}"
    status_line = f"{fmt.plural(len(runs), 'run')}: {counts}{latest} · ? help"
    return status_line, f"{counts}{latest}"
