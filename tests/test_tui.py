"""The console driven by Textual's pilot, on a fixture experiments directory and run store
(tests/fixtures): adding an experiment to experiments/ changes none of this."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.containers import VerticalScroll
from textual.pilot import Pilot
from textual.widgets import Footer, Input, Static, TabbedContent
from textual.widgets._footer import FooterKey

from mnist_tui.config import loading
from mnist_tui.runs import scheduler
from mnist_tui.runs.index import RunIndex
from mnist_tui.runs.record import RunInfo
from mnist_tui.runs.store import RunStore
from mnist_tui.runs.worker import stop_worker
from mnist_tui.tui.app import MnistTuiApp
from mnist_tui.tui.grid import DataGrid
from mnist_tui.tui.screens import (
    DiffScreen,
    ExperimentScreen,
    HelpScreen,
    MainScreen,
    OverlayScreen,
    RunScreen,
    SearchScreen,
)
from mnist_tui.tui.workers import FileTail, MetricsTail

from .conftest import FIXTURES

EXPERIMENTS = FIXTURES / "experiments"
RUNS = FIXTURES / "runs"
FIXTURE_NAMES = sorted(p.stem for p in EXPERIMENTS.glob("*.toml"))
RUN_IDS = ["f0000003", "f0000002", "f0000001"]  # newest first
SIZE = (120, 40)


def queue_of(app: MnistTuiApp) -> list[RunInfo]:
    """Running, then queued runs: the queue is the run store."""
    return scheduler.active_runs(app.store)


@pytest.fixture(autouse=True)
def _fixture_experiments_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the fixture directory: no experiments shipped with the package beneath it."""
    monkeypatch.setattr(loading, "shipped_experiments_dir", lambda: None, raising=False)


def make_app(
    tmp_path: Path,
    data: Path | None = None,
    concurrency: int = 1,
    with_runs: bool = True,
) -> MnistTuiApp:
    runs = tmp_path / "runs"
    if with_runs and not runs.exists():
        shutil.copytree(RUNS, runs)
    return MnistTuiApp(
        data_dir=data,
        runs_dir=runs,
        experiments_dir=EXPERIMENTS,
        device="cpu",
        concurrency=concurrency,
        poll_interval=0.2,
    )


