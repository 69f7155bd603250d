"""User-facing errors: each one carries a message fit to print without a traceback."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any


class MnistTuiError(Exception):
    """An error caused by the user's input or environment, not by a bug.

    The CLI prints ``str(error)`` and exits with ``exit_code``; no traceback.
    """

    exit_code = 2


class SpecError(MnistTuiError):
    """One or more problems in an experiment definition or an override."""

    def __init__(self, problems: list[SpecProblem]) -> None:
        self.problems = problems
        super().__init__(self._render())

    def _render(self) -> str:
        if len(self.problems) == 1:
            return self.problems[0].render()
        lines = [f"{len(self.problems)} problems in the experiment definition:"]
        lines += [f"  • {p.render()}" for p in self.problems[:MAX_SHOWN]]
        if len(self.problems) > MAX_SHOWN:
            # a generated file can hold thousands of bad keys; the first ones tell the story
            lines.append(f"  … and {len(self.problems) - MAX_SHOWN} more")
        return "\n".join(lines)


MAX_SHOWN = 25


class SpecProblem:
    """One problem: where it came from (file or override), the dotted key, what was wrong."""

    def __init__(self, source: str, key: str, message: str) -> None:
        self.source = source
        self.key = key
        self.message = message

    def render(self) -> str:
        where = f"{self.source}: " if self.source else ""
        shown = self.key if len(self.key) <= 100 else self.key[:80] + "…"
        key = f"{shown}: " if self.key else ""
        return f"{where}{key}{self.message}"

    def __repr__(self) -> str:
        return f"SpecProblem({self.render()!r})"


class Problems:
    """Every problem found in one definition, each placed at its source and dotted key.

    ``problems.at("optim.lr").add("expected a number > 0")`` records a problem; the source
    (file or ``-S`` override) is looked up in `origins`: the key itself, else the override
    or file that set something below it, else the nearest table above it, else `fallback`.
    `raise_if_any` then raises one SpecError listing them all.
    """

    def __init__(self, origins: Mapping[str, str] | None = None, fallback: str = "") -> None:
        self.origins: Mapping[str, str] = origins if origins is not None else {}
        self.fallback = fallback
        self.items: list[SpecProblem] = []
        self._below: dict[str, str] | None = None

    def source_of(self, key: str) -> str:
        if key in self.origins:
            return self.origins[key]
        if self._below is None:
            self._below = {}
            for k, src in self.origins.items():
                parts = k.split(".")
                for i in range(1, len(parts)):
                    prefix = ".".join(parts[:i])
                    # an override is the likelier culprit than the file it overrides
                    if prefix not in self._below or src.startswith("-S "):
                        self._below[prefix] = src
        if key in self._below:
            return self._below[key]
        parts = key.split(".")
        for i in range(len(parts) - 1, 0, -1):
            prefix = ".".join(parts[:i])
            if prefix in self.origins:
                return self.origins[prefix]
        return self.fallback

    def at(self, key: str, source: str | None = None) -> ProblemSite:
        """The place to report a problem: `key`, in `source` (default: where `key` was set)."""
        return ProblemSite(self, self.source_of(key) if source is None else source, key)

    def add(self, problem: SpecProblem) -> None:
        self.items.append(problem)

    def extend(self, problems: Iterable[SpecProblem]) -> None:
        self.items.extend(problems)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[SpecProblem]:
        return iter(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            raise SpecError(list(self.items))


class ProblemSite:
    """One source and key of a `Problems` collector."""

    def __init__(self, problems: Problems, source: str, key: str) -> None:
        self.problems = problems
        self.source = source
        self.key = key

    def add(self, message: str) -> None:
        self.problems.add(SpecProblem(self.source, self.key, message))

    def unknown(self, word: str, allowed: Iterable[str], where: str = "here") -> None:
        """`word` is not one of `allowed`: say so, with the closest match and the list."""
        allowed = list(allowed)
        # past a hundred problems nobody reads the hints; a generated file may hold 10**5
        hint = did_you_mean(word, allowed) if len(self.problems) < 100 else ""
        self.add(f"unknown key.{hint} Allowed {where}: {', '.join(allowed)}")


class DataError(MnistTuiError):
    """Dataset files missing, corrupt, or unreadable."""


class StoreError(MnistTuiError):
    """The run store cannot be read or written, or a run reference does not resolve."""


class TrainingError(MnistTuiError):
    """Training could not start or could not go on (device unavailable, out of memory...)."""


def close_names(word: str, candidates: Iterable[str], cutoff: float = 0.6) -> list[str]:
    """The candidates as close to `word` as the closest one (`fnn` -> fnn1, fnn2, fnn3),
    in natural order; at most five."""
    if len(word) > 200:  # no key or name is that long; spare difflib a pasted paragraph
        return []
    scored = []
    for c in set(candidates):
        ratio = difflib.SequenceMatcher(None, word, c).ratio()
        if ratio >= cutoff:
            scored.append((ratio, c))
    if not scored:
        return []
    best = max(r for r, _ in scored)
    close = [c for r, c in scored if r >= best - 0.02]
    return sorted(close, key=natural_key)[:5]


def natural_key(name: str) -> list[Any]:
    """task2 before task10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """ " Did you mean 'x'?" (or 'x', 'y' or 'z' when as close), or "" when none is close."""
    close = [f"'{c}'" for c in close_names(word, candidates)]
    if not close:
        return ""
    listed = close[0] if len(close) == 1 else f"{', '.join(close[:-1])} or {close[-1]}"
    return f" Did you mean {listed}?"
