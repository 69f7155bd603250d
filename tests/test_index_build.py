"""A store whose index is missing: the first command says it builds it, and Ctrl-C keeps a
usable store whose next command finishes the build."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mnist_tui.config.loading import load_experiment
from mnist_tui.runs import index as run_index
from mnist_tui.runs import scheduler
from mnist_tui.runs.store import RunStore

from .conftest import EXPERIMENTS, REPO

N = 2500  # above the size worth reporting, over two batches


def many_runs(root: Path, n: int = N) -> RunStore:
    store = RunStore(root)
    spec = load_experiment("logreg", EXPERIMENTS)
    first = scheduler.enqueue(store, spec, scheduler.QueueRequest())
    store.handle(first).update(status="completed", queue_position=None)
    summary = json.loads((first.path / "summary.json").read_text())
    spec_text = (first.path / "spec.toml").read_text()
    for i in range(1, n):
        rid = f"{i:08x}"
        d = first.path.parent / rid
        d.mkdir()
        (d / "spec.toml").write_text(spec_text)
        (d / "summary.json").write_text(json.dumps(dict(summary, id=rid)))
    return store


def drop_index(store: RunStore) -> None:
    run_index.index_for(store.root).close()
    for p in store.root.glob(".index.sqlite*"):
        p.unlink()


def test_the_first_command_without_an_index_says_it_builds_it(tmp_path: Path) -> None:
    store = many_runs(tmp_path / "store")
    drop_index(store)
    out = subprocess.run(
        [sys.executable, "-m", "mnist_tui", "runs", "--runs-dir", str(store.root), "--json"],
        env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    said = " ".join(out.stderr.split())
    assert "building the run index" in said and f"{N:,} runs to read" in said
    assert f"{N:,} / {N:,} runs indexed" in said
    assert "building" not in out.stdout  # the JSON stays clean


def test_ctrl_c_during_the_build_leaves_a_store_the_next_command_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = many_runs(tmp_path / "store")
    drop_index(store)
    seen: list[tuple[int, int]] = []

    def interrupt(root: Path, done: int, total: int) -> None:
        seen.append((done, total))
        raise KeyboardInterrupt

    monkeypatch.setattr(run_index, "BUILD_PROGRESS", [interrupt])
    with pytest.raises(KeyboardInterrupt):
        store.index.sync()
    assert seen == [(run_index.BUILD_BATCH, N)]
    # what was read before the interrupt is kept, and the index still answers
    assert store.index.count() == run_index.BUILD_BATCH
    monkeypatch.setattr(run_index, "BUILD_PROGRESS", [])
    assert len(store.runs()) == N  # the next command reads only the rest
    assert store.index.sync() == 0