async def wait_for(pilot: Pilot[None], predicate: Callable[[], Any], timeout: float = 90.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError("timed out waiting")


async def loaded(pilot: Pilot[None]) -> MnistTuiApp:
    app = pilot.app
    assert isinstance(app, MnistTuiApp)
    await wait_for(pilot, lambda: app.main.loaded, timeout=30)
    await pilot.pause()
    return app


async def select_row(app: MnistTuiApp, pilot: Pilot[None], tab: str, key: str) -> None:
    grid = app.main.grid(tab)
    grid.focus()
    grid.move_cursor(row=grid.get_row_index(key))
    await pilot.pause()


def grid_keys(grid: DataGrid) -> list[str]:
    return grid.row_keys()


async def test_experiments_view_lists_every_experiment(tmp_path: Path) -> None:
    async with make_app(tmp_path).run_test(size=SIZE) as pilot:
        app = await loaded(pilot)
        table = app.main.grid("experiments")
        assert sorted(grid_keys(table)) == FIXTURE_NAMES
        broken = table.get_row("broken")
        assert "invalid" in [c.plain for c in broken]
        await pilot.press("slash", *"cnn")
        await wait_for(pilot, lambda: len(grid_keys(table)) == 3, timeout=5)
        assert set(grid_keys(table)) == {"cnn_base", "cnn_wide", "cnn_5x5"}
        await pilot.press("escape")
        await pilot.pause()
        assert sorted(grid_keys(table)) == FIXTURE_NAMES
        await pilot.press("4")
        report = app.main.grid("report")
        await wait_for(pilot, lambda: report.row_count > 0)
        assert sorted(grid_keys(report)) == [n for n in FIXTURE_NAMES if n != "broken"]


async def test_diff_of_two_marked_experiments(tmp_path: Path) -> None:
    async with make_app(tmp_path).run_test(size=SIZE) as pilot:
        app = await loaded(pilot)
        for name in ("cnn_base", "cnn_5x5"):
            await select_row(app, pilot, "experiments", name)
            await pilot.press("space")
        await pilot.press("d")
        screen = app.screen
        assert isinstance(screen, DiffScreen)
        keys = screen.query_one("#diff-keys", DataGrid)
        await wait_for(pilot, lambda: keys.row_count > 0)
        assert grid_keys(keys) == ["model.kernel"]
        await pilot.press("a")  # all keys
        await pilot.pause()
        assert keys.row_count > 20
        figures = screen.query_one("#diff-figures", DataGrid)
        assert [str(c) for c in figures.get_row("final test acc")][1:] == [
            "91.73%",
            "91.66%",
            "-0.07 pp",
        ]


async def test_diff_of_an_experiment_and_a_run(tmp_path: Path) -> None:
    """One experiment and one run marked: its definition and reported figures against
    the run's; and `d` on a run screen does the same with the run's own experiment."""
    async with make_app(tmp_path).run_test(size=SIZE) as pilot:
        app = await loaded(pilot)
        await select_row(app, pilot, "experiments", "fnn1")
        await pilot.press("space", "2")
        await select_row(app, pilot, "runs", "f0000002")
        await pilot.press("space", "d")
        screen = app.screen
        assert isinstance(screen, DiffScreen) and screen.refs == ("fnn1", "f0000002")
        figures = screen.query_one("#diff-figures", DataGrid)
        await wait_for(pilot, lambda: figures.row_count > 0)
        headers = [str(c.label) for c in figures.columns.values()]
        assert "fnn1 reported" in headers and "fnn1/f0000002 reproduced" in headers
        await pilot.press("escape", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.run)
        await pilot.press("d")
        assert isinstance(app.screen, DiffScreen)
        assert app.screen.refs[0] == "fnn1"


async def test_keys_typed_ahead_or_pasted_reach_the_filter(tmp_path: Path) -> None:
    """`/cnn_w` sent in one burst (a fast typist over SSH): no key goes to the table."""
    from textual import events

    async with make_app(tmp_path).run_test(size=SIZE) as pilot:
        app = await loaded(pilot)
        assert app._driver is not None
        for key, char in [
            ("slash", "/"),
            *((c, c) for c in "cnn"),
            ("underscore", "_"),
            ("w", "w"),
        ]:
            event = events.Key(key, char)
            event.set_sender(app)
            app._driver.send_message(event)  # all queued before the first is handled
        box = app.main.query_one("#filter", Input)
        await wait_for(pilot, lambda: box.value == "cnn_w", timeout=5)
        assert isinstance(app.screen, MainScreen)  # nothing opened a dialog behind it
        await pilot.press("escape")
        await pilot.pause()
        app.main.grid("experiments").post_message(events.Paste("/cnn_5"))
        await wait_for(pilot, lambda: box.value == "cnn_5", timeout=5)
        table = app.main.grid("experiments")
        await wait_for(pilot, lambda: grid_keys(table) == ["cnn_5x5"], timeout=5)


async def test_report_tab_explains_its_markers(tmp_path: Path) -> None:
    async with make_app(tmp_path).run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        await pilot.press("4")
        notes = app.main.query_one("#report-notes", Static)
        await wait_for(pilot, lambda: "Δ pp:" in str(notes.render()), timeout=10)
        assert "inside:" in str(notes.render())
        await pilot.press("slash", *"cnn_w")
        report = app.main.grid("report")
        await wait_for(pilot, lambda: grid_keys(report) == ["cnn_wide"], timeout=5)


async def test_stopping_a_running_run_asks_first_and_shows_at_once(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    from mnist_tui.tui.screens import ConfirmStop

    # a stand-in for the trainer: a live process of this host that notes SIGTERM and
    # goes on, as a trainer does until its step ends
    signalled = tmp_path / "signalled"
    code = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: open(sys.argv[1], 'w').close())\n"
        "time.sleep(60)\n"
    )
    from mnist_tui.runs.io import process_start_time

    app = make_app(tmp_path)
    run_dir = tmp_path / "runs" / "fnn1" / "f0000003"
    # only a verified trainer is signalled: its command line names the tool and the run,
    # and the summary gives its start time
    stand_in = subprocess.Popen(
        [sys.executable, "-c", code, str(signalled), "mnist_tui", "train-run", str(run_dir)]
    )
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
        time.sleep(0.2)  # its exec done: the command line is its own
        summary.update(status="running", host=socket.gethostname(), pid=stand_in.pid)
        summary.update(pid_start=process_start_time(stand_in.pid))
        summary.pop("final", None)
        (run_dir / "summary.json").write_text(json.dumps(summary))
        async with app.run_test(size=SIZE) as pilot:
            await loaded(pilot)
            await pilot.press("2")
            grid = app.main.grid("runs")
            await wait_for(pilot, lambda: "running" in [c.plain for c in grid.get_row("f0000003")])
            await select_row(app, pilot, "runs", "f0000003")
            await pilot.press("x")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmStop)
            await pilot.press("n")  # kept: nothing was asked of the run
            await pilot.pause()
            assert not (run_dir / scheduler.CANCEL_FLAG).exists()
            await pilot.press("x")
            await pilot.pause()
            await pilot.press("y")
            await wait_for(
                pilot, lambda: "stopping" in [c.plain for c in grid.get_row("f0000003")], 10
            )
            await wait_for(pilot, signalled.exists, 10)  # and the trainer was signalled
    finally:
        stand_in.kill()


