"""The console and the CLI as a new user met them: one test per kind of friction found
(state that is invisible, screens that go stale, plots that mislead, hidden marks, cut
text, sorting, missing actions, cancelling a queued run, CLI consistency, glitches,
help and completion). Driven by Textual's pilot on the fixture store, at 80x24 where
the friction showed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Input, Static, TabbedContent

from mnist_tui.runs import scheduler
from mnist_tui.runs.store import RunStore
from mnist_tui.tui.app import MnistTuiApp
from mnist_tui.tui.screens import ExperimentScreen, OverlayScreen

from .test_tui import RUN_IDS, RUNS, loaded, make_app, select_row, wait_for

SMALL = (80, 24)


def screen_text(app: MnistTuiApp) -> str:
    """What the terminal shows now, as plain text (one line per row)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def status_line(app: MnistTuiApp) -> str:
    return str(app.main.query_one("#status-line", Static).render())


def set_status(tmp_path: Path, run_id: str, status: str, **fields: object) -> None:
    path = tmp_path / "runs" / "fnn1" / run_id / "summary.json"
    summary = json.loads(path.read_text())
    summary.update(status=status, **fields)
    path.write_text(json.dumps(summary))


async def queue_one(app: MnistTuiApp, pilot: Pilot[None], name: str = "logreg") -> None:
    await select_row(app, pilot, "experiments", name)
    await pilot.press("a")
    await pilot.pause()
    await pilot.press("enter")
    await wait_for(pilot, lambda: any(r.status == "queued" for r in app.store.runs()), 30)


# 1 -----------------------------------------------------------------------------------


async def test_paused_queue_and_failed_runs_stay_on_screen(tmp_path: Path) -> None:
    """A paused queue is said in the status line and on the queue tab for as long as it
    lasts (not only a toast); failed and killed runs are counted with the others."""
    (tmp_path / "runs").mkdir()
    shutil.copytree(RUNS / "fnn1", tmp_path / "runs" / "fnn1")
    set_status(tmp_path, "f0000001", "failed")
    # killed before its first epoch ended: resumable without a checkpoint
    set_status(tmp_path, "f0000002", "killed", epochs_done=0)
    (tmp_path / "runs" / "fnn1" / "f0000002" / "metrics.jsonl").write_text("")
    async with make_app(tmp_path, concurrency=0).run_test(size=SMALL) as pilot:
        app = await loaded(pilot)
        await wait_for(pilot, lambda: "PAUSED" in status_line(app), 10)
        line = status_line(app)
        assert "1 failed" in line and "1 killed" in line, line
        tab = app.main.query_one("#tabs", TabbedContent).get_tab("queue")
        assert "paused" in str(tab.label)
        await pilot.press("3", "p")  # resumed: the marks go
        await wait_for(pilot, lambda: "PAUSED" not in status_line(app), 10)
        assert "paused" not in str(tab.label)


# 2 -----------------------------------------------------------------------------------


async def test_experiment_screen_follows_the_store(tmp_path: Path) -> None:
    """An experiment's screen opened before its first run shows the run once the store
    has it, without being closed and opened again."""
    (tmp_path / "runs").mkdir()
    async with make_app(tmp_path, with_runs=False).run_test(size=SMALL) as pilot:
        app = await loaded(pilot)
        await select_row(app, pilot, "experiments", "fnn1")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ExperimentScreen))
        screen = app.screen
        from mnist_tui.tui.grid import DataGrid

        runs = screen.query_one("#exp-runs", DataGrid)
        await wait_for(pilot, lambda: runs.table_data is not None, 10)
        assert runs.row_keys() == []
        shutil.copytree(RUNS / "fnn1", tmp_path / "runs" / "fnn1")  # a run completed
        await wait_for(pilot, lambda: runs.row_keys() == RUN_IDS, 20)
        assert "no runs yet" not in screen_text(app)


# 4 -----------------------------------------------------------------------------------


