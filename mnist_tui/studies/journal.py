"""Opening an Optuna journal file that may not be one.

A journal is replayed in full when it is opened; a file of garbage bytes, lines that are
not JSON objects, or operations Optuna does not know fail deep inside Optuna
(`UnicodeDecodeError`, `KeyError`, `AssertionError: Should not reach.`). Opening only reads
it, so a failure here has changed nothing: say which file, and what to do with it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from mnist_tui.errors import MnistTuiError

TAIL_WAIT = 0.3  # a line without its newline yet: another process may be writing it


class JournalError(MnistTuiError):
    """A journal file that Optuna cannot replay."""

    def __init__(self, path: Path, problem: BaseException | str) -> None:
        self.path = path
        if isinstance(problem, str):
            why = problem
        elif isinstance(problem, AssertionError):  # Optuna's "Should not reach."
            why = "an operation Optuna cannot replay: unknown, or not in the order it needs"
        elif isinstance(problem, KeyError):
            why = f"an operation without its field {problem}"
        else:
            text = str(problem).strip()
            what = text.splitlines()[0][:160] if text else ""
            why = type(problem).__name__ + (f": {what}" if what else "")
        super().__init__(
            f"{path}: not an Optuna journal that can be read ({why}); nothing was "
            f"changed. Move it aside "
            f"(mv '{path}' '{path}.bad') to start a new search there, or give another "
            "journal with --storage"
        )


def _bad_line(data: bytes) -> str | None:
    """Why the complete lines of a journal are not one JSON object each (None: they are).

    Optuna takes a bad last line for one still being written and skips it, then fails
    once its own next line follows it: checked here before Optuna appends anything."""
    lines = data.split(b"\n")
    lines.pop()  # after the last newline: empty, or a line still being written
    for number, line in enumerate(lines, 1):
        try:
            value = json.loads(line)
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError alike
            reason = "not UTF-8" if isinstance(exc, UnicodeDecodeError) else "not JSON"
            return f"line {number} is {reason}"
        if not isinstance(value, dict) or not isinstance(value.get("op_code"), int):
            return f"line {number} is not a journal operation (a JSON object with an op_code)"
    return None


def check_lines(path: Path) -> None:
    """Raise JournalError if `path` holds a line that is not a journal operation, or ends
    in a part line that no one finishes."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise MnistTuiError(f"--storage: cannot read {path}: {exc.strerror}") from None
    if (why := _bad_line(data)) is not None:
        raise JournalError(path, why)
    if data and not data.endswith(b"\n"):
        time.sleep(TAIL_WAIT)
        again = path.read_bytes()
        if again.startswith(data) and not again.endswith(b"\n"):
            last = data.count(b"\n") + 1
            raise JournalError(path, f"line {last} is cut short: it has no newline")
        if (why := _bad_line(again)) is not None:
            raise JournalError(path, why)


def open_journal(optuna: Any, path: Path) -> Any:
    """An Optuna JournalStorage over `path`, replayed and its trials read once, so that a
    damaged file is a JournalError before anything is written to it or queued."""
    check_lines(path)
    try:
        backend = optuna.storages.journal.JournalFileBackend(str(path))
    except OSError as exc:
        raise MnistTuiError(f"--storage: cannot use {path}: {exc.strerror}") from None
    try:
        storage = optuna.storages.JournalStorage(backend)
        for study in storage.get_all_studies():
            storage.get_all_trials(study._study_id, deepcopy=False)
    except MnistTuiError:
        raise
    except Exception as exc:  # whatever Optuna's replay trips on: the file is the cause
        raise JournalError(path, exc) from None
    return storage
