"""How fresh a listing is in a large store: the full disk check (a stat per cached file of
every run, seconds at 100,000 runs) runs only when due; between checks a listing trusts
the index, reads the folders that gained or lost runs, and `runs --check` forces it."""

from __future__ import annotations

import json
import shutil
import time
import types
from pathlib import Path

import pytest

from mnist_tui.cli import main
from mnist_tui.runs import index as index_mod
from mnist_tui.runs.index import RunIndex
from mnist_tui.runs.store import RunStore

from .test_store import write_run


def _ids(store: RunStore) -> set[str]:
    return {r.id for r in store.runs()}


@pytest.fixture
def costly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every full check appears to cost one CPU second, as at some 30,000 runs: the next
    one is due after 1 / CHECK_SHARE seconds."""
    ticks = iter(range(0, 100_000))
    clock = types.SimpleNamespace(time=time.time, process_time=lambda: float(next(ticks)))
    monkeypatch.setattr(index_mod, "time", clock)


def _store(root: Path, n: int = 3) -> RunStore:
    for i in range(n):
        write_run(root, "fnn1", "", run_id=f"{i + 1:08x}", created=float(i + 1))
    store = RunStore(root)
    store.runs()  # the first listing: a full check, recorded
    return store


def _edit_status(root: Path, run_id: str, status: str) -> None:
    path = root / "fnn1" / run_id / "summary.json"
    summary = json.loads(path.read_text())
    summary["status"] = status
    with path.open("r+") as fh:  # in place: the folder's mtime does not move
        fh.truncate(0)
        fh.write(json.dumps(summary))


def test_a_small_store_is_checked_before_every_listing(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _edit_status(tmp_path, "00000001", "failed")
    (run,) = [r for r in store.runs() if r.id == "00000001"]
    assert run.status == "failed"
    assert store.index.get_value(index_mod.CHECK_KEY) is None  # nothing to decide: no note


def test_a_large_store_trusts_its_index_until_the_check_is_due(
    tmp_path: Path, costly: None
) -> None:
    store = _store(tmp_path)
    record = json.loads(store.index.get_value(index_mod.CHECK_KEY) or "{}")
    assert record["cost"] == pytest.approx(1.0)
    _edit_status(tmp_path, "00000001", "failed")
    listed = {r.id: r for r in store.runs()}
    assert listed["00000001"].status == "completed"  # not due: the index answers
    # the run's own page reads its files
    assert store.resolve("00000001").status == "failed"

    # due: the record is older than cost / CHECK_SHARE
    record["at"] -= 1.0 / index_mod.CHECK_SHARE + 1
    store.index.set_value(index_mod.CHECK_KEY, json.dumps(record))
    listed = {r.id: r for r in store.runs()}
    assert listed["00000001"].status == "failed"


def test_runs_copied_in_or_removed_show_at_once_without_a_full_check(
    tmp_path: Path, costly: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(tmp_path)
    time.sleep(0.01)  # a folder mtime that differs from the recorded one

    def no_full_check(self: RunIndex) -> int:
        raise AssertionError("a full check was made")

    monkeypatch.setattr(RunIndex, "_sync", no_full_check)
    shutil.copytree(tmp_path / "fnn1" / "00000002", tmp_path / "fnn1" / "0000000a")
    write_run(tmp_path, "logreg", "", run_id="0000000b", created=9.0)  # a new folder
    shutil.rmtree(tmp_path / "fnn1" / "00000003")
    assert _ids(store) == {"00000001", "00000002", "0000000a", "0000000b"}
    assert _ids(store) == {"00000001", "00000002", "0000000a", "0000000b"}  # noted
    shutil.rmtree(tmp_path / "logreg")  # a whole experiment folder removed
    assert _ids(store) == {"00000001", "00000002", "0000000a"}


def test_runs_check_forces_the_full_check(
    tmp_path: Path, costly: None, capsys: pytest.CaptureFixture[str]
) -> None:
    _store(tmp_path)
    _edit_status(tmp_path, "00000002", "killed")
    for args, expected in ((["runs"], "completed"), (["runs", "--check"], "killed")):
        with pytest.raises(SystemExit) as done:
            main(["--runs-dir", str(tmp_path), *args, "--json"])
        assert done.value.code in (0, None)
        rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
        assert rows["00000002"]["status"] == expected, args


def test_a_record_it_cannot_read_means_a_full_check(tmp_path: Path, costly: None) -> None:
    store = _store(tmp_path)
    _edit_status(tmp_path, "00000003", "failed")
    for junk in ("not json", '{"at": "x", "cost": 1, "dirs": []}', "[1, 2]"):
        store.index.set_value(index_mod.CHECK_KEY, junk)
        listed = {r.id: r for r in store.runs()}
        assert listed["00000003"].status == "failed", junk


def test_the_experiments_digest_gives_the_rows_a_full_listing_gives(tmp_path: Path) -> None:
    """`list` reads a few runs per experiment (its newest, the best of each definition)
    instead of every run: the rows must say exactly what the full read says."""
    from mnist_tui.config.loading import load_experiment
    from mnist_tui.config.overrides import with_overrides
    from mnist_tui.runs import manage
    from mnist_tui.studies.catalog import ExperimentRow, experiment_rows

    from .conftest import EXPERIMENTS

    fnn1 = load_experiment("fnn1", EXPERIMENTS)
    own, variant = fnn1.to_toml(), with_overrides(fnn1, ["optim.lr=0.05"]).to_toml()
    other = with_overrides(fnn1, ["optim.lr=0.2"]).to_toml()
    logreg = load_experiment("logreg", EXPERIMENTS).to_toml()
    plan = [  # experiment, spec, accuracy, status, created
        ("fnn1", own, 0.80, "completed", 1.0),
        ("fnn1", own, 0.86, "completed", 2.0),
        ("fnn1", own, 0.83, "completed", 3.0),
        ("fnn1", variant, 0.90, "completed", 4.0),
        ("fnn1", variant, 0.70, "completed", 5.0),
        ("fnn1", other, 0.95, "failed", 6.0),
        ("fnn1", own, 0.99, "completed", 7.0),  # archived below: counts only with archived
        ("logreg", logreg, 0.70, "killed", 8.0),
        ("logreg", logreg, 0.72, "completed", 0.5),
    ]
    for i, (exp, spec, acc, status, created) in enumerate(plan):
        write_run(tmp_path, exp, spec, run_id=f"{i + 1:08x}", acc=acc, status=status,
                  created=created)  # fmt: skip
    store = RunStore(tmp_path)
    manage.set_archived(store, store.resolve("00000007"))

    def shown(rows: list[ExperimentRow]) -> list[tuple[object, ...]]:
        return [
            (r.name, r.count, r.best_run and r.best_run.id, r.other_variants,
             r.latest and r.latest.id)
            for r in rows if r.name in ("fnn1", "logreg")
        ]  # fmt: skip

    for archived in (False, True):
        full = shown(experiment_rows(EXPERIMENTS, store, archived=archived))
        digest = shown(experiment_rows(EXPERIMENTS, store, archived=archived, digest=True))
        assert digest == full, archived
    assert shown(experiment_rows(EXPERIMENTS, store, digest=True)) == [
        ("fnn1", 6, "00000002", 1, "00000006"),
        ("logreg", 2, "00000009", 0, "00000008"),
    ]
    assert shown(experiment_rows(EXPERIMENTS, store, archived=True, digest=True))[0] == (
        "fnn1", 7, "00000007", 1, "00000007"
    )  # fmt: skip


def test_the_report_from_index_aggregates_equals_the_report_from_every_run(
    tmp_path: Path,
) -> None:
    """`report` reads plain rows of the completed runs (`RunIndex.completed`) instead of
    listing every run: the same rows and steps as from the listed runs (the console's
    report), archived runs in or out."""
    from mnist_tui.config.loading import load_experiment
    from mnist_tui.config.overrides import with_overrides
    from mnist_tui.runs import manage
    from mnist_tui.studies.catalog import experiment_rows
    from mnist_tui.studies.completed import IndexRuns, ListedRuns
    from mnist_tui.studies.report import build_steps, report_rows

    from .conftest import EXPERIMENTS

    specs = {name: load_experiment(name, EXPERIMENTS) for name in ("task0", "task1", "fnn1")}
    plan = [  # experiment, overrides, accuracy, status, seed
        ("task0", [], 0.90, "completed", 0),
        ("task0", [], 0.91, "completed", 1),
        ("task0", [], 0.92, "failed", 2),
        ("task1", [], 0.93, "completed", 0),
        ("task1", [], 0.95, "completed", 1),
        ("task1", ["optim.lr=0.05"], 0.80, "completed", 0),
        ("fnn1", [], 0.84, "completed", 0),
        ("fnn1", [], 0.99, "completed", 5),  # archived below
    ]
    for i, (exp, overrides, acc, status, seed) in enumerate(plan):
        spec = with_overrides(specs[exp], overrides).to_toml()
        write_run(tmp_path, exp, spec, run_id=f"{i + 1:08x}", acc=acc, status=status,
                  seed=seed, created=float(i + 1))  # fmt: skip
    store = RunStore(tmp_path)
    manage.set_archived(store, store.resolve("00000008"))
    for archived in (False, True):
        full = experiment_rows(EXPERIMENTS, store, archived=archived)
        listed = ListedRuns(store.root, (r for er in full for r in er.runs))
        small = experiment_rows(EXPERIMENTS, store, archived=archived, without_runs=True)
        indexed = IndexRuns(store, archived=archived)
        by_index = [_rounded(r.to_json()) for r in report_rows(small, indexed)]
        assert by_index == [_rounded(r.to_json()) for r in report_rows(full, listed)]
        steps = [(s.child, _rounded(s.comparison.to_json())) for s in build_steps(small, indexed)]
        assert steps == [
            (s.child, _rounded(s.comparison.to_json())) for s in build_steps(full, listed)
        ]
        assert any(child == "task1" for child, _ in steps)
    rows = {
        r.name: r
        for r in report_rows(
            experiment_rows(EXPERIMENTS, store, without_runs=True), IndexRuns(store)
        )
    }
    assert (rows["task1"].runs, rows["task1"].other_definition_runs) == (2, 1)
    assert rows["fnn1"].runs == 1


def _rounded(value: object) -> object:
    """Floats to 12 significant digits, in nested JSON: SQLite's avg and Python's fsum
    may differ in the last bit."""
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def test_a_command_leaves_a_costly_due_check_to_a_process_of_its_own(
    tmp_path: Path, costly: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """A due full check that costs seconds (100,000 runs) does not stall a command: it
    answers from the index, and a detached process makes the check for the next one."""
    from mnist_tui.runs.index import RunQuery

    store = _store(tmp_path)
    _edit_status(tmp_path, "00000002", "killed")
    record = json.loads(store.index.get_value(index_mod.CHECK_KEY) or "{}")
    record["at"] -= record["cost"] / index_mod.CHECK_SHARE + 1  # due
    store.index.set_value(index_mod.CHECK_KEY, json.dumps(record))
    with pytest.raises(SystemExit) as done:
        main(["--runs-dir", str(tmp_path), "runs", "--json"])
    assert done.value.code in (0, None)
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["00000002"]["status"] == "completed"  # answered at once, from the index
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = {r.id: r for r in store.index.runs(RunQuery(), synced=True)}
        if found["00000002"].stored_status == "killed":
            break
        time.sleep(0.1)
    assert found["00000002"].stored_status == "killed"  # the detached check found it
    assert (tmp_path / index_mod.CHECK_LOCK).exists()


def test_the_detached_check_leaves_when_another_holds_the_lock(tmp_path: Path) -> None:
    import fcntl

    from mnist_tui.runs import index_check

    store = _store(tmp_path)
    _edit_status(tmp_path, "00000001", "failed")
    with open(tmp_path / index_mod.CHECK_LOCK, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert index_check.main([str(tmp_path)]) == 0
    assert {r.id: r for r in store.index.runs(synced=True)}["00000001"].stored_status == (
        "completed"
    )
    assert index_check.main([str(tmp_path)]) == 0
    assert {r.id: r for r in store.index.runs(synced=True)}["00000001"].stored_status == "failed"
    assert index_check.main([]) == 2