async def test_marks_are_counted_cleared_and_only_visible_ones_act(tmp_path: Path) -> None:
    async with make_app(tmp_path).run_test(size=SMALL) as pilot:
        app = await loaded(pilot)
        await pilot.press("2")
        grid = app.main.grid("runs")
        await pilot.press("home")
        await pilot.pause()
        assert grid.cursor_row == 0
        await pilot.press("end")
        await pilot.pause()
        assert grid.cursor_row == grid.row_count - 1
        await pilot.press("home", "space", "space", "space")  # marks and moves down
        await pilot.pause()
        assert "3 marked" in status_line(app)
        await pilot.press("d")  # three marked: said as such, not "mark two"
        await pilot.pause()
        said = [n.message for n in app._notifications]
        assert any("3 runs marked" in m for m in said), said
        await pilot.press("slash", *"f0000003", "enter")
        await wait_for(pilot, lambda: grid.row_keys() == ["f0000003"], 5)
        assert "2 hidden by the filter" in status_line(app)
        await pilot.press("o")  # the overlay takes the one mark shown, not the three
        await wait_for(pilot, lambda: isinstance(app.screen, OverlayScreen))
        assert app.screen.run_ids == ["f0000003"]
        await pilot.press("escape", "escape")  # back; esc clears the filter
        await pilot.pause()
        assert app.main.filter_text == "" and app.main.marked["runs"]
        await pilot.press("escape")  # then the marks
        await pilot.pause()
        assert not app.main.marked["runs"] and "marked" not in status_line(app)


# 5 -----------------------------------------------------------------------------------


async def test_nothing_is_cut_at_80_columns_and_dropped_columns_are_named(
    tmp_path: Path,
) -> None:
    (tmp_path / "runs").mkdir()
    async with make_app(tmp_path, with_runs=False).run_test(size=SMALL) as pilot:
        app = await loaded(pilot)
        await pilot.press("2")
        await pilot.pause()
        text = " ".join(screen_text(app).split())
        # the empty table's message is wrapped whole, never cut mid-word
        assert "`mnist-tui run EXPERIMENT`" in text, text
    async with make_app(tmp_path / "b").run_test(size=SMALL) as pilot:
        app = await loaded(pilot)
        await pilot.press("2")
        await pilot.pause()
        dropped = app.main.grid("runs").dropped
        assert dropped and f"not shown (narrow): {', '.join(dropped)}" in status_line(app)


def test_fitting_a_table_never_cuts_a_number() -> None:
    from mnist_tui.views.tables import Cell, Column, Row, TableData, fit, widths

    data = TableData(
        "t",
        [Column("key", keep=True), Column("value"), Column("Δ", "right")],
        [Row("a", (Cell("optim.lr"), Cell("x" * 60), Cell("+0.31 pp")))],
    )
    shown = fit(data, 50)
    assert shown.rows[0].cells[2].text == "+0.31 pp"  # the number whole
    assert shown.rows[0].cells[1].text.endswith("…")  # the long text shortened instead
    assert sum(w + 2 for w in widths(shown)) <= 50


