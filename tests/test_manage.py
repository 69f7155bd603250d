"""Run management: delete to the trash, gc, archive, tags, notes; the `runs` filters."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from mnist_tui.errors import StoreError
from mnist_tui.runs import claim as claims
from mnist_tui.runs import manage
from mnist_tui.runs.index import INDEX_FILE, RunQuery
from mnist_tui.runs.store import RunStore

from .test_cli import cli
from .test_store import write_run


def _store(tmp_path: Path, n: int = 3) -> RunStore:
    for i in range(n):
        write_run(
            tmp_path,
            "fnn1" if i % 2 == 0 else "lenet5",
            "",
            run_id=f"a000000{i}",
            created=1.7e9 + i,
            group="sweep" if i < 2 else None,
        )
    return RunStore(tmp_path)


def test_delete_moves_to_the_trash_and_gc_empties_it(tmp_path: Path) -> None:
    store = _store(tmp_path)
    run = store.resolve("a0000001")
    (done,) = manage.delete_runs(store, [run])
    assert done.moved_to == tmp_path / ".trash" / "lenet5" / "a0000001"
    assert (done.moved_to / "summary.json").is_file() and not run.path.exists()
    assert not (done.moved_to / claims.CLAIM).exists()  # the deletion's claim is released
    assert [r.id for r in store.runs()] == ["a0000002", "a0000000"]
    assert manage.trash_contents(store) == [done.moved_to]
    n, size = manage.empty_trash(store)
    assert n == 1 and size > 1000 and not (tmp_path / ".trash").exists()
    assert manage.empty_trash(store) == (0, 0)


def test_delete_for_good_and_by_group(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _store(tmp_path, 4)
    code, out, err = cli(
        capsys, "delete", "--group", "sweep", "--permanent", "--runs-dir", str(tmp_path)
    )
    assert code == 0, err
    assert "deleted fnn1/a0000000 for good" in out and "deleted lenet5/a0000001 for good" in out
    assert sorted(p.name for p in tmp_path.glob("*/a*")) == ["a0000002", "a0000003"]
    assert manage.trash_contents(RunStore(tmp_path)) == []


def test_a_running_or_held_run_is_never_deleted(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    h = store.create("fnn1", "")  # running, by this very (live) process
    other = _store(tmp_path, 1).resolve("a0000000")
    with pytest.raises(StoreError, match="is running: stop it first"):
        manage.delete_runs(store, [other, store.resolve(h.id)])
    assert h.path.is_dir() and other.path.is_dir()  # all or nothing
    holder = claims.claim(other.path, "worker")  # a worker is about to start it
    try:
        with pytest.raises(StoreError, match="held by worker"):
            manage.delete_runs(store, [other])
    finally:
        claims.release(other.path, holder, ended="test")
    assert other.path.is_dir()


def test_archive_hides_from_listings_and_report(tmp_path: Path) -> None:
    store = _store(tmp_path)
    run = store.resolve("a0000002")
    manage.set_archived(store, run)
    assert json.loads((run.path / "meta.json").read_text()) == {"archived": True}
    assert "a0000002" not in [r.id for r in store.runs()]
    assert next(r.id for r in store.runs(archived=True)) == "a0000002"
    assert store.resolve("1").id == "a0000001"  # recency counts what listings show
    assert store.resolve("a0000002").archived  # an id finds an archived run
    with pytest.raises(StoreError, match="a0000002"):
        store.resolve("a00000")
    manage.set_archived(store, run, False)
    assert store.resolve("1").id == "a0000002"


def test_tags_and_note_round_trip_and_survive_an_index_rebuild(tmp_path: Path) -> None:
    store = _store(tmp_path)
    run = store.resolve("a0000000")
    assert manage.set_tags(store, run, ["best", "paper"]) == ["best", "paper"]
    assert manage.set_tags(store, run, ["paper"], remove=True) == ["best"]
    manage.set_note(store, run, "lr 0.1 diverged at epoch 3")
    store.index.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{tmp_path / INDEX_FILE}{suffix}").unlink(missing_ok=True)
    (found,) = store.index.runs(RunQuery(tags=("best",)))
    assert found.id == "a0000000" and found.note == "lr 0.1 diverged at epoch 3"
    assert store.resolve("a0000000").tags == ["best"]
    with pytest.raises(Exception, match="tag 'two words'"):
        manage.set_tags(store, run, ["two words"])


def test_meta_survives_the_trainer_rewriting_its_summary(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    h = store.create("fnn1", "")
    manage.set_tags(store, store.resolve(h.id), ["watch"])
    h.update(epochs_done=3)  # the training process writes its summary from memory
    assert store.resolve(h.id).tags == ["watch"]
    assert store.index.runs(RunQuery(tags=("watch",)))[0].id == h.id


def test_cli_tag_note_archive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _store(tmp_path)
    d = ["--runs-dir", str(tmp_path)]
    assert (
        cli(capsys, "tag", "a0000000", "good", "v2", *d)[1].strip() == "fnn1/a0000000 tags: good v2"
    )
    assert cli(capsys, "note", "1", "the newest", *d)[0] == 0
    assert cli(capsys, "archive", "a0000001", *d)[0] == 0
    _, out, _ = cli(capsys, "runs", "--json", "--all", "--tag", "good", *d)
    (r,) = json.loads(out)
    assert r["id"] == "a0000000" and r["tags"] == ["good", "v2"] and not r["archived"]
    _, out, _ = cli(capsys, "runs", *d)
    assert "a0000001" not in out and "1 archived runs hidden" in out
    _code, out, _ = cli(capsys, "runs", "--archived", "--json", *d)
    assert [r["id"] for r in json.loads(out)] == ["a0000001"]
    _, out, _ = cli(capsys, "runs", "--json", "-e", "fnn1", "--since", "2020-01-01", *d)
    assert [(r["id"], r["note"]) for r in json.loads(out)] == [
        ("a0000002", "the newest"),
        ("a0000000", ""),
    ]


def test_runs_shows_the_newest_20_and_says_how_many_more(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for i in range(25):
        write_run(tmp_path, "fnn1", "", run_id=f"b{i:07d}", created=float(i), epochs=1)
    _, out, _ = cli(capsys, "runs", "--json", "--runs-dir", str(tmp_path))
    assert len(json.loads(out)) == 20
    _, out, _ = cli(capsys, "runs", "--runs-dir", str(tmp_path))
    assert "b0000024" in out and "b0000004" not in out
    assert "the newest 20 of 25 runs; --all shows every one" in out
    _code, out, _ = cli(capsys, "runs", "--all", "--json", "--runs-dir", str(tmp_path))
    assert len(json.loads(out)) == 25
    _, out, _ = cli(capsys, "runs", "-n", "3", "--json", "--runs-dir", str(tmp_path))
    assert [r["id"] for r in json.loads(out)] == ["b0000024", "b0000023", "b0000022"]


def test_runs_unknown_experiment_lists_every_close_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from .conftest import EXPERIMENTS

    write_run(tmp_path, "fnn_local", "", run_id="c0000000")
    args = ["--runs-dir", str(tmp_path), "--experiments-dir", str(EXPERIMENTS)]
    code, _out, err = cli(capsys, *args[2:], "runs", "fnn", *args[:2])
    assert code == 2 and "Traceback" not in err
    flat = " ".join(err.split())
    assert "no experiment 'fnn'" in flat
    for name in ("fnn1", "fnn2", "fnn3", "fnn_local"):
        assert name in flat
    code, _, err = cli(capsys, "runs", "--status", "complete", *args[:2])
    assert code == 2 and "Did you mean 'completed'?" in " ".join(err.split())


def test_damaged_runs_are_listed_and_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_run(tmp_path, "fnn1", "", run_id="d0000000")
    (path / "summary.json").write_text('{"status": "completed", "created": "soon"}')
    code, out, err = cli(capsys, "runs", "--status", "damaged", "--runs-dir", str(tmp_path))
    assert code == 0 and "d0000000" in out and "damaged" in out
    assert "created: expected a finite number" in " ".join(err.split())


def test_gc_on_an_empty_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "gc", "--runs-dir", str(tmp_path))
    assert code == 0 and "0 runs in the trash" in out
    shutil.rmtree(tmp_path)
    code, _, err = cli(capsys, "delete", "1", "--runs-dir", str(tmp_path))
    assert code == 2 and "Traceback" not in err
    assert not os.path.exists(tmp_path)
