"""The run store: one directory per run, written so that readers never see half a file.

    runs/<experiment>/<run-id>/
        spec.toml        resolved experiment (the exact definition that ran)
        model.py         a user's model file, whole, as it was when the run was made
        summary.json     status, figures, timings (rewritten atomically)
        metrics.jsonl    one line per epoch, appended and flushed
        env.json         versions, device, seed, command line, git commit
        best.pt last.pt  checkpoints (weights + spec; last also optimizer and RNG state)

Statuses: queued, running, completed, failed, killed, interrupted. A run whose summary
says running but whose process is gone reads as interrupted; one whose files do not hold
what they must (runs/schema.py) reads as damaged, with what is wrong.

Listings come from the run index (runs/index.py), a cache the store keeps current.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

from mnist_tui.errors import StoreError, did_you_mean
from mnist_tui.runs import schema
from mnist_tui.runs.index import RunIndex, RunQuery, index_for
from mnist_tui.runs.io import write_json_atomic
from mnist_tui.runs.record import RUN_ID, SAFE_NAME, RunInfo, read_run_dir
from mnist_tui.runs.schema import RunSummary
from mnist_tui.status import RunStatus


def default_runs_dir(explicit: str | Path | None = None) -> Path:
    """`--runs-dir`, else `MNIST_TUI_RUNS`, else ./runs."""
    if explicit:
        return Path(explicit).expanduser()
    return Path(os.environ.get("MNIST_TUI_RUNS") or "runs")


class RunHandle:
    """Writes one run's files. Every write leaves the directory readable."""

    def __init__(self, path: Path, summary: dict[str, Any]) -> None:
        self.path = path
        self.id = path.name
        self.summary = summary

    def update(self, **fields: Any) -> None:
        self.summary.update(fields)
        write_json_atomic(self.path / "summary.json", self.summary)
        index_for(self.path.parent.parent).record(self.path)

    def append_metrics(self, row: dict[str, Any]) -> None:
        line = json.dumps(row, sort_keys=True) + "\n"
        try:
            with (self.path / "metrics.jsonl").open("a", encoding="utf-8") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise StoreError(
                f"cannot append to {self.path / 'metrics.jsonl'}: {exc.strerror}"
            ) from None

    def rewrite_metrics(self, rows: list[dict[str, Any]]) -> None:
        """Replace metrics.jsonl atomically (used when resuming from a checkpoint)."""
        target = self.path / "metrics.jsonl"
        tmp = target.with_name(f".metrics.jsonl.{os.getpid()}.tmp")
        try:
            with tmp.open("w", encoding="utf-8") as fh:
                fh.writelines(json.dumps(r, sort_keys=True) + "\n" for r in rows)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except OSError as exc:
            raise StoreError(f"cannot rewrite {target}: {exc.strerror}") from None

    def save_checkpoint(self, kind: str, state: dict[str, Any]) -> None:
        import torch

        target = self.path / f"{kind}.pt"
        tmp = target.with_name(f".{kind}.pt.tmp")
        try:
            torch.save(state, tmp)
            os.replace(tmp, target)
        except (OSError, RuntimeError) as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise StoreError(f"cannot write checkpoint {target}: {exc}") from None

    def info(self) -> RunInfo:
        # the summary as this process wrote it: the fields runs/schema.py checks on reading
        summary = cast(RunSummary, self.summary)
        return RunInfo(self.id, self.summary.get("experiment", ""), self.path, summary)


