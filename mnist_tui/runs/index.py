"""The run index: a SQLite cache of every run's summary, so a store of 10,000 runs lists fast.

    <runs-dir>/.index.sqlite   (WAL: readers never wait for a writer)

The run directories stay the source of truth; the index only saves reading them all.
Every write through the store (`RunStore.create`, `RunHandle.update`, tags, notes, archive)
records the run at once. Before answering, a listing's `refresh()` compares the index
with the disk. Its full check, `sync()`, lists each experiment directory and stats each
run's cached files (inode, mtime, size), so a run directory copied in shows up, a deleted
one disappears and a file edited behind the store's back is read again. In a store where
that check costs more than CHEAP_CHECK (thousands of runs) it runs only every few minutes
(any process's check counts); in between, the experiment directories whose mtime moved
are listed again (runs copied in or removed), and `runs --check` forces the full check.
A deleted, truncated or foreign index file is rebuilt from the directories; a store the
index cannot be written to gets an index in memory, as does every store when
MNIST_TUI_INDEX=memory (a store shared by several hosts over NFS, where SQLite's WAL does
not work). The index never imports torch.

For a console that polls, once a second:
    instance, gen = index.state()        one small read: moves with every store write
    dirs = index.dirs_token()            a stat per experiment dir: runs copied in/removed
    if dirs changed, or 30 s passed:     index.refresh()  (see above: full when due)
    if (instance, gen) changed:          ch = index.changes(old_instance, old_gen)
        ch is None -> index.runs(brief=True) again; else apply ch.runs / ch.removed
`changes` returns only what was written since, so a run's progress writes cost the console
one small query, not a re-read of 10,000 runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple, cast

from mnist_tui.runs.record import RUN_ID, SAFE_NAME, RunInfo
from mnist_tui.runs.schema import (
    DAMAGED,
    LoadedRun,
    RunSummary,
    effective_status,
    files_fingerprint,
    load_run,
)
from mnist_tui.status import RunStatus

INDEX_FILE = ".index.sqlite"
# How fresh a listing's view of the disk is (`refresh`). A full check stats every cached
# file of every run (seconds at 100,000 runs); while it costs under CHEAP_CHECK CPU seconds
# (a few thousand runs) every listing makes one. Beyond that a listing trusts the index
# (every write through the store is in it at once), reads the membership of experiment
# folders whose mtime moved (runs copied in or removed), and makes a full check only when
# the last one, by any process, is older than its cost / CHECK_SHARE: 25 s at 10,000 runs,
# about 6 minutes at 100,000. `sync()` is always the full check (`runs --check` asks for it).
CHEAP_CHECK = 0.05
CHECK_SHARE = 0.01
CHECK_KEY = "full_check"
# A due full check that last cost more than this (CPU seconds) is not made inside a
# short-lived command (the CLI, under `deferred_checks`): the command starts a detached
# process that makes it (runs/index_check.py) and answers from the index at once, with
# the folders that gained or lost runs read as usual; the next command sees what the
# check found. At 100,000 runs the check takes seconds: no command should stall on it.
DEFER_ABOVE = 0.25
CHECK_LOCK = ".index.check.lock"  # held by the process making a deferred check
_DEFER = threading.local()
SCHEMA_VERSION = 11  # 11: fingerprints cover meta.json, env.json, spec.toml
# What listings, the report and the experiments table read of a summary: kept in columns,
# so listing 10,000 runs builds small dictionaries instead of parsing 10,000 summaries.
BRIEF_SCALARS = (
    "status",
    "created",
    "seed",
    "group",
    "pid",
    "host",
    "epochs",
    "epochs_done",
    "best_epoch",
    "hardest_class",
    "train_seconds",
    "wall_seconds",
    "started",
)
BRIEF_FIGURES = ("test_acc", "test_loss", "val_acc", "val_loss")
ALIVE_STATES = (
    RunStatus.RUNNING,
    RunStatus.INTERRUPTED,
)  # the two a stored "running" can turn out to be
BUSY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
BUSY_TIMEOUT = 10.0  # seconds a write waits for another process's transaction

# "last" is the newest epoch of a run still training (or stopped): what it has reached
FIGURE_PARTS: tuple[Literal["final", "best", "last"], ...] = ("final", "best", "last")
_FIGURE_COLUMNS = [f"{part}_{k}" for part in FIGURE_PARTS for k in BRIEF_FIGURES]
_BRIEF_COLUMNS = [
    "status",
    "created",
    "seed",
    "grp",
    "pid",
    "host",
    "epochs",
    "epochs_done",
    "best_epoch",
    "hardest_class",
    "train_seconds",
    "wall_seconds",
    "started",
    "overrides",
    *_FIGURE_COLUMNS,
]
_KEYS = ["key", "id", "experiment"]
_REST = ["archived", "tags", "definition", "damaged", "meta", "fp"]
_COLUMNS = ", ".join([*_KEYS, *_BRIEF_COLUMNS, *_REST, "gen"])


# Whole summaries live in a table of their own: the rows that listings and the disk check
# read stay small, a dozen to a page.
@contextlib.contextmanager
def deferred_checks() -> Iterator[None]:
    """Within this, in this thread, a costly due full check is made by a detached process
    (DEFER_ABOVE): what a command line does, and a long-lived worker or console does not."""
    before = getattr(_DEFER, "on", False)
    _DEFER.on = True
    try:
        yield
    finally:
        _DEFER.on = before


# the completed runs a report compares and a listing ranks: with final figures, undamaged
_COMPLETED = "status = 'completed' AND damaged IS NULL AND final_test_acc IS NOT NULL"
# the figures a report compares, as index columns (studies.completed names them)
COMPLETED_FIGURES = (
    "final_test_acc",
    "final_test_loss",
    "best_test_acc",
    "best_test_loss",
    "train_seconds",
)


class CompletedGroups(NamedTuple):
    """`RunIndex.completed_groups`: rows of three aggregate queries."""

    groups: list[tuple[Any, ...]]
    hardest: list[tuple[str, str, str, int, float]]  # experiment, definition, class, runs, newest


_SCHEMA = f"""
CREATE TABLE runs(
    key TEXT PRIMARY KEY, fp TEXT NOT NULL, id TEXT NOT NULL, experiment TEXT NOT NULL, status TEXT,
    created REAL NOT NULL, seed INTEGER, grp TEXT, pid INTEGER, host TEXT, epochs INTEGER,
    epochs_done INTEGER, best_epoch INTEGER, hardest_class TEXT, train_seconds REAL,
    wall_seconds REAL, started REAL,
    overrides TEXT, {", ".join(f"{c} REAL" for c in _FIGURE_COLUMNS)},
    archived INTEGER NOT NULL, tags TEXT NOT NULL, definition TEXT, damaged TEXT,
    meta TEXT NOT NULL, gen INTEGER NOT NULL);