async def test_sub_screens_take_only_their_own_keys(tmp_path: Path) -> None:
    """Keys of the main view do nothing on a screen above it, and esc there only goes back."""
    async with make_app(tmp_path).run_test(size=SIZE) as pilot:
        app = await loaded(pilot)
        await pilot.press("slash", *"cnn", "enter")
        for name in ("cnn_base", "cnn_5x5"):
            await select_row(app, pilot, "experiments", name)
            await pilot.press("space")
        marks_before = set(app.main.marked["experiments"])
        await pilot.press("d")
        assert isinstance(app.screen, DiffScreen)
        await pilot.press("space", "s", "x", "K", "2", "slash")  # main-view keys
        await pilot.pause()
        assert isinstance(app.screen, DiffScreen)
        assert set(app.main.marked["experiments"]) == marks_before
        assert app.main.sort["experiments"] is None
        assert app.main.active_tab == "experiments"
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert app.main.query_one("#filter", Input).value == "cnn"  # the filter survives
        assert app.main.filter_text == "cnn"
        await pilot.press("S")
        assert isinstance(app.screen, SearchScreen)
        status = app.screen.query_one("#search-status", Static)
        await wait_for(pilot, lambda: "No searches" in str(status.render()))
        await pilot.press("space", "a", "escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert set(app.main.marked["experiments"]) == marks_before
        assert not queue_of(app)


async def test_keys_that_mean_nothing_on_a_tab_are_hidden_and_refused(tmp_path: Path) -> None:
    async with make_app(tmp_path).run_test(size=SIZE) as pilot:
        app = await loaded(pilot)
        bound = {a.binding.action for a in app.screen.active_bindings.values()}
        assert "queue" in bound and "move('up')" not in bound and "cancel" not in bound
        await pilot.press("3")
        await pilot.pause()
        bound = {a.binding.action for a in app.screen.active_bindings.values()}
        assert "move('up')" in bound and "queue" not in bound and "mark" not in bound
        await pilot.press("a")  # refused: nothing asks for overrides
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)


def _footer_fits(screen: Any, width: int) -> None:
    keys = list(screen.query_one(Footer).query(FooterKey))
    assert keys, "no keys in the footer"
    for key in keys:
        assert key.region.width > 0 and key.region.right <= width, (key.key, key.region)


async def test_footer_fits_80_columns_on_every_screen(tmp_path: Path) -> None:
    async with make_app(tmp_path).run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        for tab in "1234":
            await pilot.press(tab)
            await pilot.pause()
            _footer_fits(app.screen, 80)
        await pilot.press("2", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen))
        await pilot.pause()
        _footer_fits(app.screen, 80)
        await pilot.press("escape", "1", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ExperimentScreen))
        await pilot.pause()
        _footer_fits(app.screen, 80)


async def test_help_lists_every_key_of_the_screen_and_scrolls_at_80x24(tmp_path: Path) -> None:
    async with make_app(tmp_path).run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        expected = {
            a.binding.description for a in app.screen.active_bindings.values() if a.binding.show
        }
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        listed = {what for _keys, what, _on in app.screen.rows}
        assert expected <= listed
        assert {"Filter", "Mark ↓", "Queue", "Diff", "Quit", "Help", "Cursor down"} <= listed
        scroll = app.screen.query_one("#help-scroll", VerticalScroll)
        assert scroll.max_scroll_y > 0  # more keys than rows at 80x24: it scrolls
        await pilot.press("pagedown")
        await pilot.pause()
        assert scroll.scroll_y > 0
        await pilot.press("escape")
        await pilot.press("2", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen))
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        listed = {what for _keys, what, _on in app.screen.rows}
        # a completed run: nothing to stop or resume, so those keys are not offered
        assert {"Pictures", "Diff vs exp", "Copy id", "Back", "Again…", "Tag", "Note"} <= listed
        assert not {"Stop", "Resume"} & listed
        assert not {"Mark ↓", "Queue", "Diff"} & listed  # the main view's keys are not here


