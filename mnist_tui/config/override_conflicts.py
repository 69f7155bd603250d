"""Overrides that contradict each other: an error, never "the last one wins".

`-S train.epochs.x=3 --epochs 1` used to train for one epoch without a word: the shortcut
became `train.epochs=1`, which replaced the invalid table `{x = 3}` before anything was
validated, so the bad override vanished. Two settings of one key (or of a key and a key
below it) that disagree are reported with both of their sources, whatever order they came
in; the same value given twice is fine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mnist_tui.errors import SpecError, SpecProblem


@dataclass(frozen=True)
class Setting:
    """One leaf an override sets: its key parts, the value, how messages name it."""

    parts: tuple[str, ...]
    value: Any
    source: str


def leaves(parts: Iterable[str], value: Any, source: str) -> list[Setting]:
    """The keys an override sets: a table value sets each of its keys (an empty table sets
    the table itself)."""
    parts = tuple(parts)
    if isinstance(value, Mapping) and value:
        out: list[Setting] = []
        for k, v in value.items():
            out += leaves((*parts, str(k)), v, source)
        return out
    return [Setting(parts, value, source)]


def _overlap(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    short, long = (a, b) if len(a) <= len(b) else (b, a)
    return long[: len(short)] == short


def _same(a: Setting, b: Setting) -> bool:
    return a.parts == b.parts and type(a.value) is type(b.value) and a.value == b.value


def disagree(a: Setting, b: Setting) -> bool:
    """Whether two settings touch one key (or a key and a table above it) differently."""
    return _overlap(a.parts, b.parts) and not _same(a, b)


def conflicts(settings: list[Setting]) -> list[tuple[Setting, Setting]]:
    """Pairs of settings from different overrides that overlap and disagree."""
    out: list[tuple[Setting, Setting]] = []
    for i, a in enumerate(settings):
        for b in settings[i + 1 :]:
            if a.source != b.source and _overlap(a.parts, b.parts) and not _same(a, b):
                out.append((a, b))
    return out


def _key(s: Setting) -> str:
    return ".".join(s.parts)


def check_overrides(settings: list[Setting]) -> None:
    """Raise one SpecError naming every pair of `-S` overrides that disagree."""
    problems = []
    for a, b in conflicts(settings):
        key = min(_key(a), _key(b), key=len)
        problems.append(
            SpecProblem(
                f"{a.source} and {b.source}",
                key,
                "set twice with different values; give only one of them",
            )
        )
    if problems:
        raise SpecError(problems)
