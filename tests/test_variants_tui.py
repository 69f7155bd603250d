"""The console's variants view: mark, compare, queue the seeds a comparison needs."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import Static

from mnist_tui.runs import scheduler
from mnist_tui.tui.app import MnistTuiApp
from mnist_tui.tui.grid import DataGrid
from mnist_tui.tui.screens.variants import VariantsScreen

from .conftest import EXPERIMENTS
from .test_variants import make_store


async def wait_for(pilot: Pilot[None], predicate: Callable[[], Any], timeout: float = 90.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError("timed out waiting")


async def test_variants_view_compares_the_marked_and_queues_seeds(tmp_path: Path) -> None:
    store = make_store(tmp_path / "runs")
    app = MnistTuiApp(
        runs_dir=store.root,
        experiments_dir=EXPERIMENTS,
        device="cpu",
        concurrency=0,  # queued runs stay queued
        poll_interval=0.2,
    )
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("V")
        await wait_for(
            pilot, lambda: isinstance(app.screen, VariantsScreen) and app.screen.variants
        )
        screen = app.screen
        assert isinstance(screen, VariantsScreen)
        grid = screen.query_one("#variants-table", DataGrid)
        await wait_for(pilot, lambda: grid.row_count == 6)
        keys = grid.row_keys()
        logreg = [k for k in keys if k.startswith("logreg@")]
        labels = {v.id: v.label for v in screen.variants}
        own = next(k for k in logreg if labels[k] == "logreg")
        lr = next(k for k in logreg if labels[k] == "logreg [optim.lr=0.01]")
        await pilot.press("c")  # nothing marked: says what to do
        for key in (own, lr):
            grid.move_cursor(row=keys.index(key))
            await pilot.press("space")
        assert list(screen.marked) == [own, lr]
        await pilot.press("c")
        await wait_for(pilot, lambda: screen.study is not None)
        shown = Console(width=80, record=True, file=io.StringIO())
        shown.print(screen.query_one("#variants-result", Static).content)
        text = shown.export_text()
        assert screen.study is not None and len(screen.study.pairs) == 1
        pair = screen.study.pairs[0]
        assert not pair.significant and pair.seeds_needed is not None
        assert pair.seeds_needed > 3
        assert "not distinguishable with 3 and 3 runs" in text and "#2 − #1" in text
        (tmp_path / "compare.txt").write_text(text)
        app.save_screenshot(str(tmp_path / "compare.svg"))
        await pilot.press("n")
        want = 2 * (pair.seeds_needed - 3)
        await wait_for(pilot, lambda: len(scheduler.active_runs(store)) == want)
        queued = scheduler.active_runs(store)
        seeds = sorted({r.seed for r in queued if r.experiment == "logreg"})  # type: ignore[type-var]
        assert seeds == list(range(3, pair.seeds_needed))  # after the seeds it has
        await pilot.press("escape")
