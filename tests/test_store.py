"""Run store: layout, atomic writes, torn lines, interrupted runs, references."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mnist_tui.errors import StoreError
from mnist_tui.runs.io import read_metrics, write_json_atomic
from mnist_tui.runs.store import RunStore


def test_create_and_read_back(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs")
    h = store.create("lenet5", "name = 'lenet5'\n", seed=3)
    h.append_metrics({"epoch": 1, "test_acc": 0.5})
    h.update(status="completed", final={"test_acc": 0.5})
    (info,) = store.runs()
    assert info.id == h.id and info.experiment == "lenet5" and info.status == "completed"
    assert info.seed == 3 and info.metrics() == [{"epoch": 1, "test_acc": 0.5}]
    assert (tmp_path / "runs" / "lenet5" / h.id / "spec.toml").is_file()


def test_torn_metrics_line_is_ignored(tmp_path: Path) -> None:
    p = tmp_path / "metrics.jsonl"
    p.write_text('{"epoch": 1}\n{"epoch": 2}\n{"epo')
    assert read_metrics(p) == [{"epoch": 1}, {"epoch": 2}]


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    write_json_atomic(tmp_path / "s.json", {"a": 1})
    write_json_atomic(tmp_path / "s.json", {"a": 2})
    assert json.loads((tmp_path / "s.json").read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]


def test_running_run_whose_process_is_gone_reads_interrupted(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    h = store.create("x", "")
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    h.update(status="running", pid=int(proc.stdout))
    assert store.runs()[0].status == "interrupted"
    h.update(pid=os.getpid())
    assert store.runs()[0].status == "running"


def test_damaged_run_is_skipped_not_fatal(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    good = store.create("x", "")
    bad = store.create("x", "")
    (bad.path / "summary.json").write_text("{not json")
    assert [r.id for r in store.runs()] == [good.id]
    assert store.damaged() == [bad.path]


def test_resolve_by_prefix_and_recency(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    first = store.create("a", "")
    first.update(created=1.0)
    second = store.create("b", "")
    second.update(created=2.0)
    assert store.resolve("1").id == second.id
    assert store.resolve("@2").id == first.id
    assert store.resolve(first.id[:6]).id == first.id
    with pytest.raises(StoreError, match="no run"):
        store.resolve("ffffffff" if "ffffffff" not in (first.id, second.id) else "00000000")
    with pytest.raises(StoreError, match="not a run id"):
        store.resolve("../../etc")
    with pytest.raises(StoreError, match="only 2 runs"):
        store.resolve("@9")


def test_experiment_name_cannot_escape_the_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot name a run directory"):
        RunStore(tmp_path).create("../evil", "")


def test_unwritable_runs_dir_is_a_clear_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        target = Path("/proc/mnist-tui-runs")  # not creatable even for root
    else:
        target = tmp_path / "ro" / "runs"
        (tmp_path / "ro").mkdir(mode=0o500)
    with pytest.raises(StoreError, match=r"cannot create the runs directory|not writable"):
        RunStore(target).create("x", "")