async def test_runs_tab_keeps_ids_and_names_whole_at_80_columns(tmp_path: Path) -> None:
    async with make_app(tmp_path).run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        await pilot.press("2")
        await pilot.pause()
        grid = app.main.grid("runs")
        headers = [str(c.label) for c in grid.columns.values()]
        assert "id" in headers and "experiment" in headers
        assert grid_keys(grid) == RUN_IDS
        for run_id in RUN_IDS:
            cells = [c.plain for c in grid.get_row(run_id)]
            assert run_id in cells and "fnn1" in cells
        widths = sum(c.get_render_width(grid) for c in grid.columns.values())
        assert widths <= 80


async def test_copy_highlighted_run_id(tmp_path: Path) -> None:
    async with make_app(tmp_path).run_test(size=SIZE) as pilot:
        app = await loaded(pilot)
        copied: list[str] = []
        app.copy_to_clipboard = copied.append  # type: ignore[method-assign]
        await pilot.press("2")
        await select_row(app, pilot, "runs", "f0000002")
        await pilot.press("y")
        assert copied == ["f0000002"]


async def test_run_screen_shows_curves_first_at_80x24(tmp_path: Path) -> None:
    async with make_app(tmp_path).run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        await pilot.press("2")
        await select_row(app, pilot, "runs", "f0000001")
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, RunScreen)
        await wait_for(pilot, lambda: len(screen.rows) == 6)
        await pilot.pause(0.2)
        assert screen.query_one("#run-tabs", TabbedContent).active == "curves"
        loss = str(screen.query_one("#loss-plot", Static).render())
        assert "loss" in loss and "• train" in loss and "x test" in loss
        ticks = loss.splitlines()[-2].split()
        assert ticks and all(t.isdigit() for t in ticks)  # whole epochs only
        assert screen.query_one("#loss-plot", Static).region.bottom <= 23
        header = str(screen.query_one("#run-header", Static).render())
        assert "completed" in header and "epoch 6/6" in header
        await pilot.press("2")
        await pilot.pause()
        epochs = screen.query_one("#epochs-table", DataGrid)
        assert epochs.row_count == 6


async def test_run_screen_tails_new_epochs(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    run_dir = tmp_path / "runs" / "fnn1" / "f0000003"
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("2", "enter")
        screen = app.screen
        assert isinstance(screen, RunScreen)
        await wait_for(pilot, lambda: len(screen.rows) == 4)
        lines = (run_dir / "metrics.jsonl").read_text().splitlines()
        extra = {**json.loads(lines[-1]), "epoch": 5, "test_acc": 0.7}
        with (run_dir / "metrics.jsonl").open("a") as fh:
            fh.write(json.dumps(extra) + "\n")
        await wait_for(pilot, lambda: len(screen.rows) == 5, timeout=10)
        assert screen.rows[-1]["test_acc"] == 0.7
        # a rewritten file (resume) is read again from its start
        (run_dir / "metrics.jsonl").write_text("\n".join(lines[:2]) + "\n")
        await wait_for(pilot, lambda: len(screen.rows) == 2, timeout=10)


async def test_run_header_keeps_its_height_while_the_step_text_grows(tmp_path: Path) -> None:
    import os
    import socket

    app = make_app(tmp_path)
    path = tmp_path / "runs" / "fnn1" / "f0000003" / "summary.json"
    summary = json.loads(path.read_text())
    summary.update(status="running", host=socket.gethostname(), pid=os.getpid(), epochs=400)
    summary.update(device="cpu (16 threads, a long device description)")
    summary.pop("final", None)
    path.write_text(json.dumps(summary))
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        await pilot.press("2")
        await select_row(app, pilot, "runs", "f0000003")
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, RunScreen)
        header = screen.query_one("#run-header", Static)
        await wait_for(pilot, lambda: "running" in str(header.render()), timeout=10)
        await pilot.pause(0.2)
        heights = {header.region.height}
        for step in (5, 12345):  # the first line grows past 80 columns
            summary.update(epoch_in_progress=5, step=step, steps=99999)
            path.write_text(json.dumps(summary))
            await wait_for(pilot, lambda s=step: f"step {s}/" in str(header.render()), 10)
            await pilot.pause(0.2)
            heights.add(header.region.height)
        assert heights == {3}  # three lines of text (the last: the run's keys), no rewrap