async def test_stop_dialog_shows_the_whole_resume_command_at_80_columns(
    tmp_path: Path,
) -> None:
    from mnist_tui.tui.screens import ConfirmStop

    app = make_app(tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        await loaded(pilot)
        run = app.store.resolve("f0000003")
        summary = dict(run.summary, status="running", epochs_done=0)
        from mnist_tui.runs.record import RunInfo

        app.push_screen(ConfirmStop(RunInfo(run.id, run.experiment, run.path, summary)))
        await pilot.pause()
        text = " ".join(screen_text(app).split())
        assert "`mnist-tui resume f0000003`" in text, text
        # 8: no epoch ended, so there is no checkpoint to keep
        assert "keeps its" not in text and "nothing is saved yet" in text


# 6 -----------------------------------------------------------------------------------


async def test_sort_by_shown_columns_with_direction_and_reverse(tmp_path: Path) -> None:
    async with make_app(tmp_path).run_test(size=SMALL) as pilot:
        app = await loaded(pilot)
        await pilot.press("2")
        await pilot.pause()
        grid = app.main.grid("runs")
        shown = [h for h in grid.shown_headers if h.strip() and h != "#"]
        for _ in range(2 * len(shown)):
            await pilot.press("s")
            await pilot.pause()
            sort = app.main.sort["runs"]
            assert sort is not None and sort[0] in shown  # never a column not shown
            assert any(h.endswith("▲" if sort[1] else "▼") for h in grid.shown_headers)
        # a second press reverses the same column
        app.main.sort["runs"] = None
        await pilot.press("s")
        first = grid.row_keys()
        await pilot.press("s")
        await pilot.pause()
        assert app.main.sort["runs"] == (shown[0], True)
        assert grid.row_keys() == list(reversed(first))
        # one notice per subject: presses replace it instead of stacking
        await pilot.pause()
        sorts = [n for n in app._notifications if n.message.startswith(("sorted", "in the"))]
        assert len(sorts) == 1, [n.message for n in app._notifications]


# 8 -----------------------------------------------------------------------------------


async def test_cancelling_a_queued_run_removes_it(tmp_path: Path) -> None:
    async with make_app(tmp_path, concurrency=0).run_test(size=SMALL) as pilot:
        app = await loaded(pilot)
        await queue_one(app, pilot)
        queued = next(r for r in app.store.runs() if r.status == "queued")
        await pilot.press("3")
        await wait_for(pilot, lambda: app.main.grid("queue").row_keys() == [queued.id], 10)
        await pilot.press("x")
        await wait_for(pilot, lambda: not app.main.grid("queue").row_keys(), 10)
        await pilot.pause(0.5)
        store = RunStore(tmp_path / "runs")
        assert [r.id for r in store.runs()] == RUN_IDS  # no never-run "killed" run stays
        said = " ".join(n.message for n in app._notifications)
        assert "killed" not in said and "removed from the queue" in said


def test_cancel_of_a_queued_run_in_the_core_leaves_no_run(tmp_path: Path) -> None:
    from mnist_tui.config.loading import load_experiment

    from .test_tui import EXPERIMENTS

    store = RunStore(tmp_path)
    spec = load_experiment("logreg", EXPERIMENTS)
    info = scheduler.enqueue(store, spec, scheduler.QueueRequest())
    said = scheduler.cancel(store, info)
    assert "removed" in said
    assert store.runs() == [] and not info.path.exists()


# 10 ----------------------------------------------------------------------------------


async def test_ctrl_a_in_the_overrides_box_goes_to_the_start(tmp_path: Path) -> None:
    async with make_app(tmp_path).run_test(size=SMALL) as pilot:
        app = await loaded(pilot)
        await select_row(app, pilot, "experiments", "logreg")
        await pilot.press("a")
        await pilot.pause()
        box = app.screen.query_one("#overrides", Input)
        await pilot.press(*"train.epochs=2", "ctrl+a", *"x ")
        await pilot.pause()
        assert box.value == "x train.epochs=2"


# 3 -----------------------------------------------------------------------------------


def test_the_legend_sits_above_the_plot_and_hides_no_point() -> None:
    from plotext import uncolorize

    from mnist_tui.views import curves, pictures

    rows = [
        {"epoch": 1, "train_acc": 0.5, "val_acc": 0.55, "test_acc": 0.6},
        {"epoch": 2, "train_acc": 0.7, "val_acc": 0.72, "test_acc": 0.74},
    ]
    _, acc = curves.run_curves(rows, "run")
    text = uncolorize(pictures.plot(acc, width=38, height=14))
    legend = [line for line in text.splitlines() if "x test" in line]
    assert legend, text
    for line in legend:  # outside the frame, on a line of its own
        assert not set(line) & set("│┤┼├"), text
    body = "\n".join(line for line in text.splitlines() if line not in legend)
    for marker in "•+x":  # every point of every series is drawn
        assert body.count(marker) >= 2, (marker, text)


def test_search_history_plots_best_so_far_and_pruned_trials_apart() -> None:
    from mnist_tui.views import curves

    trials = [
        {"number": 0, "state": "complete", "value": 0.90},
        {"number": 1, "state": "complete", "value": 0.50},
        {"number": 2, "state": "pruned", "value": 0.30},
        {"number": 3, "state": "complete", "value": 0.95},
    ]
    curve = curves.history_curve(trials, "val_acc")
    best = curve.series[0]
    assert best.label.startswith("best so far")
    assert best.ys == (90.0, 90.0, 95.0)  # never falls
    assert list(best.ys) == sorted(best.ys)
    pruned = [s for s in curve.series if s.label == "pruned"]
    assert pruned and pruned[0].xs == (2.0,) and 2.0 not in best.xs
    assert "1 pruned" in curve.title
    loss = curves.history_curve(
        [{"number": i, "state": "complete", "value": v} for i, v in enumerate([0.5, 0.7, 0.4])],
        "val_loss",
    )
    assert loss.series[0].ys == (0.5, 0.5, 0.4)  # lowest wins for a loss


async def test_overlay_says_when_runs_have_no_validation_split(tmp_path: Path) -> None:
    async with make_app(tmp_path).run_test(size=SMALL) as pilot:
        app = await loaded(pilot)
        await pilot.press("2")
        await select_row(app, pilot, "runs", "f0000001")
        await pilot.press("o")
        await wait_for(pilot, lambda: isinstance(app.screen, OverlayScreen) and app.screen.runs)
        await pilot.press("m", "m")  # test acc, test loss, val acc
        await pilot.pause()
        plot = str(app.screen.query_one("#overlay-plot", Static).render())
        assert "val acc" in plot and "no validation split" in plot, plot


# 7 -----------------------------------------------------------------------------------


async def test_run_page_resumes_tags_notes_archives_deletes_and_queues_again(
    tmp_path: Path, monkeypatch: object
) -> None:
    import subprocess

    import pytest

    from mnist_tui.tui.screens import QueueDialog, RunScreen

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    started: list[list[str]] = []
    monkeypatch.setattr(subprocess, "Popen", lambda cmd, **_: started.append(cmd))
    app = make_app(tmp_path)
    # killed before its first epoch ended: resumable without a checkpoint
    set_status(tmp_path, "f0000002", "killed", epochs_done=0)
    (tmp_path / "runs" / "fnn1" / "f0000002" / "metrics.jsonl").write_text("")
    async with app.run_test(size=SMALL) as pilot:
        await loaded(pilot)
        await pilot.press("2")
        await select_row(app, pilot, "runs", "f0000002")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.run)
        run_screen = app.screen
        await pilot.press("t")
        await pilot.pause()
        await pilot.press(*"best keep", "enter")
        await wait_for(pilot, lambda: app.store.resolve("f0000002").tags == ["best", "keep"], 10)
        await pilot.press("n")
        await pilot.pause()
        await pilot.press(*"lr too high", "enter")
        await wait_for(pilot, lambda: app.store.resolve("f0000002").note == "lr too high", 10)
        header = run_screen.query_one("#run-header", Static)
        await wait_for(pilot, lambda: "note: lr too high" in str(header.render()), 10)
        assert "note: lr too high" in str(header.render())
        assert "#best" in str(header.render())
        await pilot.press("r")  # killed: resumable, in a detached child process
        await pilot.pause(1)
        assert started, [n.message for n in app._notifications]
        assert started[0][3:5] == ["resume", "f0000002"]
        await pilot.press("a")  # again, the dialog pre-filled with the run's overrides
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, QueueDialog)
        overrides = app.store.resolve("f0000002").summary.get("overrides") or []
        assert dialog.query_one("#overrides", Input).value == " ".join(overrides)
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("A")
        await wait_for(pilot, lambda: RunStore(tmp_path / "runs").runs() != [], 5)
        runs = RunStore(tmp_path / "runs")
        await wait_for(pilot, lambda: "f0000002" not in [r.id for r in runs.runs()], 10)
        await pilot.press("A")  # and back
        await wait_for(pilot, lambda: "f0000002" in [r.id for r in runs.runs()], 10)
        await pilot.press("D")
        await pilot.pause()
        await pilot.press("y")
        await wait_for(pilot, lambda: not (tmp_path / "runs" / "fnn1" / "f0000002").exists(), 10)
        assert (tmp_path / "runs" / ".trash" / "fnn1" / "f0000002").is_dir()


