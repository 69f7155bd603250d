"""Differences between two experiments or runs: pure functions over dicts."""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mnist_tui.config.spec import ExperimentSpec, flatten

MISSING = object()


@dataclass(frozen=True)
class Change:
    key: str
    a: Any  # MISSING when only b has the key
    b: Any

    @property
    def changed(self) -> bool:
        return not _same(self.a, self.b)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return (type(a) is type(b) and a == b) or (
        isinstance(a, int | float)
        and isinstance(b, int | float)
        and not isinstance(a, bool)
        and not isinstance(b, bool)
        and a == b
    )


def diff_definitions(
    a: dict[str, Any], b: dict[str, Any], include_same: bool = False
) -> list[Change]:
    """Dotted-key comparison of two nested dicts (lists compare as whole values)."""
    fa, fb = flatten(a), flatten(b)
    out = []
    for key in sorted(set(fa) | set(fb)):
        change = Change(key, fa.get(key, MISSING), fb.get(key, MISSING))
        if include_same or change.changed:
            out.append(change)
    return out


# Figures compared for runs: (label, where, key, higher is better)
RUN_FIGURES: list[tuple[str, str, str, bool]] = [
    ("final test acc", "final", "test_acc", True),
    ("final test loss", "final", "test_loss", False),
    ("best test acc", "best", "test_acc", True),
    ("best test loss", "best", "test_loss", False),
    ("final val acc", "final", "val_acc", True),
    ("final val loss", "final", "val_loss", False),
    ("final train acc", "final", "train_acc", True),
    ("final train loss", "final", "train_loss", False),
]


@dataclass(frozen=True)
class FigureDelta:
    label: str
    a: float | None
    b: float | None
    higher_is_better: bool

    @property
    def delta(self) -> float | None:
        if self.a is None or self.b is None:
            return None
        return self.b - self.a


def result_deltas(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[FigureDelta]:
    """Deltas of the headline figures of two results dicts (run summaries or reported)."""
    out = []
    for label, where, key, hib in RUN_FIGURES:
        va = (a.get(where) or {}).get(key)
        vb = (b.get(where) or {}).get(key)
        if va is None and vb is None:
            continue
        out.append(FigureDelta(label, va, vb, hib))
    return out


def model_source_diff(a: ExperimentSpec, b: ExperimentSpec) -> list[str] | None:
    """The changed lines of two definitions' model files as a unified diff; None when both
    train the same source (or the same shipped model), [] when only one has a file."""
    sa, sb = a.model.source, b.model.source
    if sa == sb or (sa is not None and sb is not None and sa.sha256 == sb.sha256):
        return None
    if sa is None or sb is None:
        return []
    text_a = sa.text.decode("utf-8", errors="replace").splitlines()
    text_b = sb.text.decode("utf-8", errors="replace").splitlines()
    return list(difflib.unified_diff(text_a, text_b, sa.file, sb.file, lineterm=""))