async def test_grid_caps_rows_and_updates_changed_cells_in_place() -> None:
    from textual.app import App, ComposeResult

    from mnist_tui.views.tables import Cell, Column, Row, TableData

    def table(status_of_7: str) -> TableData:
        rows = [
            Row(f"r{i}", (Cell(f"r{i}"), Cell(status_of_7 if i == 7 else "queued")))
            for i in range(120)
        ]
        return TableData("t", [Column("id", keep=True), Column("status")], rows)

    class Grid(App[None]):
        def compose(self) -> ComposeResult:
            yield DataGrid(max_rows=50)

    app = Grid()
    async with app.run_test(size=(60, 20)) as pilot:
        grid = app.query_one(DataGrid)
        grid.show(table("queued"))
        await pilot.pause()
        assert grid.row_count == 50 and grid.hidden_rows == 70
        rebuilt: list[int] = []
        original = grid._rebuild
        grid._rebuild = lambda *a: (rebuilt.append(1), original(*a))[1]  # type: ignore[method-assign]
        grid.move_cursor(row=9)
        grid.show(table("killed"))  # one cell changed, same width
        await pilot.pause()
        assert not rebuilt and grid.get_row("r7")[1].plain == "killed"
        assert grid.current_key == "r9"
        grid.show(table("interrupted"))  # wider than the column: rebuilt, cursor kept
        await pilot.pause()
        assert rebuilt and grid.get_row("r7")[1].plain == "interrupted"
        assert grid.current_key == "r9"


