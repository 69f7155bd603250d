"""What a run directory's files must hold, checked every time they are read.

A view formats `created` as a date, `final.test_acc` as a percentage and a pid as a
process to signal: a hand-edited or half-migrated file with a string where a number
belongs must not reach them. `load_run` reads a run directory and returns the fields
that passed and, when any did not, what was wrong: that run is then "damaged" (listed,
never a crash). A metrics row of the wrong shape is dropped with a note instead, since
the other epochs are still good.

Unknown keys pass through untouched, so a newer writer's fields do not damage a run.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import socket
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from mnist_tui.runs.io import pid_alive
from mnist_tui.runs.summary import RunSummary as RunSummary
from mnist_tui.status import ACTIVE as ACTIVE
from mnist_tui.status import STATUSES as STATUSES
from mnist_tui.status import RunStatus

SUMMARY = "summary.json"
META = "meta.json"
ENV = "env.json"
SPEC = "spec.toml"
METRICS = "metrics.jsonl"
DAMAGED = RunStatus.DAMAGED
_STATUS = {s.value: s for s in STATUSES}  # a stored word to its member, without a call
# What training depends on (as ExperimentSpec.definition()); train.seed and
# train.repeats are left out: runs of one definition differ only in those.
DEFINITION_SECTIONS = ("data", "model", "optim", "schedule", "train", "augment")
SEED_KEYS = ("seed", "repeats")
MAX_INT = 1 << 62  # fits SQLite's 64-bit integers and every view's arithmetic
MAX_TIME = 1e11  # about the year 5138: beyond it time.localtime overflows
MAX_PID = (1 << 31) - 1  # os.kill overflows above this
TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:+/=-]{0,63}$")

Check = Callable[[Any], str | None]


def _show(v: Any) -> str:
    text = json.dumps(v, allow_nan=True) if not isinstance(v, str) else repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_number(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return -MAX_INT <= v <= MAX_INT
    return isinstance(v, float)


def number(v: Any) -> str | None:
    """Any number; NaN and infinity allowed (a diverged loss is a real result)."""
    return None if _is_number(v) else f"expected a number, got {_show(v)}"


def finite(v: Any) -> str | None:
    if _is_number(v) and math.isfinite(v) and abs(v) < MAX_TIME:
        return None
    return f"expected a finite number, got {_show(v)}"


def count(v: Any) -> str | None:
    if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_INT:
        return None
    return f"expected a whole number >= 0, got {_show(v)}"


def text(v: Any) -> str | None:
    return None if isinstance(v, str) else f"expected a string, got {_show(v)}"


def optional(check: Check) -> Check:
    def inner(v: Any) -> str | None:
        return None if v is None else check(v)

    return inner


def _fast_ok(check: Check, v: list[Any]) -> bool:
    """The common all-good case of a long list, without a call per item."""
    if check is number:
        return all(type(x) is float or (type(x) is int and -MAX_INT <= x <= MAX_INT) for x in v)
    if check is count:
        return all(type(x) is int and 0 <= x <= MAX_INT for x in v)
    if check is text:
        return all(type(x) is str for x in v)
    return False


def list_of(check: Check) -> Check:
    def inner(v: Any) -> str | None:
        if not isinstance(v, list):
            return f"expected a list, got {_show(v)}"
        if _fast_ok(check, v):
            return None
        for i, item in enumerate(v):
            problem = check(item)
            if problem:
                return f"item {i}: {problem}"
        return None

    return inner


def _figure(k: str, x: Any) -> str | None:
    if k == "epoch":
        return count(x)
    if x is None or type(x) is float:  # the common case, without a call
        return None
    return number(x)


def figures(v: Any) -> str | None:
    """`final`, `best`: figure name -> number (or null, e.g. val_acc without a split)."""
    if not isinstance(v, dict):
        return f"expected a table of figures, got {_show(v)}"
    for k, x in v.items():
        problem = _figure(k, x)
        if problem:
            return f"{k}: {problem}"
    return None


_numbers = list_of(number)


def last_figures(v: Any) -> str | None:
    """`last`: like `figures`, and per-class lists."""
    if not isinstance(v, dict):
        return f"expected a table of figures, got {_show(v)}"
    for k, x in v.items():
        problem = _numbers(x) if isinstance(x, list) and k != "epoch" else _figure(k, x)
        if problem:
            return f"{k}: {problem}"
    return None


def matrix(v: Any) -> str | None:
    """A square confusion matrix of counts."""
    counts = list_of(count)
    problem = list_of(counts)(v)
    if problem:
        return problem
    if any(len(row) != len(v) for row in v):
        return f"expected a square matrix, got rows of lengths {[len(r) for r in v][:12]}"
    return None


def pid(v: Any) -> str | None:
    if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_PID:
        return None
    return f"expected a process id, got {_show(v)}"


def status(v: Any) -> str | None:
    if isinstance(v, str) and v in STATUSES:
        return None
    return f"expected one of {', '.join(STATUSES)}; got {_show(v)}"


def table(v: Any) -> str | None:
    """A JSON object of any content (`system`: what a run's monitor measured)."""
    return None if isinstance(v, dict) else f"expected a table, got {_show(v)}"


SUMMARY_FIELDS: dict[str, Check] = {
    "id": text,
    "experiment": text,
    "status": status,
    "created": finite,
    "started": optional(finite),
    "queued_at": optional(finite),
    "queue_position": optional(finite),
    "group": optional(text),
    "seed": optional(count),
    "pid": optional(pid),
    "host": optional(text),
    "device": optional(text),
    "pin_device": optional(text),
    "engine": optional(text),
    "reason": optional(text),
    "best_metric": optional(text),
    "hardest_class": optional(text),
    "epochs": optional(count),
    "epochs_done": optional(count),
    "best_epoch": optional(count),
    "epoch_in_progress": optional(count),
    "resumed_from_epoch": optional(count),
    "step": optional(count),
    "steps": optional(count),
    "parameters": optional(count),
    "train_seconds": optional(finite),
    "wall_seconds": optional(finite),
    "final": optional(figures),
    "best": optional(figures),
    "last": optional(last_figures),
    "classes": optional(list_of(text)),
    "per_class_acc": optional(list_of(number)),
    "confusion": optional(matrix),
    "overrides": optional(list_of(text)),
    "pid_start": optional(count),
    "node": optional(text),
    "node_id": optional(text),
    "threads": optional(count),
    "system": optional(table),
    "fold": optional(count),
    "folds": optional(count),
    "trial": optional(count),
    "study": optional(text),
}

REQUIRED = ("status", "created")  # the store writes both when it creates a run

META_FIELDS: dict[str, Check] = {
    "tags": list_of(text),
    "note": text,
    "archived": lambda v: None if isinstance(v, bool) else f"expected true or false, got {v!r}",
}

ENV_FIELDS: dict[str, Check] = {
    "python": optional(text),
    "torch": optional(text),
    "torchvision": optional(text),
    "mnist_tui": optional(text),
    "cuda": optional(text),
    "device": optional(text),
    "platform": optional(text),
    "host": optional(text),
    "git_commit": optional(text),
    "cwd": optional(text),
    "seed": optional(count),
    "command": optional(list_of(text)),
}

# metrics.jsonl: the keys every epoch row has and the epochs table formats directly
ROW_REQUIRED: dict[str, Check] = {
    "epoch": count,
    "train_loss": number,
    "train_acc": number,
    "test_loss": number,
    "test_acc": number,
    "lr": number,
    "seconds": number,
    "images_per_s": number,
}
ROW_OPTIONAL: dict[str, Check] = {
    "val_loss": optional(number),
    "val_acc": optional(number),
    "train_seconds": optional(number),
    "test_per_class": optional(list_of(number)),
    "test_confusion": optional(matrix),
}


def check_fields(
    what: str, raw: Any, fields: Mapping[str, Check]
) -> tuple[dict[str, Any], list[str]]:
    """The fields of `raw` that pass, and one problem per field that does not."""
    if not isinstance(raw, dict):
        return {}, [f"{what}: expected a JSON object, got {_show(raw)}"]
    good: dict[str, Any] = {}
    problems: list[str] = []
    for k, v in raw.items():
        check = fields.get(k)
        problem = check(v) if check is not None else None
        if problem:
            problems.append(f"{what}: {k}: {problem}")
        else:
            good[k] = v
    return good, problems


def check_summary(raw: Any) -> tuple[RunSummary, list[str]]:
    """The summary's fields that pass (typed: each key of RunSummary was checked) and
    one problem per field that does not."""
    checked, problems = check_fields(SUMMARY, raw, SUMMARY_FIELDS)
    good = cast(RunSummary, checked)
    if isinstance(raw, dict):
        problems += [f"{SUMMARY}: {k}: missing" for k in REQUIRED if k not in raw]
    classes, per_class = good.get("classes"), good.get("per_class_acc")
    if classes and per_class and len(classes) != len(per_class):
        problems.append(
            f"{SUMMARY}: per_class_acc: {len(per_class)} values for {len(classes)} classes"
        )
        del good["per_class_acc"]
    confusion = good.get("confusion")
    if classes and confusion and len(classes) != len(confusion):
        problems.append(f"{SUMMARY}: confusion: {len(confusion)} rows for {len(classes)} classes")
        del good["confusion"]
    return good, problems


def check_meta(raw: Any) -> tuple[dict[str, Any], list[str]]:
    return check_fields(META, raw, META_FIELDS)


def check_env(raw: Any) -> tuple[dict[str, Any], list[str]]:
    return check_fields(ENV, raw, ENV_FIELDS)


def check_metrics_row(row: Any) -> str | None:
    """What is wrong with one metrics.jsonl row, or None."""
    if not isinstance(row, dict):
        return f"expected a JSON object, got {_show(row)}"
    for k, check in ROW_REQUIRED.items():
        if k not in row:
            return f"{k}: missing"
        problem = check(row[k])
        if problem:
            return f"{k}: {problem}"
    for k, check in ROW_OPTIONAL.items():
        if k in row:
            problem = check(row[k])
            if problem:
                return f"{k}: {problem}"
    return None


def read_metrics(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Valid rows of metrics.jsonl and a note per dropped line.

    A torn last line (a run killed mid-write) is dropped silently: it is expected.
    """
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    try:
        data = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return rows, notes
    except (OSError, UnicodeDecodeError) as exc:
        return rows, [f"{METRICS}: cannot be read ({exc})"]
    lines = data.splitlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            if n < len(lines) or data.endswith("\n"):
                notes.append(f"{METRICS} line {n}: not valid JSON, dropped")
            continue
        problem = check_metrics_row(row)
        if problem:
            notes.append(f"{METRICS} line {n}: {problem}, dropped")
        else:
            rows.append(row)
    return rows, notes


def effective_status(
    stored: Any, host: Any, pid_: Any, damaged: str | None, this_host: str | None = None
) -> RunStatus:
    """What a view shows: damaged runs as such; running with its process gone, interrupted."""
    if damaged:
        return DAMAGED
    status = _STATUS.get(stored) if isinstance(stored, str) else None
    if status is None:  # no status at all (the checks let no other word through)
        return RunStatus.INTERRUPTED
    mine = status is RunStatus.RUNNING and host == (this_host or socket.gethostname())
    if mine and (not isinstance(pid_, int) or isinstance(pid_, bool) or not pid_alive(pid_)):
        return RunStatus.INTERRUPTED
    return status


# ----------------------------------------------------------------------------- definitions


def definition_hash(raw: Mapping[str, Any]) -> str:
    """A short hash of what training depends on, seed aside.

    `raw` is a resolved definition: `ExperimentSpec.to_dict()` or a run's spec.toml as
    parsed, which is the same dictionary written out, so equal hashes mean equal
    definitions. (Unequal hashes can still be one definition when a spec.toml predates
    a key with a default: `studies.catalog.split_by_definition` settles those.)
    """
    d = {k: raw.get(k) for k in DEFINITION_SECTIONS}
    train = d.get("train")
    if isinstance(train, Mapping):
        # seeds, and the resources a run asks of a cluster, change no figure
        d["train"] = {k: v for k, v in train.items() if k not in (*SEED_KEYS, "gpus", "cpus")}
    source = raw.get("model_source")
    if isinstance(source, Mapping):  # a user's model: what it trains is its source's bytes
        d["model_source"] = source.get("sha256")
    blob = json.dumps(d, sort_keys=True, separators=(",", ":"), default=list, allow_nan=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


_SPEC_HASHES: dict[str, str | None] = {}
_SEED_LINE = re.compile(r"(?m)^(?:seed|repeats)[ \t]*=.*(?:\n|$)")


def spec_text_hash(text: str) -> str | None:
    """`definition_hash` of a spec.toml's text, or None when it does not parse.

    Runs of one definition differ only in their `[train]` seed line, so the parsed hash is
    cached by the text without it: a store of 10,000 runs parses a few dozen files.
    """
    key = text
    start = text.find("\n[train]\n")
    if start >= 0:
        end = text.find("\n[", start + 1)
        end = len(text) if end < 0 else end
        key = text[:start] + _SEED_LINE.sub("", text[start:end]) + text[end:]
    if key not in _SPEC_HASHES:
        try:
            _SPEC_HASHES[key] = definition_hash(tomllib.loads(text))
        except (tomllib.TOMLDecodeError, ValueError, TypeError):
            _SPEC_HASHES[key] = None
    return _SPEC_HASHES[key]


# ----------------------------------------------------------------------------- a run's files


@dataclass
class LoadedRun:
    """A run directory as read and checked."""

    path: Path
    summary: RunSummary
    meta: dict[str, Any] = field(default_factory=dict)
    damaged: str | None = None
    fingerprint: str = ""
    definition: str | None = None  # definition_hash of spec.toml
    summary_text: str | None = None  # summary.json as read, when every field passed


def fingerprint(st: os.stat_result) -> str:
    """Changes whenever a file is replaced (new inode) or edited in place."""
    return f"{st.st_ino}:{st.st_mtime_ns}:{st.st_size}"


# Every file the index caches something of: the summary, meta.json (tags, note, archived),
# env.json (checked for damage) and spec.toml (the definition hash). A run's fingerprint
# covers them all, so that an edit to any of them behind the store's back, or a write the
# index could not record (locked, its WAL lost), is read again at the next sync.
FINGERPRINTED = (SUMMARY, META, ENV, SPEC)


def _part(st: os.stat_result | None, problem: str | None = None) -> str:
    if st is not None:
        return fingerprint(st)
    return "-" if problem is None or problem.endswith("missing") else "?"


def files_fingerprint(run_dir: str) -> str:
    """The fingerprint of a run directory as it is now (a stat per file), the same string
    `load_run` computes from the versions it read."""
    parts = []
    for name in FINGERPRINTED:
        try:
            parts.append(fingerprint(os.stat(os.path.join(run_dir, name))))
        except FileNotFoundError:
            parts.append("-")
        except OSError:
            parts.append("?")
    return "|".join(parts)


def _read_json(path: Path) -> tuple[Any, str | None, os.stat_result | None, str]:
    """(value, problem, stat of what was read, its text); the stat is taken on the open
    file so that it describes exactly the version that was read."""
    try:
        with path.open("rb") as fh:
            st = os.fstat(fh.fileno())
            data = fh.read()
    except FileNotFoundError:
        return None, f"{path.name}: missing", None, ""
    except OSError as exc:
        return None, f"{path.name}: cannot be read ({exc.strerror or exc})", None, ""
    try:
        text = data.decode("utf-8")
        return json.loads(text), None, st, text
    except (ValueError, RecursionError) as exc:
        reason = str(exc).split(":")[0] if isinstance(exc, ValueError) else "nested too deep"
        return None, f"{path.name}: not valid JSON ({reason})", st, ""


def load_run(path: Path, *, with_spec: bool = True) -> LoadedRun:
    """Read and check a run directory's summary, meta, env and spec (never raises)."""
    problems: list[str] = []
    raw, problem, st, summary_text = _read_json(path / SUMMARY)
    summary_part = _part(st, problem)
    summary: RunSummary = {}
    if problem:
        problems.append(problem)
    else:
        summary, found = check_summary(raw)
        problems += found
    clean_text = summary_text if not problems else None
    meta: dict[str, Any] = {}
    raw_meta, problem, st_meta, _ = _read_json(path / META)
    meta_part = _part(st_meta, problem)
    if problem and not problem.endswith("missing"):
        problems.append(problem)
    elif raw_meta is not None:
        meta, found = check_meta(raw_meta)
        problems += found
    raw_env, problem, st_env, _ = _read_json(path / ENV)
    env_part = _part(st_env, problem)
    if problem and not problem.endswith("missing"):
        problems.append(problem)
    elif raw_env is not None:
        problems += check_env(raw_env)[1]
    definition = None
    spec_part = "?"
    if with_spec:
        try:
            with (path / SPEC).open("rb") as fh:
                spec_part = fingerprint(os.fstat(fh.fileno()))
                spec_text = fh.read().decode("utf-8")
        except FileNotFoundError:
            spec_part = "-"
            problems.append(f"{SPEC}: missing")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{SPEC}: cannot be read ({exc})")
        else:
            definition = spec_text_hash(spec_text)
            if definition is None:
                problems.append(f"{SPEC}: not valid TOML")
    return LoadedRun(
        path=path,
        summary=summary,
        meta=meta,
        damaged="; ".join(problems) or None,
        # "?" (unknown) for a part not read: never equal to a scan, so read again
        fingerprint="|".join([summary_part, meta_part, env_part, spec_part]),
        definition=definition,
        summary_text=clean_text,
    )


def read_env(path: Path) -> tuple[dict[str, Any], list[str]]:
    """A run's env.json, checked: the good fields and what was wrong."""
    raw, problem, _, _ = _read_json(path / ENV)
    if problem:
        return {}, [] if problem.endswith("missing") else [problem]
    return check_env(raw)
