"""The console driven by Textual's pilot: real runs on real data, in child processes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, Static

from mnist_tui.config.loading import experiment_names
from mnist_tui.runs.queue import RunQueue
from mnist_tui.runs.store import RunStore
from mnist_tui.tui.app import MnistTuiApp
from mnist_tui.tui.screens import DiffScreen, RunScreen

from .conftest import EXPERIMENTS

SIZE = (120, 40)


def make_app(tmp_path: Path, data: Path | None = None, concurrency: int = 1) -> MnistTuiApp:
    return MnistTuiApp(
        data_dir=data,
        runs_dir=tmp_path / "runs",
        experiments_dir=EXPERIMENTS,
        device="cpu",
        concurrency=concurrency,
        poll_interval=0.2,
    )


async def wait_for(pilot, predicate, timeout: float = 90.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        await pilot.pause(0.2)
    raise AssertionError("timed out waiting")


async def select_row(app: MnistTuiApp, pilot, table_id: str, key: str) -> None:  # type: ignore[no-untyped-def]
    table = app.query_one(f"#{table_id}", DataTable)
    table.focus()
    table.move_cursor(row=table.get_row_index(key))
    await pilot.pause()


async def test_experiments_view_lists_every_experiment(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.query_one("#experiments-table", DataTable)
        assert table.row_count == len(experiment_names(EXPERIMENTS))
        await pilot.press("slash", *"task1")
        await pilot.pause()
        keys = [table.coordinate_to_cell_key((i, 0)).row_key.value for i in range(table.row_count)]
        assert set(keys) == {"task1", "task10", "task11", "task12", "task13", "task14", "task15"}
        await pilot.press("escape")
        await pilot.pause()
        assert table.row_count == len(experiment_names(EXPERIMENTS))
        await pilot.press("4")
        await pilot.pause()
        report = app.query_one("#report-table", DataTable)
        assert report.row_count == len(experiment_names(EXPERIMENTS))


async def test_diff_of_two_marked_experiments(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        for name in ("task4", "task6"):
            await select_row(app, pilot, "experiments-table", name)
            await pilot.press("space")
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, DiffScreen)
        keys = app.screen.query_one("#diff-keys", DataTable)
        assert keys.row_count == 1
        assert keys.get_row_at(0)[0].plain == "model.kernel"
        await pilot.press("a")  # all keys
        await pilot.pause()
        assert keys.row_count > 20


@pytest.mark.realdata
async def test_queue_with_overrides_runs_to_completion(tmp_path: Path, real_data: Path) -> None:
    app = make_app(tmp_path, real_data)
    async with app.run_test(size=SIZE) as pilot:
        await select_row(app, pilot, "experiments-table", "fnn1")
        await pilot.press("a")
        await pilot.pause()
        app.screen.query_one(Input).value = "train.epochs=2 data.subset=2000 data.test_subset=500"
        await pilot.press("enter")
        await pilot.pause()
        store = RunStore(tmp_path / "runs")
        await wait_for(pilot, lambda: [r.status for r in store.runs()] == ["completed"])
        (run,) = store.runs()
        assert run.summary["epochs_done"] == 2 and len(run.metrics()) == 2
        await pilot.press("2")
        await select_row(app, pilot, "runs-table", run.id)
        await pilot.press("enter")
        await pilot.pause(0.5)
        assert isinstance(app.screen, RunScreen)
        plot = str(app.screen.query_one("#loss-plot", Static).render())
        assert "loss" in plot
        header = str(app.screen.query_one("#run-header", Static).render())
        assert "completed" in header and "epoch 2/2" in header
        await pilot.press("p")  # pictures of test images with predictions
        await pilot.pause(1.0)
        from mnist_tui.tui.screens import SamplesScreen

        assert isinstance(app.screen, SamplesScreen)
        top = str(app.screen.query_one("#samples-header", Static).render())
        assert "test accuracy" in top


@pytest.mark.realdata
async def test_cancel_a_running_run(tmp_path: Path, real_data: Path) -> None:
    app = make_app(tmp_path, real_data)
    store = RunStore(tmp_path / "runs")
    async with app.run_test(size=SIZE) as pilot:
        await select_row(app, pilot, "experiments-table", "fnn1")
        await pilot.press("a")
        await pilot.pause()
        app.screen.query_one(Input).value = "train.epochs=500 data.subset=1000 data.test_subset=200"
        await pilot.press("enter")
        await wait_for(
            pilot, lambda: any(r.summary.get("epochs_done", 0) >= 1 for r in store.runs())
        )
        await pilot.press("3")
        await select_row(app, pilot, "queue-table", store.runs()[0].id)
        await pilot.press("x")
        await wait_for(pilot, lambda: store.runs()[0].status == "killed", timeout=60)
        await wait_for(pilot, lambda: not app.queue.entries, timeout=30)
        assert store.runs()[0].summary["epochs_done"] < 500


async def test_queue_survives_reopening(tmp_path: Path) -> None:
    app = make_app(tmp_path, concurrency=0)  # paused: nothing starts
    async with app.run_test(size=SIZE) as pilot:
        for name in ("lenet5", "task2"):
            await select_row(app, pilot, "experiments-table", name)
            await pilot.press("a")
            await pilot.pause()
            app.screen.query_one(Input).value = "train.epochs=3"
            await pilot.press("enter")
            await pilot.pause()
        await pilot.press("3")
        await pilot.pause()
        first = [e.experiment for e in app.queue.entries]
        await select_row(app, pilot, "queue-table", app.queue.entries[1].run_id)
        await pilot.press("K")  # move task2 above lenet5
        await pilot.pause()
        before = [(e.run_id, e.experiment, e.overrides) for e in app.queue.entries]
        await pilot.press("q")
        await pilot.pause()
        await pilot.press("k")  # keep (nothing runs while paused)
    assert first == ["lenet5", "task2"]
    assert [b[1] for b in before] == ["task2", "lenet5"]
    reopened = RunQueue(RunStore(tmp_path / "runs"))
    assert [(e.run_id, e.experiment, e.overrides) for e in reopened.entries] == before
    app2 = make_app(tmp_path, concurrency=0)
    async with app2.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await pilot.pause()
        assert app2.query_one("#queue-table", DataTable).row_count == 2
        statuses = [r.status for r in app2.store.runs()]
        assert statuses == ["queued", "queued"]


async def test_bad_override_is_refused_in_the_dialog(tmp_path: Path) -> None:
    app = make_app(tmp_path, concurrency=0)
    async with app.run_test(size=SIZE) as pilot:
        await select_row(app, pilot, "experiments-table", "lenet5")
        await pilot.press("a")
        await pilot.pause()
        app.screen.query_one(Input).value = "optim.lrr=0.1"
        await pilot.press("enter")
        await pilot.pause()
        error = str(app.screen.query_one("#dialog-error", Static).render())
        assert "Did you mean 'lr'?" in error
        assert not app.queue.entries


async def test_help_lists_every_binding(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        text = str(app.screen.query_one("#help-text", Static).render())
        for word in ("Filter", "Mark", "Queue", "Diff marked", "Cancel run", "Quit"):
            assert word in text


def test_snapshot_experiments_view(snap_compare, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_app(tmp_path), terminal_size=(120, 40))


def test_snapshot_at_80x24(snap_compare, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_app(tmp_path), terminal_size=(80, 24))


def test_snapshot_diff_view(snap_compare, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        app = pilot.app
        for name in ("task7", "task8"):
            await select_row(app, pilot, "experiments-table", name)
            await pilot.press("space")
        await pilot.press("d")
        await asyncio.sleep(0.1)

    assert snap_compare(make_app(tmp_path), terminal_size=(120, 40), run_before=run_before)
