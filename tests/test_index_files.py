"""The index notices every file it caches, not only summary.json: tags and notes written
while another process held the index, after its WAL file was removed, or in a meta.json
copied in by hand show in `runs --tag` and `runs --json`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mnist_tui.cli import main
from mnist_tui.runs import index as index_mod
from mnist_tui.runs import manage
from mnist_tui.runs.index import INDEX_FILE, RunIndex, RunQuery
from mnist_tui.runs.schema import META
from mnist_tui.runs.store import RunStore

from .test_store import write_run


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().out


def _store_with_runs(root: Path, n: int = 2) -> list[str]:
    ids = [f"{i + 1:08x}" for i in range(n)]
    for i, run_id in enumerate(ids):
        write_run(root, "fnn1", "", run_id=run_id, created=float(i + 1))
    index = RunIndex(root)
    index.sync()  # indexed once, as any listing would
    index.close()  # and written to the index file itself
    return ids


def _tagged(root: Path, tag: str) -> set[str]:
    """What a fresh process lists for `runs --tag TAG`."""
    index = RunIndex(root)
    try:
        return {r.id for r in index.runs(RunQuery(tags=(tag,)))}
    finally:
        index.close()


@pytest.mark.parametrize(
    "meta",
    [
        {"tags": ["best"]},
        {"tags": ["best", "paper"], "note": "copied"},
        {"tags": ["best"], "note": "x" * 500, "archived": False},
    ],
)
@pytest.mark.parametrize("how", ["new file", "over an old one in place", "same size in place"])
def test_meta_json_copied_in_by_hand_is_seen(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], meta: dict[str, object], how: str
) -> None:
    ids = _store_with_runs(tmp_path)
    target = tmp_path / "fnn1" / ids[0] / META
    text = json.dumps(meta)
    if how != "new file":
        # an older meta.json is there already: cp writes into it (same inode)
        old = {"tags": ["zzzz"], "note": "y" * (len(text) - 28)} if how.startswith("same") else {}
        target.write_text(json.dumps(old))
        RunIndex(tmp_path).sync()
        if how.startswith("same"):
            text = text.ljust(target.stat().st_size)
            assert len(text) == target.stat().st_size
        st = target.stat()
        with target.open("r+") as fh:  # in place, as cp does
            fh.truncate(0)
            fh.write(text)
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    else:
        src = tmp_path / "elsewhere.json"
        src.write_text(text)
        shutil.copy(src, target)
    assert _tagged(tmp_path, "best") == {ids[0]}
    code, out = _cli(capsys, "--runs-dir", str(tmp_path), "runs", "--tag", "best", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [r["id"] for r in rows] == [ids[0]]
    assert rows[0]["tags"] == meta["tags"]


def _hold_write_lock(root: Path) -> sqlite3.Connection:
    """Another process in the middle of a long write to the index."""
    conn = sqlite3.connect(
        root / INDEX_FILE, isolation_level=None, timeout=0, check_same_thread=False
    )
    conn.execute("BEGIN IMMEDIATE")
    return conn


@pytest.mark.parametrize(
    "write",
    [
        lambda s, r: manage.set_tags(s, r, ["held"]),
        lambda s, r: manage.set_tags(s, r, ["held", "also"]),
        lambda s, r: (manage.set_tags(s, r, ["held"]), manage.set_note(s, r, "while held")),
    ],
)
def test_writes_while_another_process_holds_the_index_are_applied_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write: object
) -> None:
    monkeypatch.setattr(index_mod, "BUSY_TIMEOUT", 0.05)
    ids = _store_with_runs(tmp_path)
    store = RunStore(tmp_path)
    run = store.resolve(ids[1])
    holder = _hold_write_lock(tmp_path)
    try:
        write(store, run)  # type: ignore[operator]
        assert "held" in json.loads((run.path / META).read_text())["tags"]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert _tagged(tmp_path, "held") == {ids[1]}
    store.index.close()


def test_write_lock_released_while_a_tag_waits(tmp_path: Path) -> None:
    ids = _store_with_runs(tmp_path)
    store = RunStore(tmp_path)
    holder = _hold_write_lock(tmp_path)
    timer = threading.Timer(0.3, lambda: (holder.execute("ROLLBACK"), holder.close()))
    timer.start()
    manage.set_tags(store, store.resolve(ids[0]), ["late"])
    timer.join()
    assert _tagged(tmp_path, "late") == {ids[0]}
    store.index.close()


_CONSOLE = """
import sys
from pathlib import Path
from mnist_tui.runs.store import RunStore
RunStore(Path(sys.argv[1])).runs()
print("open", flush=True)
sys.stdin.readline()
"""


@pytest.mark.parametrize("tags", [["after-wal"], ["after-wal", "b"], ["after-wal", "c", "d"]])
@pytest.mark.parametrize("removed", [("-wal",), ("-wal", "-shm")])
def test_tags_written_while_the_index_is_held_then_its_wal_removed(
    tmp_path: Path, tags: list[str], removed: tuple[str, ...]
) -> None:
    """A console holds the index, so `tag` leaves its write in the WAL file; the console is
    killed and the WAL file removed (a clean-up, a backup of the .sqlite alone): the index
    file still holds the rows from before the tags."""
    ids = _store_with_runs(tmp_path, 3)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    console = subprocess.Popen(
        [sys.executable, "-c", _CONSOLE, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert console.stdout is not None
    try:
        assert console.stdout.readline() == "open\n"
        store = RunStore(tmp_path)
        for run_id in ids[:2]:
            manage.set_tags(store, store.resolve(run_id), tags)
        manage.set_note(store, store.resolve(ids[0]), "noted")
        store.index.close()
    finally:
        console.send_signal(signal.SIGKILL)
        console.wait(timeout=60)
    for suffix in removed:
        Path(f"{tmp_path / INDEX_FILE}{suffix}").unlink(missing_ok=True)
    assert _tagged(tmp_path, "after-wal") == set(ids[:2])
    fresh = RunIndex(tmp_path)
    (noted,) = [r for r in fresh.runs() if r.id == ids[0]]
    assert noted.note == "noted" and noted.tags == sorted(tags)
    fresh.close()


def test_every_cached_file_is_part_of_the_fingerprint(tmp_path: Path) -> None:
    """env.json and spec.toml feed the index too (damage, the definition hash)."""
    (run_id,) = _store_with_runs(tmp_path, 1)
    run_dir = tmp_path / "fnn1" / run_id
    index = RunIndex(tmp_path)
    assert index.sync() == 0
    before = index.runs()[0]
    (run_dir / "env.json").write_text("{not json")
    assert index.sync() == 1 and "env.json" in (index.runs()[0].damaged or "")
    (run_dir / "env.json").write_text("{}")
    assert index.sync() == 1
    (run_dir / "spec.toml").write_text('name = "fnn1"\n[train]\nepochs = 99\n')
    assert index.sync() == 1
    assert index.runs()[0].definition != before.definition
    assert index.sync() == 0
    index.close()