CREATE TABLE summaries(key TEXT PRIMARY KEY, summary TEXT NOT NULL);
CREATE TABLE removed(key TEXT PRIMARY KEY, gen INTEGER NOT NULL);
CREATE INDEX runs_by_gen ON runs(gen);
CREATE INDEX runs_by_created ON runs(archived, created DESC, key DESC);
CREATE INDEX runs_by_experiment ON runs(experiment, created DESC, key DESC);
CREATE TABLE kv(key TEXT PRIMARY KEY, value TEXT NOT NULL);
PRAGMA user_version = {SCHEMA_VERSION};
"""
# What an experiments listing and a report group by, covering (no row is read to answer
# them): at 100,000 runs a GROUP BY through runs_by_created reads every row at random,
# half a second a query; through these, 20 to 40 ms. Created on open where missing, so an
# index built by an earlier version gains them in a second instead of being rebuilt.
_GROUPING_INDEXES = (
    "CREATE INDEX IF NOT EXISTS runs_newest ON runs(archived, experiment, created, key)",
    # every column a report reads of a completed run (status and damaged too: SQLite
    # reads a row for any column of the query that its index lacks)
    "CREATE INDEX IF NOT EXISTS runs_completed_figures ON runs(archived, experiment, "
    f"definition, {', '.join(COMPLETED_FIGURES)}, created, seed, hardest_class, id, key, "
    f"status, damaged) WHERE {_COMPLETED}",
)


@dataclass
class Changes:
    """Runs written (brief) and removed since a generation; see `RunIndex.changes`."""

    generation: int
    runs: list[RunInfo]
    removed: list[tuple[str, str]]  # (experiment, run id)


@dataclass(frozen=True)
class RunQuery:
    """Which runs: every field narrows; the defaults select every run that is not archived."""

    experiments: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()  # as views show them (interrupted, damaged included)
    group: str | None = None
    tags: tuple[str, ...] = ()  # runs carrying all of these
    since: float | None = None  # created at or after (seconds since 1970)
    archived: bool | None = False  # False: hide archived; True: only archived; None: both
    id_prefix: str | None = None
    stored: tuple[str, ...] = ()  # as summary.json says (no process check): for schedulers


_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, now: float | None = None) -> float:
    """`--since`: "2d", "3h", "45m", "1w" ago, or a date/time ("2025-01-31", ISO 8601,
    local time unless it names a zone). Seconds since 1970."""
    import datetime
    import time

    from mnist_tui.errors import MnistTuiError

    now = time.time() if now is None else now
    m = _SPAN.match(text.lower())
    if m:
        return now - float(m.group(1)) * _UNIT[m.group(2)]
    try:
        when = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise MnistTuiError(
            f"--since: expected an age such as 2d, 3h, 45m or 1w, or a date such as "
            f"2025-01-31 or 2025-01-31T14:00; got '{text}'"
        ) from None
    return when.timestamp()


# who wants to hear about a long index build: (root, runs read, runs to read); the CLI
# prints it, the core stays silent
BUILD_PROGRESS: list[Callable[[Path, int, int], None]] = []
BUILD_REPORT = 2000  # runs to read before a build is worth reporting
BUILD_BATCH = 2000  # runs written per transaction (what Ctrl-C can lose)


def _key(run_dir: Path) -> str:
    return f"{run_dir.parent.name}/{run_dir.name}"


def _dumps(d: Any) -> str:
    return json.dumps(d, separators=(",", ":"), allow_nan=True)


def _tag_column(tags: Iterable[Any]) -> str:
    """Tags as '\\n'-delimited text, so `instr` finds a whole tag without JSON functions."""
    clean = [t for t in tags if isinstance(t, str) and "\n" not in t]
    return "\n" + "\n".join(clean) + "\n" if clean else ""


def _real(v: Any) -> float | None:
    """A figure for a REAL column (NaN would read back as NULL anyway)."""
    return float(v) if isinstance(v, int | float) and v == v else None


def _row(loaded: LoadedRun) -> tuple[Any, ...]:
    s, meta = loaded.summary, loaded.meta
    figures = []
    for part in FIGURE_PARTS:
        figs = s.get(part) or {}
        figures += [_real(figs.get(k)) for k in BRIEF_FIGURES]
    overrides = s.get("overrides")
    return (
        _key(loaded.path),
        loaded.path.name,
        loaded.path.parent.name,
        DAMAGED if loaded.damaged else s.get("status"),
        float(s.get("created", 0.0)),
        s.get("seed"),
        s.get("group"),
        s.get("pid"),
        s.get("host"),
        s.get("epochs"),
        s.get("epochs_done"),
        s.get("best_epoch"),
        s.get("hardest_class"),
        s.get("train_seconds"),
        s.get("wall_seconds"),
        _real(s.get("started")),
        _dumps(overrides) if overrides else None,
        *figures,
        1 if meta.get("archived") else 0,
        _tag_column(meta.get("tags") or []),
        loaded.definition,
        loaded.damaged,
        _dumps(meta),
        loaded.fingerprint,
    )


def _write(conn: sqlite3.Connection, runs: list[LoadedRun], gone: list[str]) -> None:
    """Insert or replace `runs`, delete the keys in `gone` (inside a transaction); each
    row and removal carries the new generation, so `changes` can say what moved."""
    gen = _bump(conn)
    conn.executemany(
        f"INSERT OR REPLACE INTO runs ({_COLUMNS}) VALUES ({_QS})",
        [(*_row(x), gen) for x in runs],
    )
    conn.executemany("DELETE FROM removed WHERE key = ?", [(_key(x.path),) for x in runs])
    conn.executemany("INSERT OR REPLACE INTO removed VALUES (?, ?)", [(k, gen) for k in gone])
    conn.executemany(
        "INSERT OR REPLACE INTO summaries VALUES (?, ?)",
        # the file's own text when nothing was dropped: no need to encode it again
        [(_key(x.path), x.summary_text or _dumps(x.summary)) for x in runs],
    )
    for table in ("runs", "summaries"):
        conn.executemany(f"DELETE FROM {table} WHERE key = ?", [(k,) for k in gone])


_NO_FIGURES = (None,) * len(BRIEF_FIGURES)
_N_SCALARS = len(BRIEF_SCALARS)
_FINAL = slice(_N_SCALARS + 1, _N_SCALARS + 1 + len(BRIEF_FIGURES))
_BEST = slice(_FINAL.stop, _FINAL.stop + len(BRIEF_FIGURES))
_LAST = slice(_BEST.stop, _BEST.stop + len(BRIEF_FIGURES))


def _brief(row: tuple[Any, ...], stored: bool) -> dict[str, Any]:
    """A summary of the columns a listing reads (`row` in _BRIEF_COLUMNS order).

    Written for speed (a console lists 10,000 of these): zip stops at the scalars."""
    out = {k: v for k, v in zip(BRIEF_SCALARS, row, strict=False) if v is not None}
    if not stored:
        out.pop("status", None)  # "damaged" is the index's word, not the summary's
    if row[_N_SCALARS] is not None:
        out["overrides"] = json.loads(row[_N_SCALARS])
    final, best, last = row[_FINAL], row[_BEST], row[_LAST]
    if final != _NO_FIGURES:
        out["final"] = dict(zip(BRIEF_FIGURES, final, strict=True))
    if best != _NO_FIGURES:
        out["best"] = dict(zip(BRIEF_FIGURES, best, strict=True))
    if last != _NO_FIGURES:
        out["last"] = dict(zip(BRIEF_FIGURES, last, strict=True))
    return out


class RunIndex:
    """The index of one run store. Safe to share between threads of one process."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._exp_paths: dict[str, Path] = {}
        self.path = self.root / INDEX_FILE
        self._conn: sqlite3.Connection | None = None
        # a store on a network file system (NFS, several hosts): SQLite's WAL needs shared
        # memory on one host, so such a store keeps its index in each process instead
        self._in_memory = os.environ.get("MNIST_TUI_INDEX", "").lower() == "memory"
        self._lock = threading.RLock()

    # -- the database --------------------------------------------------------------

    def _open(self) -> sqlite3.Connection | None:
        """The connection, opened (and created or rebuilt) on first use; None while the
        store does not exist (reading must not create it)."""
        if self._conn is not None:
            return self._conn
        if not self._in_memory and not self.root.is_dir():
            return None
        if not self._in_memory:
            try:
                self._conn = self._connect(str(self.path))
            except sqlite3.OperationalError:
                self._in_memory = True  # not writable here: an index for this process only
            except sqlite3.DatabaseError:
                self._discard_file()  # not a database, or a damaged one: start again
                try:
                    self._conn = self._connect(str(self.path))
                except sqlite3.DatabaseError:
                    self._in_memory = True
        if self._conn is None:
            self._conn = self._connect(":memory:")
        return self._conn

    @staticmethod
    def _connect(target: str) -> sqlite3.Connection:
        conn = sqlite3.connect(
            target, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        try:
            if target != ":memory:":
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
            if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                with _transaction(conn):
                    # another process may have created it while this one waited
                    if conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
                        return conn
                    conn.execute("DROP TABLE IF EXISTS runs")
                    conn.execute("DROP TABLE IF EXISTS summaries")
                    conn.execute("DROP TABLE IF EXISTS removed")
                    conn.execute("DROP TABLE IF EXISTS kv")
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(
                        "INSERT INTO kv VALUES ('generation', '0'), ('instance', ?)",
                        (secrets.token_hex(8),),
                    )
            for statement in _GROUPING_INDEXES:
                with contextlib.suppress(sqlite3.OperationalError):  # read-only: slower
                    conn.execute(statement)
            conn.execute("SELECT count(*) FROM runs").fetchone()
        except sqlite3.DatabaseError:
            conn.close()
            raise
        return conn

    def _discard_file(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                os.unlink(f"{self.path}{suffix}")

    def _recover(self, exc: sqlite3.DatabaseError) -> None:
        """After an error: a damaged file is rebuilt; one this process cannot write (read
        only, locked for longer than the timeout, disk full) is left alone and this
        process keeps its own index in memory, read from the run directories."""
        if isinstance(exc, sqlite3.OperationalError):
            if self._conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
            self._conn = None
            self._in_memory = True
        else:
            self._discard_file()

    def _with_db(self, fn: Any, default: Any) -> Any:
        """Run `fn(conn)`, rebuilding the index once if the database fails."""
        with self._lock:
            for attempt in range(3):
                conn = self._open()
                if conn is None:
                    return default
                try:
                    return fn(conn)
                except sqlite3.DatabaseError as exc:
                    if attempt == 2:
                        raise
                    self._recover(exc)
            return default  # pragma: no cover - the loop returns or raises

    @property
    def in_memory(self) -> bool:
        return self._in_memory

    # -- keeping it current --------------------------------------------------------

    def record(self, run_dir: Path) -> None:
        """Index one run as it is on disk now (after the store wrote it). Never raises:
        the files are written already, and a later `sync` catches up."""
        run_dir = Path(run_dir)
        if not RUN_ID.match(run_dir.name):
            return
        loaded = load_run(run_dir)

        def write(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                _write(conn, [loaded], [])

        self._best_effort(write)

    def _best_effort(self, write: Any) -> None:
        """A write that may be skipped: the files are the truth and `sync` catches up."""

        def guarded(conn: sqlite3.Connection) -> None:
            try:
                write(conn)
            except sqlite3.OperationalError as exc:
                if getattr(exc, "sqlite_errorcode", None) not in BUSY:
                    raise

        with contextlib.suppress(sqlite3.Error, OSError):
            self._with_db(guarded, None)

    def forget(self, run_dir: Path) -> None:
        """Drop a run that was moved away or deleted through the store."""

        def write(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                _write(conn, [], [_key(Path(run_dir))])

        self._best_effort(write)

    def _scan(self) -> Iterator[tuple[str, str, str]]:
        """(key, run directory, fingerprint of its files) for every run on disk.

        Plain strings and a stat per cached file (schema.FINGERPRINTED): the cost of every
        listing, and what makes an edit to any of them, or a write the index missed, show."""
        try:
            exp_entries = list(os.scandir(self.root))
        except OSError:
            return
        for exp in exp_entries:
            if exp.name.startswith(".") or not SAFE_NAME.fullmatch(exp.name):
                continue
            try:
                if not exp.is_dir():
                    continue
                run_entries = list(os.scandir(exp.path))
            except OSError:
                continue
            for run in run_entries:
                if not RUN_ID.match(run.name):
                    continue
                try:
                    if not run.is_dir():
                        continue
                except OSError:
                    continue
                yield f"{exp.name}/{run.name}", run.path, files_fingerprint(run.path)

    def refresh(self) -> int:
        """The disk check a listing makes before it answers (see CHEAP_CHECK): a full
        `sync()` in a small store or when one is due, else the membership of the
        experiment folders that changed. Returns how many runs changed. A costly due
        check in a short-lived command is left to a process of its own (DEFER_ABOVE)."""
        if self._in_memory:
            return self.sync()
        last = self._last_check()
        if last is None:
            return self.sync()
        cost, age = float(last["cost"]), time.time() - float(last["at"])
        if cost < CHEAP_CHECK or not 0 <= age < cost / CHECK_SHARE:
            if not (getattr(_DEFER, "on", False) and cost >= DEFER_ABOVE):
                return self.sync()
            self._check_elsewhere()
        dirs = self.dirs_token()
        known = {str(name): int(mtime) for name, mtime in last["dirs"]}
        moved = {name for name, mtime in dirs if known.pop(name, None) != mtime} | set(known)
        if not moved:
            return 0
        changed = self._sync_members(moved)
        # read again: a detached check may have finished meanwhile (its time is kept)
        self._record_check(dict(self._last_check() or last, dirs=dirs))
        return changed

    def _check_elsewhere(self) -> None:
        """Start the full check in a detached process (one at a time: it takes
        CHECK_LOCK, and one started while another runs leaves at once)."""
        import subprocess
        import sys

        with contextlib.suppress(OSError):
            subprocess.Popen(
                [sys.executable, "-m", "mnist_tui.runs.index_check", str(self.root)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # not stopped by the terminal's Ctrl-C or hang-up
                close_fds=True,
            )

    def _last_check(self) -> dict[str, Any] | None:
        raw = self.get_value(CHECK_KEY)
        try:
            last = json.loads(raw) if raw else None
            if isinstance(last, dict) and {"at", "cost", "dirs"} <= set(last):
                float(last["at"]), float(last["cost"]), list(last["dirs"])
                return last
        except (ValueError, TypeError):
            pass
        return None  # never checked, or a record this code cannot read: check now

    def _record_check(self, record: dict[str, Any]) -> None:
        def write(conn: sqlite3.Connection) -> None:
            # a note for later listings, never worth waiting for another's write lock
            conn.execute("PRAGMA busy_timeout = 100")
            try:
                with _transaction(conn):
                    conn.execute(
                        "INSERT OR REPLACE INTO kv VALUES (?, ?)", (CHECK_KEY, json.dumps(record))
                    )
            finally:
                conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")

        self._best_effort(write)

    def _sync_members(self, experiments: set[str]) -> int:
        """Runs added to or removed from these experiment folders (one listing each, no
        stat per run): a folder copied in or deleted behind the store's back."""

        def run(conn: sqlite3.Connection) -> int:
            names = sorted(experiments)
            marks = ", ".join("?" * len(names))
            known = {
                k
                for (k,) in conn.execute(
                    f"SELECT key FROM runs WHERE experiment IN ({marks})", names
                )
            }
            present: dict[str, str] = {}
            for name in names:
                if name.startswith(".") or not SAFE_NAME.fullmatch(name):
                    continue
                with contextlib.suppress(OSError):
                    for entry in os.scandir(self.root / name):
                        if RUN_ID.match(entry.name) and entry.is_dir():
                            present[f"{name}/{entry.name}"] = entry.path
            added = [load_run(Path(path)) for key, path in present.items() if key not in known]
            gone = [k for k in known if k not in present]
            if not added and not gone:
                return 0
            with _transaction(conn):
                _write(conn, added, gone)
            return len(added) + len(gone)

        result: int = self._with_db(run, 0)
        return result

    def sync(self) -> int:
        """Bring the index in line with the run directories (the full check: a stat per
        cached file of every run); returns how many runs changed."""
        dirs = self.dirs_token()  # before the scan: a change during it shows next time
        started = time.process_time()
        changed = self._sync()
        cost = time.process_time() - started
        # only where it decides anything: a small store checks every time, and writes
        # nothing when nothing changed (a listing never waits on another's write lock)
        if not self._in_memory and cost >= CHEAP_CHECK / 2:
            self._record_check({"at": time.time(), "cost": cost, "dirs": dirs})
        return changed

    def _sync(self) -> int:
        def run(conn: sqlite3.Connection) -> int:
            # read the index before the disk: a run recorded meanwhile is then never taken
            # for a vanished one
            known = dict(conn.execute("SELECT key, fp FROM runs").fetchall())
            seen: set[str] = set()
            stale: list[str] = []
            for key, path, fp in self._scan():
                seen.add(key)
                if known.get(key) != fp:
                    stale.append(path)
            gone = [k for k in known if k not in seen]
            if not stale and not gone:
                return 0
            # many runs to read (a missing index, a store copied in): written in batches,
            # each its own transaction, so Ctrl-C keeps what was read and leaves a usable
            # index that the next command completes; the progress goes to BUILD_PROGRESS
            report = len(stale) >= BUILD_REPORT and BUILD_PROGRESS
            written = 0
            for start in range(0, max(1, len(stale)), BUILD_BATCH):
                changed: list[LoadedRun] = []
                for path in stale[start : start + BUILD_BATCH]:
                    loaded = load_run(Path(path))
                    if not os.path.isdir(path):
                        continue  # moved away while we looked
                    changed.append(loaded)
                with _transaction(conn):
                    _write(conn, changed, gone if start == 0 else [])
                written += len(changed)
                if report:
                    for hook in BUILD_PROGRESS:
                        hook(self.root, min(len(stale), start + BUILD_BATCH), len(stale))
            return written + len(gone)

        result: int = self._with_db(run, 0)
        return result

    def rebuild(self) -> int:
        """Forget everything and read every run directory again."""

        def clear(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                conn.execute("DELETE FROM runs")
                conn.execute("DELETE FROM summaries")
                conn.execute("DELETE FROM removed")
                # a new instance: whoever follows `changes` reads everything again
                conn.execute(
                    "UPDATE kv SET value = ? WHERE key = 'instance'", (secrets.token_hex(8),)
                )
                _bump(conn)

        self._with_db(clear, None)
        return self.sync()

    # -- change signal -------------------------------------------------------------

    def generation(self) -> int:
        """A counter that every write to the index moves on (one small read)."""

        def read(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT value FROM kv WHERE key = 'generation'").fetchone()
            return int(row[0]) if row else 0

        result: int = self._with_db(read, 0)
        return result

    def state(self) -> tuple[str, int]:
        """(instance, generation): which index file, and how many writes it has seen."""

        def read(conn: sqlite3.Connection) -> tuple[str, int]:
            rows = dict(
                conn.execute(
                    "SELECT key, value FROM kv WHERE key IN ('instance', 'generation')"
                ).fetchall()
            )
            return str(rows.get("instance", "")), int(rows.get("generation", 0))

        result: tuple[str, int] = self._with_db(read, ("", 0))
        return result

    def dirs_token(self) -> tuple[tuple[str, int], ...]:
        """The experiment directories and their mtimes: a run directory added or removed
        behind the store's back changes it (one scandir and a stat per experiment)."""
        dirs: list[tuple[str, int]] = []
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.root):
                if not entry.name.startswith(".") and entry.is_dir():
                    with contextlib.suppress(OSError):
                        dirs.append((entry.name, entry.stat().st_mtime_ns))
        return tuple(sorted(dirs))

    def change_token(self) -> tuple[Any, ...]:
        """Equal tokens: nothing a listing shows has changed (see the module docstring)."""
        return (self.state(), self.dirs_token())

    def changes(self, instance: str, since: int) -> Changes | None:
        """What was written or removed after generation `since` of index `instance`:
        brief runs and removed (experiment, id) pairs. None when the index is another one
        (rebuilt, or never seen): then read everything again with `runs`."""

        def read(conn: sqlite3.Connection) -> tuple[Any, ...] | None:
            conn.execute("BEGIN")  # one consistent snapshot of the three reads
            try:
                now = dict(
                    conn.execute(
                        "SELECT key, value FROM kv WHERE key IN ('instance', 'generation')"
                    ).fetchall()
                )
                gen = int(now.get("generation", 0))
                if now.get("instance") != instance or since > gen:
                    return None
                rows = conn.execute(
                    "SELECT id, experiment, status, host, pid, damaged, definition, meta, "
                    f"{', '.join(_BRIEF_COLUMNS)} FROM runs WHERE gen > ? "
                    "ORDER BY created DESC, key DESC",
                    (since,),
                ).fetchall()
                gone = [
                    k for (k,) in conn.execute("SELECT key FROM removed WHERE gen > ?", (since,))
                ]
                return gen, rows, gone
            finally:
                conn.execute("COMMIT")

        got = self._with_db(read, None)
        if got is None:
            return None
        gen, rows, gone = got
        return Changes(
            generation=gen,
            runs=[self._info(r, True) for r in rows],
            removed=[(e, i) for e, _, i in (k.partition("/") for k in gone)],
        )

    # -- queries -------------------------------------------------------------------

    @staticmethod
    def _where(q: RunQuery) -> tuple[str, list[Any], bool]:
        """SQL condition and parameters; True when statuses need the process check."""
        clauses: list[str] = []
        params: list[Any] = []
        if q.experiments:
            clauses.append(f"experiment IN ({', '.join('?' * len(q.experiments))})")
            params += q.experiments
        check = False
        if q.statuses:
            stored = set(q.statuses)
            if stored & set(ALIVE_STATES):
                stored.add(RunStatus.RUNNING)
                check = True
            clauses.append(f"status IN ({', '.join('?' * len(stored))})")
            params += sorted(stored)
        if q.stored:
            clauses.append(f"status IN ({', '.join('?' * len(q.stored))})")
            params += q.stored
        if q.group is not None:
            clauses.append("grp = ?")
            params.append(q.group)
        for tag in q.tags:
            clauses.append("instr(tags, ?) > 0")
            params.append(f"\n{tag}\n")
        if q.since is not None:
            clauses.append("created >= ?")
            params.append(q.since)
        if q.archived is not None:
            clauses.append("archived = ?")
            params.append(1 if q.archived else 0)
        if q.id_prefix:
            clauses.append("substr(id, 1, ?) = ?")
            params += [len(q.id_prefix), q.id_prefix]
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params, check

    def runs(
        self,
        query: RunQuery | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
        brief: bool = False,
        synced: bool = False,
    ) -> list[RunInfo]:
        """Runs matching `query`, newest first. `brief`: summaries cut to what listings
        show (no per-class figures or confusion); `synced`: skip the disk check."""
        q = query or RunQuery()
        if not synced:
            self.refresh()
        where, params, check = self._where(q)
        wanted = ", ".join(_BRIEF_COLUMNS) if brief else "summary"
        joined = "runs" if brief else "runs JOIN summaries USING (key)"
        sql = (
            "SELECT id, experiment, status, host, pid, damaged, definition, meta, "
            f"{wanted} FROM {joined}{where} ORDER BY created DESC, key DESC"
        )
        if not check and limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params = [*params, limit, offset]

        def read(conn: sqlite3.Connection) -> list[Any]:
            return conn.execute(sql, params).fetchall()

        rows: list[Any] = self._with_db(read, [])
        if check:
            statuses = set(q.statuses)
            rows = [r for r in rows if effective_status(r[2], r[3], r[4], r[5]) in statuses]
            rows = rows[offset : None if limit is None else offset + limit]
        return [self._info(r, brief) for r in rows]

    def digest(self, *, archived: bool = False) -> tuple[dict[str, int], list[RunInfo]]:
        """What an experiments listing shows, without a row per run: the runs each
        experiment has, and (brief) its newest run and, per definition (spec.toml hash),
        its completed run with the best final test accuracy. Archived runs count only
        with `archived`. Checks the disk first, as `runs` does."""
        self.refresh()
        where = "" if archived else " WHERE archived = 0"
        best_where = f"{where} {'AND' if where else 'WHERE'} {_COMPLETED}"
        columns = ", ".join(_BRIEF_COLUMNS)

        def read(conn: sqlite3.Connection) -> tuple[dict[str, int], list[Any]]:
            counts = dict(
                conn.execute(f"SELECT experiment, count(*) FROM runs{where} GROUP BY experiment")
            )
            # SQLite takes the other columns of a max() aggregate from the row with the max
            keys = {
                k
                for (k, _) in conn.execute(
                    f"SELECT key, max(created) FROM runs{where} GROUP BY archived, experiment"
                )
            }
            keys |= {
                k
                for (k, _) in conn.execute(
                    f"SELECT key, max(final_test_acc) FROM runs{best_where} "
                    "GROUP BY archived, experiment, definition"
                )
            }
            rows: list[Any] = []
            names = sorted(keys)
            for start in range(0, len(names), 500):  # SQLite's bound on parameters
                part = names[start : start + 500]
                rows += conn.execute(
                    "SELECT id, experiment, status, host, pid, damaged, definition, meta, "
                    f"{columns} FROM runs WHERE key IN ({', '.join('?' * len(part))})",
                    part,
                ).fetchall()
            return counts, rows

        counts, rows = self._with_db(read, ({}, []))
        infos = [self._info(r, True) for r in rows]
        infos.sort(key=lambda r: (r.created, r.id), reverse=True)
        return counts, infos

    def completed_groups(self, *, archived: bool = False) -> CompletedGroups:
        """Completed runs with a final test accuracy, aggregated per experiment and
        definition (spec.toml hash): what a report compares, in a few hundred numbers at
        any store size. Archived runs only with `archived`. Checks the disk first, as
        `runs` does.

        Each group: (experiment, definition, a run id, runs), then for each of
        COMPLETED_FIGURES (count, mean, sum of squared deviations, min, max), then its
        seeds joined by commas. The squared deviations are taken around each group's
        mean (a second pass), not as sum(x^2) - n mean^2, which cancels."""
        self.refresh()
        where = f"WHERE {_COMPLETED} AND definition IS NOT NULL" + (
            "" if archived else " AND archived = 0"
        )
        means = ", ".join(f"avg({c}) AS m{i}" for i, c in enumerate(COMPLETED_FIGURES))
        parts = ", ".join(
            f"count({c}), g.m{i}, coalesce(sum(({c} - g.m{i}) * ({c} - g.m{i})), 0), "
            f"min({c}), max({c})"
            for i, c in enumerate(COMPLETED_FIGURES)
        )
        # both passes read the covering index runs_completed_figures, never a row
        groups_sql = (
            f"WITH g AS (SELECT experiment AS e, definition AS d, {means} FROM runs "
            f"{where} GROUP BY experiment, definition) "
            f"SELECT experiment, definition, min(id), count(*), {parts}, group_concat(seed) "
            f"FROM runs JOIN g ON experiment = g.e AND definition = g.d {where} "
            "GROUP BY experiment, definition ORDER BY experiment, definition"
        )
        hardest_sql = (
            "SELECT experiment, definition, hardest_class, count(*), max(created) "
            f"FROM runs {where} AND hardest_class IS NOT NULL "
            "GROUP BY experiment, definition, hardest_class"
        )

        def read(conn: sqlite3.Connection) -> CompletedGroups:
            conn.execute("BEGIN")  # one snapshot: the hardest classes of the same groups
            try:
                return CompletedGroups(
                    conn.execute(groups_sql).fetchall(), conn.execute(hardest_sql).fetchall()
                )
            finally:
                conn.execute("COMMIT")

        empty = CompletedGroups([], [])
        found: CompletedGroups = self._with_db(read, empty)
        return found

    def completed_values(
        self, experiment: str, definitions: list[str], figure: str, *, archived: bool = False
    ) -> list[float]:
        """One figure (a COMPLETED_FIGURES column) of an experiment's completed runs of
        these definitions, newest first: what a step's test compares."""
        if figure not in COMPLETED_FIGURES:
            raise ValueError(f"not a figure the index keeps: {figure}")
        marks = ", ".join("?" * len(definitions))
        # sorted here, not by SQL: an ORDER BY would read each row through runs_newest
        # instead of answering from runs_completed_figures alone
        sql = (
            f"SELECT {figure}, created, key FROM runs WHERE {_COMPLETED} AND experiment = ? "
            f"AND definition IN ({marks}) AND {figure} IS NOT NULL"
            + ("" if archived else " AND archived = 0")
        )

        def read(conn: sqlite3.Connection) -> list[tuple[float, float, str]]:
            return conn.execute(sql, [experiment, *definitions]).fetchall()

        rows: list[tuple[float, float, str]] = self._with_db(read, [])
        rows.sort(key=lambda r: (r[1], r[2]), reverse=True)
        return [v for v, _, _ in rows]

    def count(self, query: RunQuery | None = None, *, synced: bool = True) -> int:
        q = query or RunQuery()
        if not synced:
            self.refresh()
        where, params, check = self._where(q)
        if check:
            return len(self.runs(q, brief=True, synced=True))

        def read(conn: sqlite3.Connection) -> int:
            return int(conn.execute(f"SELECT count(*) FROM runs{where}", params).fetchone()[0])

        result: int = self._with_db(read, 0)
        return result

    def experiments(self) -> list[str]:
        """Experiment names that have runs in the index."""

        def read(conn: sqlite3.Connection) -> list[str]:
            return [r[0] for r in conn.execute("SELECT DISTINCT experiment FROM runs")]

        result: list[str] = self._with_db(read, [])
        return sorted(result)

    def groups(self) -> list[str]:
        """The groups runs were queued in (any run, archived too)."""

        def read(conn: sqlite3.Connection) -> list[str]:
            return [r[0] for r in conn.execute("SELECT DISTINCT grp FROM runs") if r[0]]

        result: list[str] = self._with_db(read, [])
        return sorted(result)

    def ids(self) -> list[str]:
        def read(conn: sqlite3.Connection) -> list[str]:
            return [r[0] for r in conn.execute("SELECT id FROM runs")]

        result: list[str] = self._with_db(read, [])
        return result

    def get_value(self, key: str) -> str | None:
        """A small cached value (kv table), e.g. a validated definition's hash."""

        def read(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
            return str(row[0]) if row else None

        result: str | None = self._with_db(read, None)
        return result

    def set_value(self, key: str, value: str) -> None:
        def write(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, value))

        self._best_effort(write)

    def _info(self, row: Any, brief: bool) -> RunInfo:
        run_id, experiment, _, _, _, damaged, definition, meta = row[:8]
        # what the index holds passed the checks of runs/schema.py when it was recorded
        summary = _brief(row[8:], damaged is None) if brief else json.loads(row[8])
        return RunInfo(
            run_id,
            experiment,
            self._run_path(experiment, run_id),
            cast(RunSummary, summary),
            damaged=damaged,
            meta=json.loads(meta) if meta != "{}" else {},
            definition=definition,
            brief=brief,
        )

    def _run_path(self, experiment: str, run_id: str) -> Path:
        """`root/experiment/run_id`, without parsing the path again for each of 10,000
        runs: pathlib's own fast child constructor where this Python has it."""
        exp = self._exp_paths.get(experiment)
        if exp is None:
            exp = self._exp_paths[experiment] = self.root / experiment
        child = getattr(exp, "_make_child_relpath", None)
        return child(run_id) if child is not None else exp / run_id

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
                self._conn = None


_QS = ", ".join("?" * len(_COLUMNS.split(",")))


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _bump(conn: sqlite3.Connection) -> int:
    conn.execute("UPDATE kv SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
    row = conn.execute("SELECT value FROM kv WHERE key = 'generation'").fetchone()
    return int(row[0]) if row else 0


_INDEXES: dict[tuple[str, int], RunIndex] = {}
_INDEXES_LOCK = threading.Lock()


def index_for(root: Path) -> RunIndex:
    """The index of the store at `root`, one per process (a connection never crosses a fork)."""
    key = (os.path.abspath(root), os.getpid())
    with _INDEXES_LOCK:
        index = _INDEXES.get(key)
        if index is None:
            index = _INDEXES[key] = RunIndex(Path(root))
        return index


def close_indexes() -> None:
    """Close every index connection this process holds (each reopens on its next use): a
    process that has opened many stores, a test session among them, does not keep three
    open files for each."""
    with _INDEXES_LOCK:
        indexes = list(_INDEXES.values())
        _INDEXES.clear()
    for index in indexes:
        index.close()
