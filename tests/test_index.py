"""The run index follows the run directories: writes through the store, and changes behind
its back (copied in, deleted, edited, a lost or damaged index file)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from mnist_tui.config.overrides import with_overrides
from mnist_tui.errors import MnistTuiError
from mnist_tui.runs.index import INDEX_FILE, RunIndex, RunQuery, parse_since
from mnist_tui.runs.schema import definition_hash, spec_text_hash
from mnist_tui.runs.store import RunStore

from .test_store import write_run


def _rows(root: Path) -> dict[str, tuple[str, float]]:
    """What the index file itself holds (read with plain sqlite, no syncing)."""
    with sqlite3.connect(root / INDEX_FILE) as conn:
        return {k: (s, c) for k, s, c in conn.execute("SELECT key, status, created FROM runs")}


def test_writes_through_the_store_are_indexed_at_once(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    h = store.create("fnn1", "", seed=4, group="g")
    assert _rows(tmp_path)[f"fnn1/{h.id}"][0] == "running"
    h.update(status="completed", created=5.0, final={"test_acc": 0.75})
    assert _rows(tmp_path)[f"fnn1/{h.id}"] == ("completed", 5.0)
    (run,) = store.index.runs(RunQuery(group="g"), synced=True)
    assert run.seed == 4 and run.final("test_acc") == 0.75 and run.status == "completed"


def test_copied_in_deleted_and_edited_behind_its_back(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    a = store.create("fnn1", "")
    assert [r.id for r in store.runs()] == [a.id]
    # copied in from another machine
    write_run(tmp_path, "lenet5", "", run_id="0badc0de", created=1.0)
    assert sorted(r.id for r in store.runs()) == sorted([a.id, "0badc0de"])
    # edited in place by something that is not the store
    summary = tmp_path / "lenet5" / "0badc0de" / "summary.json"
    data = json.loads(summary.read_text())
    summary.write_text(json.dumps({**data, "status": "failed", "reason": "by hand"}))
    (run,) = store.runs("lenet5")
    assert run.status == "failed" and run.summary["reason"] == "by hand"
    # deleted with rm -r
    shutil.rmtree(a.path)
    assert [r.id for r in store.runs()] == ["0badc0de"]
    assert list(_rows(tmp_path)) == ["lenet5/0badc0de"]


def test_deleted_or_damaged_index_file_is_rebuilt(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    ids = {store.create("fnn1", "").id for _ in range(3)}
    store.index.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{tmp_path / INDEX_FILE}{suffix}").unlink(missing_ok=True)
    assert {r.id for r in store.runs()} == ids
    store.index.close()
    (tmp_path / INDEX_FILE).write_bytes(b"this is not a database" * 100)
    fresh = RunIndex(tmp_path)  # another process meeting the damaged file
    assert {r.id for r in fresh.runs()} == ids
    assert not fresh.in_memory and set(_rows(tmp_path)) == {f"fnn1/{i}" for i in ids}


def test_index_is_never_trusted_over_the_files(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    h = store.create("fnn1", "")
    h.update(status="completed")
    store.index.close()
    with sqlite3.connect(tmp_path / INDEX_FILE) as conn:  # a stale or tampered row
        conn.execute("UPDATE runs SET status = 'failed', fp = 'stale'")
    assert RunIndex(tmp_path).runs()[0].status == "completed"


def test_read_only_store_gets_an_index_in_memory(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    write_run(tmp_path / "ro", "fnn1", "", run_id="00000001")
    (tmp_path / "ro").chmod(0o500)
    try:
        index = RunIndex(tmp_path / "ro")
        assert [r.id for r in index.runs()] == ["00000001"] and index.in_memory
    finally:
        (tmp_path / "ro").chmod(0o700)


def test_unopenable_index_file_means_an_index_in_memory(tmp_path: Path) -> None:
    write_run(tmp_path, "fnn1", "", run_id="00000001")
    (tmp_path / INDEX_FILE).mkdir()  # in the way, and not a file at all
    index = RunIndex(tmp_path)
    assert [r.id for r in index.runs()] == ["00000001"] and index.in_memory


def test_index_in_memory_on_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNIST_TUI_INDEX", "memory")  # e.g. a store on NFS
    write_run(tmp_path, "fnn1", "", run_id="00000001")
    index = RunIndex(tmp_path)
    assert [r.id for r in index.runs()] == ["00000001"] and index.in_memory
    assert not (tmp_path / INDEX_FILE).exists()


def test_a_missing_store_is_not_created_by_reading(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "nothing")
    assert store.runs() == [] and store.index.count() == 0
    assert not (tmp_path / "nothing").exists()


def test_filters_status_group_tag_since_archived(tmp_path: Path) -> None:
    for i, (exp, status, group) in enumerate(
        [("fnn1", "completed", "a"), ("fnn1", "failed", "a"), ("lenet5", "completed", None)]
    ):
        write_run(
            tmp_path, exp, "", run_id=f"0000000{i}", status=status, group=group, created=100.0 * i
        )
    (tmp_path / "fnn1" / "00000000" / "meta.json").write_text('{"tags": ["keep", "x"]}')
    (tmp_path / "lenet5" / "00000002" / "meta.json").write_text('{"archived": true}')
    index = RunIndex(tmp_path)

    def ids(**kw: object) -> list[str]:
        return [r.id for r in index.runs(RunQuery(**kw))]  # type: ignore[arg-type]

    assert ids() == ["00000001", "00000000"]  # newest first; archived hidden
    assert ids(archived=True) == ["00000002"] and len(ids(archived=None)) == 3
    assert ids(statuses=("failed",)) == ["00000001"]
    assert ids(group="a", experiments=("fnn1",)) == ["00000001", "00000000"]
    assert ids(tags=("keep",)) == ["00000000"] and ids(tags=("kee",)) == []
    assert ids(since=50.0) == ["00000001"]
    assert ids(stored=("failed", "queued")) == ["00000001"]
    assert [r.id for r in index.runs(limit=1, offset=1)] == ["00000000"]
    assert index.count(RunQuery(archived=None)) == 3


def test_running_run_whose_process_died_filters_as_interrupted(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    h = store.create("fnn1", "")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    h.update(pid=int(dead.stdout))
    q = store.index.runs
    assert [r.id for r in q(RunQuery(statuses=("interrupted",)))] == [h.id]
    assert q(RunQuery(statuses=("running",))) == []
    assert store.index.count(RunQuery(statuses=("interrupted",))) == 1


def test_change_token_moves_with_every_change(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    h = store.create("fnn1", "")
    t0 = store.change_token()
    assert store.change_token() == t0  # nothing changed
    h.update(epochs_done=1)
    t1 = store.change_token()
    assert t1 != t0
    write_run(tmp_path, "fnn1", "", run_id="0000cafe")  # copied in: no store write at all
    assert store.change_token() != t1
    t2 = store.change_token()
    shutil.rmtree(tmp_path / "fnn1" / "0000cafe")
    assert store.change_token() != t2


def test_definition_hash_ignores_seed_and_names_but_not_settings() -> None:
    from mnist_tui.config.loading import load_experiment

    from .conftest import EXPERIMENTS

    spec = load_experiment("fnn1", EXPERIMENTS)
    h = definition_hash(spec.to_dict())
    assert spec_text_hash(spec.to_toml()) == h
    reseeded = with_overrides(spec, ["train.seed=7"])
    assert spec_text_hash(reseeded.to_toml()) == h
    assert spec_text_hash(with_overrides(spec, ["optim.lr=0.5"]).to_toml()) != h
    assert spec_text_hash("not = toml = at all") is None


@pytest.mark.parametrize(
    ("text", "seconds_ago"), [("2d", 2 * 86400), ("3h", 3 * 3600), ("45m", 2700), ("1w", 604800)]
)
def test_since_ages(text: str, seconds_ago: float) -> None:
    assert parse_since(text, now=1e9) == 1e9 - seconds_ago


def test_since_dates_and_nonsense() -> None:
    import datetime

    assert parse_since("2025-01-31") == datetime.datetime(2025, 1, 31).timestamp()
    assert parse_since("2025-01-31T12:00:00+00:00") == 1738324800.0
    with pytest.raises(MnistTuiError, match="--since: expected an age"):
        parse_since("last tuesday")


def test_many_runs_list_from_the_index_without_reading_summaries(tmp_path: Path) -> None:
    for i in range(300):
        write_run(tmp_path, f"e{i % 3}", "", run_id=f"{i:08x}", created=float(i), epochs=1)
    index = RunIndex(tmp_path)
    assert index.sync() == 300 and index.sync() == 0  # the second look changes nothing
    runs = index.runs(limit=20, brief=True, synced=True)
    assert [r.id for r in runs] == [f"{i:08x}" for i in range(299, 279, -1)]
    assert "confusion" not in runs[0].summary and runs[0].final("test_acc") is not None
    assert runs[0].full().summary["confusion"]  # the whole summary, from disk


def test_run_directories_follow_the_experiment_name_rule() -> None:
    from mnist_tui.config.names import EXPERIMENT_NAME
    from mnist_tui.runs import index

    assert index.SAFE_NAME.pattern == EXPERIMENT_NAME.pattern


def test_changes_since_a_generation_for_a_console(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    a = store.create("fnn1", "")
    b = store.create("fnn1", "")
    index = store.index
    instance, gen = index.state()
    ch = index.changes(instance, gen)
    assert ch is not None and ch.runs == [] and ch.removed == [] and ch.generation == gen
    a.update(epochs_done=2)  # a training process writing
    write_run(tmp_path, "lenet5", "", run_id="00000abc")  # copied in: seen after a sync
    shutil.rmtree(b.path)  # removed behind the store's back
    index.sync()
    ch = index.changes(instance, gen)
    assert ch is not None and ch.generation > gen
    assert sorted(r.id for r in ch.runs) == sorted([a.id, "00000abc"])
    assert next(r for r in ch.runs if r.id == a.id).summary["epochs_done"] == 2
    assert ch.removed == [("fnn1", b.id)]
    assert index.changes(instance, ch.generation).runs == []  # type: ignore[union-attr]
    index.rebuild()
    assert index.changes(instance, ch.generation) is None  # read everything again


def test_best_run_and_report_count_only_the_current_definition(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mnist_tui.config.loading import load_experiment

    from .conftest import EXPERIMENTS
    from .test_cli import cli

    spec = load_experiment("fnn1", EXPERIMENTS)
    current = spec.to_toml()
    other = with_overrides(spec, ["optim.lr=0.5"]).to_toml()
    # written before `label_smoothing` existed: same definition once validated
    older = "\n".join(x for x in current.splitlines() if not x.startswith("label_smoothing"))
    assert spec_text_hash(older) != spec_text_hash(current)
    write_run(tmp_path, "fnn1", current, run_id="0000000a", acc=0.80, created=3.0)
    write_run(tmp_path, "fnn1", other, run_id="0000000b", acc=0.95, created=2.0)
    write_run(tmp_path, "fnn1", older, run_id="0000000c", acc=0.85, created=1.0)
    exps = tmp_path / "experiments"
    exps.mkdir()
    for name in ("logreg", "fnn1"):
        shutil.copy(EXPERIMENTS / f"{name}.toml", exps)
    args = ["--runs-dir", str(tmp_path), "--experiments-dir", str(exps)]
    code, out, err = cli(capsys, "list", "--json", *args)
    assert code == 0, err
    row = next(r for r in json.loads(out) if r["name"] == "fnn1")
    assert (row["best_run"], row["best_test_acc"], row["runs"]) == ("0000000c", 0.85, 3)
    code, out, err = cli(capsys, "report", "fnn1", "--json", *args)
    (rep,) = json.loads(out)
    assert (rep["runs"], rep["other_definition_runs"], rep["seeds"]) == (2, 1, [0, 0])
