"""Messages of the console: what screens ask of the app, and what workers bring back.

Screens never call the app's methods; they post one of the requests below, which
bubbles to the app's `@on(...)` handlers. Workers (threads) only `post_message` one of
the results, the one thing that is safe from another thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from textual.message import Message

if TYPE_CHECKING:
    from mnist_tui.config.spec import ExperimentSpec
    from mnist_tui.runs.record import RunInfo
    from mnist_tui.studies.catalog import ExperimentRow, Subject
    from mnist_tui.studies.diff import Change, FigureDelta
    from mnist_tui.studies.predictions import Samples
    from mnist_tui.studies.tune import StudySummary
    from mnist_tui.views.tables import TableData

# ----------------------------------------------------------------------------- requests


@dataclass
class OpenExperiment(Message):
    name: str


@dataclass
class OpenRun(Message):
    run_id: str


@dataclass
class OpenDiff(Message):
    a: str  # experiment name or run id
    b: str


@dataclass
class OpenOverlay(Message):
    run_ids: list[str]


@dataclass
class OpenSamples(Message):
    run: RunInfo


@dataclass
class OpenSearches(Message):
    pass


@dataclass
class AskQueue(Message):
    """Ask for overrides, then queue these experiments."""

    names: list[str]


@dataclass
class CancelRun(Message):
    run_id: str


@dataclass
class RunAction(Message):
    """Do something to a run: resume it, tag it, note it, archive it, delete it (to the
    trash), or queue its experiment again with its overrides to change ("again")."""

    run_id: str
    action: Literal["resume", "tag", "note", "archive", "delete", "again"]


class TogglePause(Message):
    """Pause the queue (start nothing new) or resume it."""


@dataclass
class MoveRun(Message):
    run_id: str
    where: Literal["up", "down"]


@dataclass
class QuitRequested(Message):
    pass


@dataclass
class MainReady(Message):
    """The main screen is composed: store reads can be shown from now on."""


# ----------------------------------------------------------------------------- results


@dataclass
class StoreRead(Message):
    """What the store thread read; a part is None when it did not change."""

    experiments: list[ExperimentRow] | None
    experiments_table: TableData | None
    runs: list[RunInfo] | None
    runs_table: TableData | None
    queue_table: TableData | None
    summary: str
    in_flight: int
    title: str = ""  # the one-line live summary for the terminal title and the header
    paused: bool = False  # the queue starts no new run
    # the runs whose status may have moved (the active ones and those that changed)
    watched: list[RunInfo] = field(default_factory=list)

    def can_replace(self, message: Message) -> bool:
        # Textual drops this (older, unread) snapshot for `message` (newer) when this is
        # True: only when the newer one carries every part this one had
        if not isinstance(message, StoreRead) or self.watched:
            return False  # (a run that ended is told once, from the read that saw it)
        return all(
            theirs is not None or mine is None
            for mine, theirs in (
                (self.experiments, message.experiments),
                (self.runs, message.runs),
                (self.queue_table, message.queue_table),
            )
        )


@dataclass
class Notice(Message):
    text: str
    severity: Literal["information", "warning", "error"] = "information"
    # notices about one subject ("sort", a run id) replace each other instead of stacking
    subject: str = ""


@dataclass
class StoreChanged(Message):
    """Sent by the app to every open screen when a store read found new runs or changed
    statuses: screens other than the main one follow the store with it."""

    read: StoreRead


@dataclass
class ReportBuilt(Message):
    table: TableData


@dataclass
class WhereMatched(Message):
    """The runs a filter expression matched (evaluated in a thread): their ids and
    their experiments. `seq` tells a stale evaluation from the latest one."""

    seq: int
    text: str
    runs: frozenset[str]
    experiments: frozenset[str]


@dataclass
class ExperimentLoaded(Message):
    spec: ExperimentSpec | None
    runs: list[RunInfo]
    error: str = ""


@dataclass
class RunTailed(Message):
    """New epochs of a run (all of them again when `reset`), its fresh summary, its log."""

    run: RunInfo
    rows: list[dict[str, Any]]
    reset: bool
    log: list[str] | None  # None: the log did not change
    steps: list[dict[str, Any]] = field(default_factory=list)  # new step reports
    steps_reset: bool = False  # the step reports were rewritten: `steps` holds them all
    note: str = ""  # why the result looks as it does, when known (chance level)

    def can_replace(self, message: Message) -> bool:
        return False  # rows are increments: every one must arrive


@dataclass
class SamplesReady(Message):
    samples: Samples | None
    mistakes: bool  # what was asked: an answer to an older request is dropped
    seed: int
    error: str = ""


@dataclass
class StudiesRead(Message):
    studies: list[StudySummary]


@dataclass
class DiffLoaded(Message):
    a: Subject | None
    b: Subject | None
    changes: list[Change] = field(default_factory=list)  # every key, changed or not
    deltas: list[FigureDelta] = field(default_factory=list)
    curves: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)
    error: str = ""


@dataclass
class OverlayLoaded(Message):
    runs: list[tuple[RunInfo, list[dict[str, Any]]]]
    missing: list[str]
    steps: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # run id -> reports


@dataclass
class OverridesChecked(Message):
    specs: list[ExperimentSpec]
    overrides: list[str]
    error: str = ""