class RunStore:
    """All runs under one root directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def index(self) -> RunIndex:
        return index_for(self.root)

    def change_token(self) -> tuple[Any, ...]:
        """Cheap to poll; differs whenever a listing may have changed (see runs/index.py)."""
        return self.index.change_token()

    def _ensure_root(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the runs directory {self.root}: {exc.strerror}"
            ) from None
        if not os.access(self.root, os.W_OK):
            raise StoreError(f"the runs directory {self.root} is not writable")

    def create(
        self,
        experiment: str,
        spec_toml: str,
        *,
        status: str = RunStatus.RUNNING,
        seed: int = 0,
        group: str | None = None,
        extra: dict[str, Any] | None = None,
        files: dict[str, bytes] | None = None,
    ) -> RunHandle:
        """Make a new run directory with its spec and a first summary; `files` are more
        files frozen with the spec (a user model's source, `ExperimentSpec.run_files`)."""
        if not SAFE_NAME.fullmatch(experiment):
            raise StoreError(f"'{experiment}' cannot name a run directory")
        self._ensure_root()
        exp_dir = self.root / experiment
        # Build the run in a hidden directory and rename it into place when its files are
        # written: readers never see a run directory without its summary.
        for _ in range(100):
            run_id = secrets.token_hex(4)
            path = exp_dir / run_id
            staging = exp_dir / f".{run_id}.creating"
            if path.exists():
                continue
            try:
                staging.mkdir(parents=True, exist_ok=False)
                break
            except FileExistsError:
                continue
            except OSError as exc:
                raise StoreError(f"cannot create {staging}: {exc.strerror}") from None
        else:  # pragma: no cover - 100 collisions of 32 random bits
            raise StoreError("could not allocate a run id")
        summary: dict[str, Any] = {
            "id": run_id,
            "experiment": experiment,
            "status": status,
            "created": time.time(),
            "seed": seed,
            "group": group,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            **(extra or {}),
        }
        try:
            (staging / "spec.toml").write_text(spec_toml, encoding="utf-8")
            for name, content in (files or {}).items():
                (staging / name).write_bytes(content)
            write_json_atomic(staging / "summary.json", summary)
            os.rename(staging, path)
        except (OSError, StoreError) as exc:
            shutil.rmtree(staging, ignore_errors=True)
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            raise StoreError(f"cannot create the run directory {path}: {reason}") from None
        self.index.record(path)
        return RunHandle(path, summary)

    def handle(self, info: RunInfo) -> RunHandle:
        return RunHandle(info.path, dict(info.summary))

    def iter_runs(self, experiment: str | None = None) -> Iterator[RunInfo]:
        """Every run directory read from disk, damaged ones included (no index)."""
        if not self.root.is_dir():
            return
        exp_dirs = [self.root / experiment] if experiment else sorted(self.root.iterdir())
        for exp_dir in exp_dirs:
            if not exp_dir.is_dir() or exp_dir.name.startswith("."):
                continue
            for run_dir in exp_dir.iterdir():
                info = self._read(run_dir)
                if info is not None:
                    yield info

    def damaged(self) -> list[RunInfo]:
        """Runs whose files do not hold what they must (`damaged` says what)."""
        return self.index.runs(RunQuery(statuses=(schema.DAMAGED,), archived=None), brief=True)

    @staticmethod
    def _read(run_dir: Path) -> RunInfo | None:
        return read_run_dir(run_dir)

    def read_run(self, experiment: str, run_id: str) -> RunInfo | None:
        if not SAFE_NAME.fullmatch(experiment) or not RUN_ID.match(run_id):
            return None
        return self._read(self.root / experiment / run_id)

    def runs(
        self,
        experiment: str | None = None,
        *,
        archived: bool = False,
        brief: bool = False,
        stored: tuple[str, ...] = (),
    ) -> list[RunInfo]:
        """Runs, newest first, from the index (checked against the disk first).

        Archived runs are left out unless `archived`; `brief` summaries carry what
        listings show, not per-class figures (`RunInfo.full()` reads the rest); `stored`
        keeps only runs whose summary.json status is one of these (e.g. a scheduler's
        ("queued", "running"): a few rows instead of every run).
        """
        query = RunQuery(
            experiments=(experiment,) if experiment else (),
            archived=None if archived else False,
            stored=stored,
        )
        return self.index.runs(query, brief=brief)

    def resolve(self, ref: str) -> RunInfo:
        """A run by id prefix, or by recency: "1" (or "@1") is the newest, "2" the one before.

        Recency counts the runs `runs()` lists (archived ones left out); an id finds any.
        """
        ref = ref.strip()
        index = self.index
        index.refresh()
        recency = ref[1:] if ref.startswith("@") else ref
        if recency.isdigit() and len(recency) <= 3:
            k = int(recency)
            newest = index.runs(limit=1, offset=k - 1, brief=True, synced=True) if k else []
            if newest:
                return self._read(newest[0].path) or newest[0]
            if ref.startswith("@"):
                raise StoreError(f"run @{k}: there are only {index.count()} runs in {self.root}")
        if not re.fullmatch(r"[0-9a-f]{1,8}", ref):
            hint = did_you_mean(ref, index.ids())
            raise StoreError(f"'{ref}' is not a run id (8 hex digits, or a unique prefix).{hint}")
        matches = index.runs(
            RunQuery(id_prefix=ref, archived=None), limit=7, brief=True, synced=True
        )
        if not matches:
            raise StoreError(f"no run '{ref}' in {self.root}")
        if len(matches) > 1:
            ids = ", ".join(f"{r.id} ({r.experiment})" for r in matches[:6])
            raise StoreError(f"run prefix '{ref}' is ambiguous: {ids}")
        return self._read(matches[0].path) or matches[0]
