"""A run's status: the words a summary.json stores and the two more that views show.

A leaf module (it imports nothing of ours): the trainer reports how a run ended and the
run store checks what a summary holds, and neither layer may import the other. A
`StrEnum`, so that a status is still the string JSON, SQLite and the CLI's filters hold.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    KILLED = "killed"
    INTERRUPTED = "interrupted"
    # shown, never stored: a run whose files fail their checks, and a running run that
    # was asked to stop and has not yet seen it
    DAMAGED = "damaged"
    STOPPING = "stopping"


# what a summary.json may hold, in the order listings explain them
STATUSES: tuple[RunStatus, ...] = (
    RunStatus.QUEUED,
    RunStatus.RUNNING,
    RunStatus.COMPLETED,
    RunStatus.FAILED,
    RunStatus.KILLED,
    RunStatus.INTERRUPTED,
)
ACTIVE: tuple[RunStatus, ...] = (RunStatus.QUEUED, RunStatus.RUNNING)