# 9 -----------------------------------------------------------------------------------

# what "run options" means: the same on every command that trains
RUN_OPTIONS = {
    "--set",
    "--epochs",
    "--seed",
    "--device",
    "--threads",
    "--data-dir",
    "--runs-dir",
    "--experiments-dir",
    "--json",
}


def test_every_training_command_takes_the_same_run_options() -> None:
    import typer.main

    from mnist_tui.cli import app

    root = typer.main.get_command(app)
    for path in (["run"], ["cv"], ["tune"], ["queue", "add"]):
        command = root
        for name in path:
            command = command.commands[name]  # type: ignore[attr-defined]
        options = {o for p in command.params for o in p.opts}
        assert options >= RUN_OPTIONS, (path, sorted(RUN_OPTIONS - options))


def test_tune_epochs_is_an_override(tmp_path: Path) -> None:
    """`tune --epochs 1` is parsed (not "No such option") and reaches the definition:
    an unknown experiment is the error, not the option."""
    import os
    import subprocess
    import sys

    from .conftest import REPO

    out = subprocess.run(
        [sys.executable, "-m", "mnist_tui", "tune", "no_such_experiment", "--epochs", "1",
         "--seed", "3", "--threads", "1", "--runs-dir", str(tmp_path)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert out.returncode == 2
    assert "No such option" not in out.stderr and "no_such_experiment" in out.stderr


def test_a_run_at_chance_level_says_why_when_the_cause_is_known() -> None:
    from mnist_tui.config.loading import load_experiment
    from mnist_tui.runs.record import RunInfo
    from mnist_tui.studies.diagnose import chance_note

    from .conftest import EXPERIMENTS

    spec = load_experiment("task2", EXPERIMENTS, ["train.epochs=2", "data.subset=5000"])
    summary = {
        "status": "completed",
        "final": {"test_acc": 0.1114},
        "epochs_done": 2,
        "steps": 40,
        "classes": [str(i) for i in range(10)],
    }
    run = RunInfo("abc", "task2", Path("."), summary)
    note = chance_note(spec, run)
    assert "chance level" in note and "batch-norm momentum" in note and "80 steps" in note
    assert "model.defaults=pytorch" in note
    fine = RunInfo("abd", "task2", Path("."), dict(summary, final={"test_acc": 0.88}))
    assert chance_note(spec, fine) == ""
    plain = load_experiment("logreg", EXPERIMENTS)
    assert "no known cause" in chance_note(plain, run)


async def test_run_page_says_why_a_run_is_at_chance_level(tmp_path: Path) -> None:
    from mnist_tui.tui.screens import RunScreen

    app = make_app(tmp_path)
    run_dir = tmp_path / "runs" / "fnn1" / "f0000001"
    spec = (run_dir / "spec.toml").read_text()
    spec = spec.replace("batch_norm = false", "batch_norm = true")
    spec = spec.replace('defaults = "pytorch"', 'defaults = "keras"')
    (run_dir / "spec.toml").write_text(spec)
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["final"]["test_acc"] = 0.1114
    (run_dir / "summary.json").write_text(json.dumps(summary))
    async with app.run_test(size=SMALL) as pilot:
        await loaded(pilot)
        await pilot.press("2")
        await select_row(app, pilot, "runs", "f0000001")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.run)
        await pilot.pause()
        header = str(app.screen.query_one("#run-header", Static).render())
        assert "chance level" in header and "batch-norm momentum" in header, header


# 10 ----------------------------------------------------------------------------------


def test_png_without_matplotlib_names_the_exact_command(
    tmp_path: Path, monkeypatch: object
) -> None:
    import sys

    import pytest

    from mnist_tui.errors import MnistTuiError
    from mnist_tui.views import png

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    with pytest.raises(MnistTuiError) as exc:
        png.save_run_png(tmp_path / "x.png", "t", [], {})
    assert f"{sys.executable} -m pip install" in str(exc.value)
    assert "mnist-tui[png]" not in str(exc.value)  # no extra the set-up may lack


# 11 ----------------------------------------------------------------------------------


def test_help_groups_commands_by_task_most_used_first(capsys: object, monkeypatch: object) -> None:
    import pytest

    from mnist_tui.cli import main

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    assert isinstance(capsys, pytest.CaptureFixture)
    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    panels = [text.index(f"─ {p} ") for p in ("Train", "Look", "Queue", "Manage")]
    assert panels == sorted(panels), text
    assert text.index(" run ") < text.index(" list ") < text.index(" delete ")
    assert "--install-completion" in text


def test_shell_completion_of_experiments_run_ids_and_keys(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from .conftest import REPO

    def complete(*words: str) -> list[str]:
        env = {
            **os.environ,
            "_MNIST_TUI_COMPLETE": "complete_bash",
            "COMP_WORDS": " ".join(["mnist-tui", *words]),
            "COMP_CWORD": str(len(words)),
            "MNIST_TUI_RUNS": str(RUNS),
            "PYTHONPATH": str(REPO),
        }
        out = subprocess.run(
            [sys.executable, "-m", "mnist_tui"], env=env, capture_output=True, text=True
        )
        return out.stdout.split()

    assert "fnn1" in complete("run", "fn")
    assert complete("show", "f00000") == ["f0000003", "f0000002", "f0000001"]
    assert "optim.lr=" in complete("run", "fnn1", "-S", "optim.l")
    assert "model.hidden=" in complete("queue", "add", "fnn1", "-S", "model.hi")


def test_search_parameters_are_columns_whose_values_are_never_cut() -> None:
    from mnist_tui.views.search_tables import trials_table
    from mnist_tui.views.tables import fit

    trials = [
        {
            "number": 0,
            "state": "complete",
            "value": 0.97,
            "run": "abcd1234",
            "params": {"model.hidden": [128, 64, 32], "optim.lr": 0.000443038},
        }
    ]
    table = trials_table(trials, metric="val_acc")
    headers = [c.header for c in table.columns]
    assert "model.hidden" in headers and "optim.lr" in headers
    cells = {
        c.header: cell.text for c, cell in zip(table.columns, table.rows[0].cells, strict=True)
    }
    assert cells["model.hidden"] == "[128, 64, 32]"
    narrow = fit(table, 60)
    for col, cell in zip(narrow.columns, narrow.rows[0].cells, strict=True):
        assert cell.text == cells[col.header]  # whole, or the column is left out


async def test_no_table_scrolls_sideways_at_80x24(tmp_path: Path) -> None:
    """A table fitted to the width never shows a horizontal scrollbar (its thumb was
    the stray block glyphs above the footer)."""
    from mnist_tui.tui.grid import DataGrid
    from mnist_tui.tui.screens import RunScreen

    async with make_app(tmp_path).run_test(size=SMALL) as pilot:
        app = await loaded(pilot)
        for tab in "1234":
            await pilot.press(tab)
            await pilot.pause(0.5)
            for grid in app.screen.query(DataGrid):
                if grid.display and grid.size.width:
                    assert not grid.scrollbars_enabled[1], (tab, grid.id)
        await pilot.press("2", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.run)
        await pilot.press("2")
        await pilot.pause(0.5)
        for grid in app.screen.query(DataGrid):
            assert not grid.scrollbars_enabled[1], grid.id


def test_cli_list_names_the_columns_it_leaves_out_at_80(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from .conftest import REPO

    env = {**os.environ, "COLUMNS": "80", "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-m", "mnist_tui", "list", "--runs-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert "not shown at 80 columns: params, epochs" in out.stdout, out.stdout


def test_cli_says_when_the_queue_is_paused_and_a_run_waits(tmp_path: Path) -> None:
    """`queue add` into a paused queue says nothing starts (no "started a worker"), and
    `logs -f` on a queued run says it waits, and why, instead of waiting silently."""
    import os
    import subprocess
    import sys

    from .conftest import REPO
    from .test_tui import EXPERIMENTS

    store = RunStore(tmp_path / "runs")
    scheduler.pause(store)
    env = {**os.environ, "PYTHONPATH": str(REPO), "MNIST_TUI_EXPERIMENTS": str(EXPERIMENTS)}
    base = [sys.executable, "-m", "mnist_tui"]
    out = subprocess.run(
        [*base, "queue", "add", "logreg", "--runs-dir", str(store.root)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert "paused" in out.stdout and "started a worker" not in out.stdout, out.stdout
    queued = scheduler.queue_order(store)[0]
    follow = subprocess.Popen(
        [*base, "logs", "-f", queued.id, "--runs-dir", str(store.root)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert follow.stderr is not None
        line = follow.stderr.readline()
    finally:
        follow.kill()
        follow.wait()
    assert f"run {queued.id} is queued (position 1 of 1)" in line and "paused" in line, line
