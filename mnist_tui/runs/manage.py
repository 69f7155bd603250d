"""Looking after stored runs: delete (to a trash), empty the trash, archive, tags, notes.

Tags, the note and the archived flag live in the run's own `meta.json`, never in
summary.json: the process that trains a run rewrites its summary every second from memory
and would undo them. The index reads meta.json with the summary, so it stays rebuildable.

Deleting moves the run directory to `<runs-dir>/.trash/<experiment>/<id>` in one rename
(readers see the run or nothing); `gc` empties the trash. A run that is running, or that
another process holds (runs/claim.py), is never deleted: the run is claimed for the
deletion first, so no worker can start it meanwhile.
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnist_tui.errors import MnistTuiError, StoreError, natural_key
from mnist_tui.runs import claim as claims
from mnist_tui.runs import schema
from mnist_tui.runs.contained import check_path, check_runs, check_tree
from mnist_tui.runs.index import RunQuery
from mnist_tui.runs.io import write_json_atomic
from mnist_tui.runs.record import STATUSES, RunInfo
from mnist_tui.runs.store import RunStore
from mnist_tui.status import RunStatus

TRASH = ".trash"
# the words `--status` takes: plain strings, as the user types and reads them
SHOWN_STATUSES = tuple(s.value for s in (*STATUSES, schema.DAMAGED))


def trash_dir(store: RunStore) -> Path:
    return store.root / TRASH


# ----------------------------------------------------------------------------- checks


def check_statuses(values: Iterable[str]) -> tuple[str, ...]:
    """`--status` values (repeatable, comma-separated), each a known status."""
    out: list[str] = []
    for value in values:
        for s in (v.strip().lower() for v in value.split(",")):
            if not s:
                continue
            if s not in SHOWN_STATUSES:
                close = difflib.get_close_matches(s, SHOWN_STATUSES, n=3, cutoff=0.5)
                hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
                raise MnistTuiError(
                    f"--status: '{s}' is not a status; expected one of "
                    f"{', '.join(SHOWN_STATUSES)}.{hint}"
                )
            out.append(s)
    return tuple(dict.fromkeys(out))


def check_experiments(names: list[str], experiments_dir: Path, store: RunStore) -> list[str]:
    """Experiment names to filter by: each must have runs or a definition file.

    An unknown name is an error listing every close name, not an empty table.
    """
    if not names:
        return []
    from mnist_tui.config.loading import experiment_names

    known = set(store.index.experiments()) | set(experiment_names(experiments_dir))
    for name in names:
        if name in known:
            continue
        close = set(difflib.get_close_matches(name, sorted(known), n=len(known) or 1, cutoff=0.6))
        close |= {k for k in known if name.lower() in k.lower()}
        hint = f" Did you mean: {', '.join(sorted(close, key=natural_key))}?" if close else ""
        raise StoreError(
            f"no experiment '{name}': no runs in {store.root} and no definition in "
            f"{experiments_dir}.{hint}"
        )
    return list(dict.fromkeys(names))


def check_tag(tag: str) -> str:
    if not schema.TAG.match(tag):
        raise MnistTuiError(
            f"tag '{tag}': expected letters, digits and _ . : + / = - (at most 64, "
            "starting with a letter or digit)"
        )
    return tag


# ----------------------------------------------------------------------------- meta.json


@contextlib.contextmanager
def _locked(run_dir: Path) -> Iterator[None]:
    """One writer of a run's meta.json at a time (two `tag` commands at once)."""
    try:
        fd = os.open(run_dir, os.O_RDONLY)
    except OSError as exc:
        raise StoreError(f"cannot open {run_dir}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def update_meta(
    store: RunStore, run: RunInfo, change: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """Read meta.json (its valid fields), apply `change`, write it back, index the run."""
    # archive, tag, note: never read or rewrite a meta.json outside the store
    check_tree(store.root, run.path, "change")
    with _locked(run.path):
        fresh = schema.load_run(run.path, with_spec=False)
        meta = dict(fresh.meta)
        change(meta)
        write_json_atomic(run.path / schema.META, meta)
    store.index.record(run.path)
    return meta


def _not_active(run: RunInfo, doing: str) -> None:
    if run.status in (RunStatus.RUNNING, RunStatus.QUEUED):
        raise StoreError(f"run {run.id} is {run.status}: stop it before you {doing} it")


def set_archived(store: RunStore, run: RunInfo, archived: bool = True) -> None:
    """Archived runs are left out of listings, the report and the console."""
    if archived:
        _not_active(run, "archive")

    def change(meta: dict[str, Any]) -> None:
        meta["archived"] = archived

    update_meta(store, run, change)


def set_tags(
    store: RunStore, run: RunInfo, tags: Iterable[str], *, remove: bool = False
) -> list[str]:
    """Add (or remove) tags; returns the run's tags afterwards, sorted."""
    wanted = [check_tag(t) for t in tags]

    def change(meta: dict[str, Any]) -> None:
        have = set(meta.get("tags") or [])
        have = have - set(wanted) if remove else have | set(wanted)
        meta["tags"] = sorted(have)

    result: list[str] = update_meta(store, run, change)["tags"]
    return result


def set_note(store: RunStore, run: RunInfo, text: str) -> None:
    """The run's note (one free text; empty clears it)."""

    def change(meta: dict[str, Any]) -> None:
        meta["note"] = text

    update_meta(store, run, change)


# ----------------------------------------------------------------------------- delete / gc


@dataclass
class Deleted:
    run: RunInfo
    moved_to: Path | None  # None: deleted for good


def delete_runs(store: RunStore, runs: list[RunInfo], *, permanent: bool = False) -> list[Deleted]:
    """Move runs to the trash (or delete them for good). All or nothing for active runs:
    if any run is running or queued-and-taken, none is deleted."""
    busy = [r for r in runs if r.status == RunStatus.RUNNING]
    if busy:
        ids = ", ".join(r.id for r in busy)
        raise StoreError(f"run {ids} is running: stop it first (nothing was deleted)")
    # every run and the trash checked before the first is moved: all or nothing
    _check_trash(store, "delete runs")
    check_runs(store.root, (r.path for r in runs), "delete")
    return [delete_run(store, r, permanent=permanent) for r in runs]


def _check_trash(store: RunStore, doing: str) -> None:
    """The trash, and each experiment folder in it, stay inside the store."""
    trash = trash_dir(store)
    check_path(store.root, trash, doing)
    if trash.is_dir() and not trash.is_symlink():
        for entry in trash.iterdir():
            check_path(store.root, entry, doing)


def delete_run(store: RunStore, run: RunInfo, *, permanent: bool = False) -> Deleted:
    # before the claim: a claim is a file written into the run's folder
    _check_trash(store, "delete runs")
    check_tree(store.root, run.path, "delete")
    try:
        holder = claims.claim(run.path, "delete")
    except claims.ClaimedError as exc:
        raise StoreError(f"{exc}: it is running or about to; stop it first") from None
    except StoreError:
        if not run.path.is_dir():
            raise StoreError(f"run {run.id} is gone already") from None
        raise
    target = trash_dir(store) / run.experiment / run.id
    if target.exists():
        target = target.with_name(f"{run.id}.{time.time_ns()}")
    try:
        fresh = store._read(run.path)
        if fresh is not None and fresh.status == RunStatus.RUNNING:
            raise StoreError(f"run {run.id} is running: stop it first")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(run.path, target)
    except OSError as exc:
        claims.release(run.path, holder, ended="delete failed")
        raise StoreError(f"cannot move {run.path} to {target}: {exc.strerror}") from None
    except StoreError:
        claims.release(run.path, holder, ended="delete refused")
        raise
    claims.release(target, holder, ended="deleted")
    store.index.forget(run.path)
    if permanent:
        shutil.rmtree(target, ignore_errors=True)
        return Deleted(run, None)
    return Deleted(run, target)


def _size(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_size
    return total


def trash_contents(store: RunStore) -> list[Path]:
    """Run directories in the trash."""
    root = trash_dir(store)
    if not root.is_dir():
        return []
    return sorted(p for exp in root.iterdir() if exp.is_dir() for p in exp.iterdir())


def empty_trash(store: RunStore, *, dry_run: bool = False) -> tuple[int, int]:
    """Delete everything in the trash for good; returns (runs, bytes) freed."""
    # a trash (or a folder or file in it) that leads outside: nothing would be freed here
    check_tree(store.root, trash_dir(store), "empty the trash")
    runs = trash_contents(store)
    size = _size(trash_dir(store)) if runs or trash_dir(store).exists() else 0
    if not dry_run and trash_dir(store).exists():
        # rename first, so a half-deleted trash is never mistaken for a full one
        doomed = store.root / f"{TRASH}.{os.getpid()}.{time.time_ns()}"
        try:
            os.rename(trash_dir(store), doomed)
        except OSError as exc:
            raise StoreError(f"cannot empty {trash_dir(store)}: {exc.strerror}") from None
        shutil.rmtree(doomed, ignore_errors=True)
    return len(runs), size


def group_runs(store: RunStore, group: str) -> list[RunInfo]:
    """Every run of a group, archived ones included."""
    found = store.index.runs(RunQuery(group=group, archived=None), brief=True)
    if not found:
        raise StoreError(f"no runs in group '{group}' in {store.root}")
    return found
