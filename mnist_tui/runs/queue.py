"""A persistent run queue: entries on disk, each run trained in its own child process.

The queue lives in `<runs-dir>/.queue.json`. Queueing creates the run directory at once
(status "queued") so every view sees it; `QueueRunner.poll()` starts queued runs as
`python -m mnist_tui.cli run --attach RUN_ID ...` child processes, up to the
concurrency limit, in queue order. A child is its own process session: it survives the
app closing when the user asks for that, and a crash or CUDA out-of-memory in it cannot
take the app down. The app follows runs through the run store, never through pipes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mnist_tui.config.spec import ExperimentSpec
from mnist_tui.errors import StoreError
from mnist_tui.runs.io import pid_alive, write_json_atomic
from mnist_tui.runs.store import RunInfo, RunStore


@dataclass
class QueueEntry:
    run_id: str
    experiment: str
    overrides: list[str] = field(default_factory=list)
    added: float = 0.0
    pid: int | None = None
    started: float | None = None


class RunQueue:
    """Queued and running entries, in order, persisted after every change."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self.path = store.root / ".queue.json"
        self.entries: list[QueueEntry] = self._load()

    def _load(self) -> list[QueueEntry]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        out = []
        for item in raw.get("entries", []) if isinstance(raw, dict) else []:
            with contextlib.suppress(TypeError):
                out.append(QueueEntry(**item))
        return out

    def save(self) -> None:
        self.store.root.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path, {"entries": [asdict(e) for e in self.entries]})

    def add(
        self, spec: ExperimentSpec, overrides: list[str], group: str | None = None
    ) -> QueueEntry:
        handle = self.store.create(
            spec.name,
            spec.to_toml(),
            status="queued",
            seed=spec.train.seed,
            group=group,
            extra={"epochs": spec.train.epochs, "overrides": overrides, "pid": None},
        )
        entry = QueueEntry(handle.id, spec.name, overrides, time.time())
        self.entries.append(entry)
        self.save()
        return entry

    def find(self, run_id: str) -> QueueEntry | None:
        return next((e for e in self.entries if e.run_id == run_id), None)

    def move(self, run_id: str, delta: int) -> None:
        """Move an entry up (-1) or down (+1) among the entries."""
        entry = self.find(run_id)
        if entry is None:
            return
        i = self.entries.index(entry)
        j = max(0, min(len(self.entries) - 1, i + delta))
        self.entries.insert(j, self.entries.pop(i))
        self.save()

    def run_info(self, entry: QueueEntry) -> RunInfo | None:
        return self.store.read_run(entry.experiment, entry.run_id)

    def cancel(self, run_id: str) -> None:
        """A queued run is marked killed at once; a running one is asked to stop."""
        entry = self.find(run_id)
        if entry is None:
            return
        if entry.pid and pid_alive(entry.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(entry.pid, signal.SIGTERM)
            return
        info = self.run_info(entry)
        if info is not None and info.status == "queued":
            self.store.handle(info).update(status="killed", reason="cancelled before it started")
        self.entries.remove(entry)
        self.save()


class QueueRunner:
    """Starts queued runs as child processes and reaps finished ones; call `poll` often."""

    def __init__(
        self,
        queue: RunQueue,
        *,
        data_dir: Path | None = None,
        experiments_dir: Path | None = None,
        device: str = "auto",
        concurrency: int = 1,
    ) -> None:
        self.queue = queue
        self.data_dir = data_dir
        self.experiments_dir = experiments_dir
        self.device = device
        self.concurrency = max(0, concurrency)  # 0 pauses the queue
        self.children: dict[str, subprocess.Popen[bytes]] = {}

    def running(self) -> list[QueueEntry]:
        return [e for e in self.queue.entries if e.pid is not None]

    def poll(self) -> bool:
        """Reap, then start what the concurrency allows. Returns True when anything changed."""
        changed = False
        for entry in list(self.queue.entries):
            if entry.pid is None:
                continue
            child = self.children.get(entry.run_id)
            alive = child.poll() is None if child is not None else pid_alive(entry.pid)
            if alive:
                continue
            self.children.pop(entry.run_id, None)
            info = self.queue.run_info(entry)
            if info is not None and info.summary.get("status") in ("running", "queued"):
                code = child.returncode if child is not None else None
                self.queue.store.handle(info).update(
                    status="failed" if code not in (None, 0) else "interrupted",
                    reason=f"the run's process ended unexpectedly (exit code {code})",
                )
            self.queue.entries.remove(entry)
            changed = True
        while len(self.running()) < self.concurrency:
            nxt = next((e for e in self.queue.entries if e.pid is None), None)
            if nxt is None:
                break
            self._start(nxt)
            changed = True
        if changed:
            self.queue.save()
        return changed

    def _start(self, entry: QueueEntry) -> None:
        cmd = [
            sys.executable,
            "-m",
            "mnist_tui",
            "run",
            entry.experiment,
            "--attach",
            entry.run_id,
            "--runs-dir",
            str(self.queue.store.root),
            "--device",
            self.device,
            "--quiet",
        ]
        if self.data_dir is not None:
            cmd += ["--data-dir", str(self.data_dir)]
        if self.experiments_dir is not None:
            cmd += ["--experiments-dir", str(self.experiments_dir)]
        for o in entry.overrides:
            cmd += ["-S", o]
        log_path = self.queue.store.root / entry.experiment / entry.run_id / "log.txt"
        try:
            log = log_path.open("ab")
        except OSError as exc:
            raise StoreError(f"cannot write {log_path}: {exc.strerror}") from None
        with log:
            child = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # survives the app, and Ctrl-C in it
                env={**os.environ, "PYTHONUNBUFFERED": "1"},  # the log fills as it runs
            )
        self.children[entry.run_id] = child
        entry.pid = child.pid
        entry.started = time.time()

    def stop_all(self) -> None:
        for entry in self.running():
            self.queue.cancel(entry.run_id)
