"""A run as read from disk, and the run store's vocabulary: one home for each rule.

`RunInfo` (what every layer reads of a run), the statuses (defined beside the summary
checks in runs/schema.py, which validate them), run ids, the experiment-name rule that
run directories follow (config/names.py, shared with experiment files) and the flag files
a run directory may hold. Nothing here writes.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from mnist_tui.config.names import EXPERIMENT_NAME
from mnist_tui.runs import schema
from mnist_tui.runs.schema import ACTIVE as ACTIVE
from mnist_tui.runs.schema import STATUSES as STATUSES
from mnist_tui.runs.schema import RunSummary
from mnist_tui.status import RunStatus

FigurePart = Literal["final", "best", "last"]
CANCEL_FLAG = ".cancel"  # in a run directory: asks whoever trains it to stop
RUN_ID = re.compile(r"^[0-9a-f]{8}$")
SAFE_NAME = EXPERIMENT_NAME  # an experiment's runs live in a directory of its name


@dataclass
class RunInfo:
    """A run as read from disk (or from the index, which holds the same checked fields)."""

    id: str
    experiment: str
    path: Path
    summary: RunSummary  # only fields that passed the checks of runs/schema.py
    damaged: str | None = None  # what is wrong with the run's files, if anything
    meta: dict[str, Any] = field(default_factory=dict)  # tags, note, archived (meta.json)
    definition: str | None = None  # schema.definition_hash of spec.toml, when known
    brief: bool = False  # summary cut to what listings show (from the index)
    notes: list[str] = field(default_factory=list)  # metrics rows dropped by `metrics()`

    @property
    def status(self) -> RunStatus:
        s = self.summary
        return schema.effective_status(
            s.get("status", RunStatus.INTERRUPTED), s.get("host"), s.get("pid"), self.damaged
        )

    @property
    def stored_status(self) -> str | None:
        """The status as summary.json says, without asking whether its process still lives
        (what schedulers compare; `status` is what views show)."""
        return self.summary.get("status")

    @property
    def stop_requested(self) -> bool:
        """Someone asked this run to stop (`scheduler.cancel`); its trainer has not yet
        necessarily seen it."""
        return (self.path / CANCEL_FLAG).exists()

    @property
    def tags(self) -> list[str]:
        return list(self.meta.get("tags") or [])

    @property
    def note(self) -> str:
        return str(self.meta.get("note") or "")

    @property
    def archived(self) -> bool:
        return bool(self.meta.get("archived"))

    @property
    def created(self) -> float:
        return float(self.summary.get("created", 0.0))

    @property
    def group(self) -> str | None:
        return self.summary.get("group")

    @property
    def seed(self) -> int | None:
        return self.summary.get("seed")

    @property
    def reason(self) -> str:
        """Why it ended as it did ("" when nothing was said)."""
        return self.summary.get("reason") or ""

    @property
    def epochs(self) -> int | None:
        """The epochs it trains in all, when known."""
        return self.summary.get("epochs")

    @property
    def epochs_done(self) -> int:
        return self.summary.get("epochs_done") or 0

    @property
    def started(self) -> float | None:
        """When a trainer took it (None while queued)."""
        return self.summary.get("started")

    @property
    def device(self) -> str | None:
        """The device it trains or trained on."""
        return self.summary.get("device")

    @property
    def pin_device(self) -> str | None:
        """The device it was queued for (None: any)."""
        return self.summary.get("pin_device")

    @property
    def fold(self) -> int | None:
        return self.summary.get("fold")

    @property
    def trial(self) -> int | None:
        return self.summary.get("trial")

    @property
    def overrides(self) -> list[str]:
        return list(self.summary.get("overrides") or [])

    def figures(self, part: str) -> Mapping[str, Any]:
        """The `final`, `best` or `last` table of figures ({} when the run has none)."""
        figures = cast("Mapping[str, Any]", self.summary).get(part)
        return figures if isinstance(figures, dict) else {}

    def figure(self, part: FigurePart, key: str) -> float | None:
        """One figure of `final`, `best` or `last`; None when absent or not a number."""
        value = self.figures(part).get(key)
        return value if isinstance(value, int | float) else None

    def final(self, key: str) -> float | None:
        return self.figure("final", key)

    def best(self, key: str) -> float | None:
        return self.figure("best", key)

    def latest(self, key: str) -> float | None:
        """The final figure of a finished run, else the newest epoch's (a running run, or
        one stopped before its summary was written)."""
        value = self.final(key)
        return value if value is not None else self.figure("last", key)

    def metrics(self) -> list[dict[str, Any]]:
        """Epoch rows that pass the checks; each dropped row leaves a line in `notes`."""
        rows, self.notes = schema.read_metrics(self.path / "metrics.jsonl")
        return rows

    def env(self) -> dict[str, Any]:
        """env.json's fields that pass the checks."""
        return schema.read_env(self.path)[0]

    def definition_hash(self) -> str | None:
        """What the run trained, seed aside (equal hashes: equal definitions)."""
        if self.definition is None:
            with contextlib.suppress(OSError, UnicodeDecodeError):
                text = self.spec_path().read_text(encoding="utf-8")
                self.definition = schema.spec_text_hash(text)
        return self.definition

    def full(self) -> RunInfo:
        """This run with its whole summary read from disk (listings carry a brief one)."""
        if not self.brief:
            return self
        return read_run_dir(self.path) or self

    def spec_path(self) -> Path:
        return self.path / "spec.toml"

    def duration(self) -> float | None:
        return self.summary.get("wall_seconds")


def read_run_dir(run_dir: Path) -> RunInfo | None:
    """The run in `run_dir` as its files say (checked by runs/schema.py), or None."""
    if not RUN_ID.match(run_dir.name) or not run_dir.is_dir():
        return None
    loaded = schema.load_run(run_dir)
    return RunInfo(
        run_dir.name,
        run_dir.parent.name,
        run_dir,
        loaded.summary,
        damaged=loaded.damaged,
        meta=loaded.meta,
        definition=loaded.definition,
    )
