"""What a training run reports, as plain data.

The trainer emits these; the CLI draws progress bars from them, the run store writes
them down, the TUI reads them back from the store. No Textual here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mnist_tui.status import RunStatus


@dataclass(frozen=True)
class EpochMetrics:
    epoch: int  # 1-based
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    lr: float
    seconds: float  # wall time of the epoch: training and evaluation
    train_seconds: float  # the training part alone
    images_per_s: float  # training images per second of train_seconds
    val_loss: float | None = None
    val_acc: float | None = None
    test_per_class: list[float] = field(default_factory=list)
    test_confusion: list[list[int]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> EpochMetrics:
        known = {k: row[k] for k in cls.__dataclass_fields__ if k in row}
        return cls(**known)


@dataclass(frozen=True)
class RunStarted:
    run_id: str
    experiment: str
    device: str
    parameters: int
    epochs: int
    steps_per_epoch: int
    train_size: int
    start_epoch: int = 1


@dataclass(frozen=True)
class BatchProgress:
    epoch: int
    step: int  # steps done in this epoch
    steps: int  # steps in this epoch


@dataclass(frozen=True)
class StepReport:
    """The running train loss and accuracy over the steps since the previous report."""

    epoch: int  # 1-based, the epoch under way
    step: int  # steps done in this epoch
    steps: int  # steps in this epoch
    train_loss: float  # mean over the images since the previous report
    train_acc: float
    images: int  # how many images those means cover
    time: float  # wall clock (Unix seconds) when read

    @property
    def fraction(self) -> float:
        """Where this report falls in epochs: 0.5 is half-way through the first."""
        return self.epoch - 1 + self.step / max(self.steps, 1)


@dataclass(frozen=True)
class EpochEnded:
    metrics: EpochMetrics
    best_epoch: int
    improved: bool


@dataclass(frozen=True)
class RunEnded:
    status: RunStatus  # completed, failed or killed
    reason: str
    summary: dict[str, Any]


Event = RunStarted | BatchProgress | StepReport | EpochEnded | RunEnded
