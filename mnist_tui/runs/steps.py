"""steps.jsonl: a run's running train loss and accuracy, a line per step report.

Beside metrics.jsonl (one line per epoch), appended and flushed as each report comes,
so a view sees the first epoch as it trains. A line:

    {"epoch": 1, "step": 19, "steps": 938, "x": 0.0203, "train_loss": 1.2, "train_acc": 0.61,
     "images": 1216, "time": 1796000000.12}

`x` is the position in epochs (fractional), `time` the wall clock. The trainer caps the
reports of a run (train.trainer.MAX_STEP_REPORTS), so the file stays under ~1 MB.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from mnist_tui.errors import StoreError
from mnist_tui.runs.io import read_metrics

STEPS = "steps.jsonl"
FIELDS = ("epoch", "step", "steps", "x", "train_loss", "train_acc", "images", "time")


def _round(v: float, digits: int = 5) -> float:
    """Five significant digits: plenty for a curve, and a third of the bytes of repr()."""
    if not math.isfinite(v) or v == 0:
        return v
    return round(v, max(0, digits - 1 - math.floor(math.log10(abs(v)))))


def step_row(
    epoch: int,
    step: int,
    steps: int,
    train_loss: float,
    train_acc: float,
    images: int,
    time: float,
) -> dict[str, Any]:
    return {
        "epoch": epoch,
        "step": step,
        "steps": steps,
        "x": round(epoch - 1 + step / max(steps, 1), 4),
        "train_loss": _round(train_loss),
        "train_acc": _round(train_acc),
        "images": images,
        "time": round(time, 2),
    }


def _valid(row: dict[str, Any]) -> bool:
    """Numbers where the views expect them; anything else is a line to skip."""
    for key in ("epoch", "x", "train_loss", "train_acc"):
        v = row.get(key)
        if isinstance(v, bool) or not isinstance(v, int | float):
            return False
    return True


def read_steps(run_dir: Path) -> list[dict[str, Any]]:
    """The step reports of a run; torn or malformed lines are skipped, a missing file is []."""
    return [r for r in read_metrics(run_dir / STEPS) if _valid(r)]


def keep_epochs(run_dir: Path, epochs_done: int) -> None:
    """Drop the reports of epochs after `epochs_done` (a resumed run retrains them), so the
    resumed run's reports continue the file rather than repeat part of an epoch."""
    path = run_dir / STEPS
    if not path.exists():
        return
    rows = read_steps(run_dir)
    kept = [r for r in rows if r["epoch"] <= epochs_done]
    if epochs_done == 0:
        kept = []
    tmp = path.with_name(f".{STEPS}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r, sort_keys=True) + "\n" for r in kept)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise StoreError(f"cannot rewrite {path}: {exc.strerror}") from None


class StepWriter:
    """Appends step reports to a run's steps.jsonl, each line flushed as it is written.

    No fsync per line: a report is cheap to lose in a crash (the epoch line in
    metrics.jsonl is the record), and ~50 fsyncs an epoch would not be."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / STEPS
        self._fh: IO[str] | None = None

    def write(self, row: dict[str, Any]) -> None:
        try:
            if self._fh is None:
                self._fh = self.path.open("a", encoding="utf-8")
            self._fh.write(json.dumps(row, sort_keys=True, allow_nan=True) + "\n")
            self._fh.flush()
        except OSError as exc:
            raise StoreError(f"cannot append to {self.path}: {exc.strerror}") from None

    def close(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):
                self._fh.close()
            self._fh = None

    def __enter__(self) -> StepWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
