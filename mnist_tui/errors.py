"""User-facing errors: each one carries a message fit to print without a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


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
        lines += [f"  • {p.render()}" for p in self.problems]
        return "\n".join(lines)


class SpecProblem:
    """One problem: where it came from (file or override), the dotted key, what was wrong."""

    def __init__(self, source: str, key: str, message: str) -> None:
        self.source = source
        self.key = key
        self.message = message

    def render(self) -> str:
        where = f"{self.source}: " if self.source else ""
        key = f"{self.key}: " if self.key else ""
        return f"{where}{key}{self.message}"

    def __repr__(self) -> str:
        return f"SpecProblem({self.render()!r})"


class DataError(MnistTuiError):
    """Dataset files missing, corrupt, or unreadable."""


class StoreError(MnistTuiError):
    """The run store cannot be read or written, or a run reference does not resolve."""


class TrainingError(MnistTuiError):
    """Training could not start or could not go on (device unavailable, out of memory...)."""


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """Return " Did you mean 'x'?" for the closest candidate, or "" when none is close."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" Did you mean '{matches[0]}'?" if matches else ""