def test_file_tail_reads_only_what_was_appended(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    tail = FileTail(path)
    assert tail.read() == ([], False)
    path.write_text('{"epoch": 1}\n{"epoch": 2')
    assert tail.read() == (['{"epoch": 1}'], False)  # the torn line waits
    with path.open("a") as fh:
        fh.write('}\n{"epoch": 3}\n')
    assert tail.read() == (['{"epoch": 2}', '{"epoch": 3}'], False)
    assert tail.offset == path.stat().st_size
    assert tail.read() == ([], False)
    path.write_text('{"epoch": 1}\n')  # shorter: rewritten
    lines, reset = tail.read()
    assert reset and lines == ['{"epoch": 1}']
    rows, _ = MetricsTail(path).read()
    assert rows == [{"epoch": 1}]


def test_store_reader_follows_the_index_instead_of_rereading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mnist_tui.tui.workers import StoreReader

    shutil.copytree(RUNS, tmp_path / "runs")
    store = RunStore(tmp_path / "runs")
    reader = StoreReader(EXPERIMENTS, store)
    first = reader.read([])
    assert first is not None and first.runs_table is not None
    assert [r.key for r in first.runs_table.rows] == RUN_IDS
    assert reader.read([]) is None  # nothing changed: nothing to redraw
    listings: list[int] = []
    original = RunStore.runs

    def counting(self: RunStore, *args: Any, **kwargs: Any) -> Any:
        listings.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(RunStore, "runs", counting)
    run = store.read_run("fnn1", "f0000003")
    assert run is not None
    store.handle(run).update(epochs_done=3)  # a write through the store
    changed = reader.read([])
    assert changed is not None and changed.runs_table is not None
    row = next(r for r in changed.runs_table.rows if r.key == "f0000003")
    assert "3/4" in [c.text for c in row.cells]
    shutil.rmtree(tmp_path / "runs" / "fnn1" / "f0000001")  # removed behind the store's back
    gone = reader.read([])
    assert gone is not None and gone.runs_table is not None
    assert [r.key for r in gone.runs_table.rows] == ["f0000003", "f0000002"]
    assert not listings  # followed through the index's changes, never listed again


async def test_blocking_reads_run_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading the store, run files and studies happens in worker threads only."""
    seen: list[tuple[str, bool]] = []
    main = threading.main_thread()

    def spy(cls: Any, name: str) -> None:
        original = getattr(cls, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            seen.append((name, threading.current_thread() is main))
            return original(*args, **kwargs)

        monkeypatch.setattr(cls, name, wrapper)

    spy(RunIndex, "runs")
    spy(RunStore, "resolve")
    import mnist_tui.studies.tune as tune

    spy(tune, "read_studies")
    async with make_app(tmp_path).run_test(size=SIZE) as pilot:
        app = await loaded(pilot)
        await pilot.press("2", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.rows)
        await pilot.press("escape", "1", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ExperimentScreen))
        await pilot.pause(0.3)
        await pilot.press("escape", "S")
        await pilot.pause(0.5)
    names = {n for n, _ in seen}
    assert {"runs", "resolve", "read_studies"} <= names
    assert not [n for n, on_main in seen if on_main]


async def test_a_failing_worker_is_reported_and_the_console_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mnist_tui.studies.tune as tune

    def broken(store: RunStore) -> list[Any]:
        raise RuntimeError("database disk image is malformed")

    monkeypatch.setattr(tune, "read_studies", broken)
    async with make_app(tmp_path).run_test(size=SIZE) as pilot:
        app = await loaded(pilot)
        await pilot.press("S")
        await wait_for(
            pilot, lambda: any("malformed" in n.message for n in app._notifications), timeout=10
        )
        await pilot.press("escape", "2")
        await pilot.pause()
        assert app.is_running and app.main.active_tab == "runs"


async def overlay_of_every_run(pilot: Pilot[None]) -> OverlayScreen:
    """Mark every fixture run on the runs tab and open their overlay."""
    app = await loaded(pilot)
    await pilot.press("2")
    for run_id in RUN_IDS:
        await select_row(app, pilot, "runs", run_id)
        await pilot.press("space")
    await pilot.press("o")
    screen = app.screen
    assert isinstance(screen, OverlayScreen)
    await wait_for(pilot, lambda: len(screen.runs) == 3)
    await pilot.pause()
    return screen


async def test_overlay_of_marked_runs(tmp_path: Path) -> None:
    async with make_app(tmp_path).run_test(size=SIZE) as pilot:
        screen = await overlay_of_every_run(pilot)
        plot = str(screen.query_one("#overlay-plot", Static).render())
        for marker, run_id in zip("•x+", sorted(RUN_IDS), strict=True):
            assert f"{marker} fnn1/{run_id}" in plot  # oldest first, a glyph each
        await pilot.press("m")
        await pilot.pause()
        assert "test loss" in str(screen.query_one("#overlay-plot", Static).render())


async def test_overlay_draws_a_group_as_mean_and_std_band(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    for run_id in ("f0000001", "f0000002"):  # two seeds of one group
        path = tmp_path / "runs" / "fnn1" / run_id / "summary.json"
        summary = json.loads(path.read_text())
        summary["group"] = "fnn1-g"
        path.write_text(json.dumps(summary))
    async with app.run_test(size=SIZE) as pilot:
        screen = await overlay_of_every_run(pilot)
        await pilot.press("g")
        await pilot.pause()
        plot = str(screen.query_one("#overlay-plot", Static).render())
        assert "group mean ± std" in plot
        assert "fnn1 fnn1-g: mean of 2" in plot and "± 1 std" in plot
        assert "• fnn1 fnn1-g" in plot and "x fnn1" in plot  # the ungrouped run: its own


async def test_queue_survives_reopening(tmp_path: Path) -> None:
    app = make_app(tmp_path, concurrency=0)  # paused: nothing starts
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        for name in ("lenet5", "cnn_wide"):
            await select_row(app, pilot, "experiments", name)
            await pilot.press("a")
            await pilot.pause()
            app.screen.query_one(Input).value = "train.epochs=3"
            n = len(queue_of(app)) + 1
            await pilot.press("enter")
            await wait_for(pilot, lambda n=n: len(queue_of(app)) == n, timeout=10)
        await pilot.press("3")
        await wait_for(pilot, lambda: app.main.grid("queue").row_count == 2, timeout=10)
        first = [e.experiment for e in queue_of(app)]
        await select_row(app, pilot, "queue", queue_of(app)[1].id)
        await pilot.press("K")  # move cnn_wide above lenet5
        await wait_for(pilot, lambda: queue_of(app)[0].experiment == "cnn_wide", timeout=10)
        before = [(e.id, e.experiment, e.summary.get("overrides")) for e in queue_of(app)]
        await pilot.press("q")
        await pilot.pause()
        await pilot.press("k")  # keep (nothing runs while paused)
    assert first == ["lenet5", "cnn_wide"]
    assert [b[1] for b in before] == ["cnn_wide", "lenet5"]
    reopened = scheduler.queue_order(RunStore(tmp_path / "runs"))
    assert [(e.id, e.experiment, e.summary.get("overrides")) for e in reopened] == before
    app2 = make_app(tmp_path, concurrency=0)
    async with app2.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("3")
        await pilot.pause()
        assert app2.main.grid("queue").row_count == 2
        statuses = [r.status for r in app2.store.runs() if r.experiment != "fnn1"]
        assert statuses == ["queued", "queued"]


async def test_bad_override_is_refused_in_the_dialog(tmp_path: Path) -> None:
    app = make_app(tmp_path, concurrency=0)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await select_row(app, pilot, "experiments", "lenet5")
        await pilot.press("a")
        await pilot.pause()
        app.screen.query_one(Input).value = "optim.lrr=0.1"
        await pilot.press("enter")
        error = app.screen.query_one("#dialog-error", Static)
        await wait_for(pilot, lambda: "Did you mean 'lr'?" in str(error.render()), timeout=10)
        assert not queue_of(app)


@pytest.mark.realdata
async def test_queue_with_overrides_runs_to_completion(tmp_path: Path, real_data: Path) -> None:
    app = make_app(tmp_path, real_data, with_runs=False)
    store = RunStore(tmp_path / "runs")
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await select_row(app, pilot, "experiments", "fnn1")
        await pilot.press("a")
        await pilot.pause()
        app.screen.query_one(Input).value = "train.epochs=2 data.subset=2000 data.test_subset=500"
        await pilot.press("enter")
        await wait_for(pilot, lambda: [r.status for r in store.runs()] == ["completed"])
        (run,) = store.runs()
        assert run.summary["epochs_done"] == 2 and len(run.metrics()) == 2
        await pilot.press("2")
        await wait_for(pilot, lambda: run.id in grid_keys(app.main.grid("runs")))
        await select_row(app, pilot, "runs", run.id)
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, RunScreen)
        await wait_for(pilot, lambda: len(screen.rows) == 2)
        await pilot.pause(0.3)
        assert "loss" in str(screen.query_one("#loss-plot", Static).render())
        header = str(screen.query_one("#run-header", Static).render())
        assert "completed" in header and "epoch 2/2" in header
        await pilot.press("p")  # pictures of test images with predictions
        from mnist_tui.tui.screens import SamplesScreen

        assert isinstance(app.screen, SamplesScreen)
        top = app.screen.query_one("#samples-header", Static)
        await wait_for(pilot, lambda: "test accuracy" in str(top.render()), timeout=60)
    stop_worker(store)


@pytest.mark.realdata
async def test_cancel_a_running_run(tmp_path: Path, real_data: Path) -> None:
    app = make_app(tmp_path, real_data, with_runs=False)
    store = RunStore(tmp_path / "runs")
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await select_row(app, pilot, "experiments", "fnn1")
        await pilot.press("a")
        await pilot.pause()
        app.screen.query_one(Input).value = "train.epochs=500 data.subset=1000 data.test_subset=200"
        await pilot.press("enter")
        await wait_for(
            pilot, lambda: any(r.summary.get("epochs_done", 0) >= 1 for r in store.runs())
        )
        await pilot.press("3")
        run_id = store.runs()[0].id
        await wait_for(pilot, lambda: run_id in grid_keys(app.main.grid("queue")))
        await select_row(app, pilot, "queue", run_id)
        await pilot.press("x")
        await pilot.pause()
        await pilot.press("y")  # yes, stop it
        await wait_for(pilot, lambda: store.runs()[0].status == "killed", timeout=60)
        await wait_for(pilot, lambda: not queue_of(app), timeout=30)
        assert store.runs()[0].summary["epochs_done"] < 500
    stop_worker(store)


def test_tui_modules_import_without_cycles_and_screens_never_import_the_app() -> None:
    import ast

    package = Path(__file__).resolve().parent.parent / "mnist_tui" / "tui"
    graph: dict[str, set[str]] = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mnist_tui.tui"):
                deps.add(node.module or "")
        graph[name] = deps
    for name, deps in graph.items():
        if name.startswith("mnist_tui.tui.screens"):
            assert "mnist_tui.tui.app" not in deps, name
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, " -> ".join((*path, name))
        if name in done:
            return
        for dep in graph.get(name, ()):
            visit(dep, (*path, name))
        done.add(name)

    for name in graph:
        visit(name, ())


# ----------------------------------------------------------------------------- snapshots


async def _ready(pilot: Pilot[None]) -> None:
    await loaded(pilot)
    await pilot.pause(0.1)


def test_snapshot_experiments_view(snap_compare: Any, tmp_path: Path) -> None:
    assert snap_compare(make_app(tmp_path), terminal_size=(120, 40), run_before=_ready)


def test_snapshot_at_80x24(snap_compare: Any, tmp_path: Path) -> None:
    assert snap_compare(make_app(tmp_path), terminal_size=(80, 24), run_before=_ready)


def test_snapshot_runs_tab_at_80x24(snap_compare: Any, tmp_path: Path) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await _ready(pilot)
        await pilot.press("2")
        await pilot.pause(0.1)

    assert snap_compare(make_app(tmp_path), terminal_size=(80, 24), run_before=run_before)


def test_snapshot_help_at_80x24(snap_compare: Any, tmp_path: Path) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await _ready(pilot)
        await pilot.press("question_mark")
        await pilot.pause(0.1)

    assert snap_compare(make_app(tmp_path), terminal_size=(80, 24), run_before=run_before)


def test_snapshot_diff_view(snap_compare: Any, tmp_path: Path) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        app = await loaded(pilot)
        for name in ("cnn_base", "cnn_wide"):
            await select_row(app, pilot, "experiments", name)
            await pilot.press("space")
        await pilot.press("d")
        screen = app.screen
        assert isinstance(screen, DiffScreen)
        await wait_for(pilot, lambda: screen.loaded is not None)
        await asyncio.sleep(0.1)

    assert snap_compare(make_app(tmp_path), terminal_size=(120, 40), run_before=run_before)


def test_snapshot_run_view_at_80x24(snap_compare: Any, tmp_path: Path) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        app = await loaded(pilot)
        await pilot.press("2")
        await select_row(app, pilot, "runs", "f0000001")
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, RunScreen)
        await wait_for(pilot, lambda: len(screen.rows) == 6)
        await pilot.pause(0.2)

    assert snap_compare(make_app(tmp_path), terminal_size=(80, 24), run_before=run_before)


def test_snapshot_overlay_view(snap_compare: Any, tmp_path: Path) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await overlay_of_every_run(pilot)
        await pilot.pause(0.2)

    assert snap_compare(make_app(tmp_path), terminal_size=(120, 40), run_before=run_before)


def test_a_large_store_shows_its_newest_runs_first_then_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first read takes the newest FIRST runs (the console is up at once at 100,000
    runs) with the experiments' counts from the index; the next takes every run. A run
    that ends is told from the runs the reader watches, not from a look at every run."""
    from mnist_tui.tui import workers

    monkeypatch.setattr(workers, "FIRST", 2)
    shutil.copytree(RUNS, tmp_path / "runs")
    store = RunStore(tmp_path / "runs")
    reader = workers.StoreReader(EXPERIMENTS, store)
    first = reader.read([])
    assert first is not None and first.runs_table is not None and first.experiments
    assert [r.key for r in first.runs_table.rows] == RUN_IDS[:2]
    assert not reader.complete and "3 runs: reading them" in first.summary
    assert {e.name: e.count for e in first.experiments}["fnn1"] == 3
    rest = reader.read([])
    assert rest is not None and rest.runs_table is not None and rest.experiments
    assert reader.complete and [r.key for r in rest.runs_table.rows] == RUN_IDS
    assert {e.name: e.count for e in rest.experiments}["fnn1"] == 3
    assert "3 runs: reading" not in rest.summary
    run = store.read_run("fnn1", "f0000001")
    assert run is not None
    store.handle(run).update(status="queued")
    queued = reader.read([])
    assert queued is not None and [r.id for r in queued.watched] == ["f0000001"] * 2
    assert [r.id for r in reader.active_runs()] == ["f0000001"]
    store.handle(run).update(status="failed", reason="boom")
    ended = reader.read([])
    assert ended is not None and [(r.id, r.status) for r in ended.watched] == [
        ("f0000001", "failed")
    ]
    assert reader.active_runs() == []


def test_a_run_that_ends_between_the_first_read_and_the_full_one_is_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mnist_tui.tui import workers

    monkeypatch.setattr(workers, "FIRST", 2)
    shutil.copytree(RUNS, tmp_path / "runs")
    store = RunStore(tmp_path / "runs")
    run = store.read_run("fnn1", "f0000003")
    assert run is not None
    store.handle(run).update(status="queued")
    reader = workers.StoreReader(EXPERIMENTS, store)
    first = reader.read([])
    assert first is not None and [r.id for r in first.watched] == ["f0000003"]
    store.handle(run).update(status="failed", reason="boom")
    rest = reader.read([])
    assert rest is not None and reader.complete
    assert [(r.id, r.status) for r in rest.watched] == [("f0000003", "failed")]
