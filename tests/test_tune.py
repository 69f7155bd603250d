"""A two-trial search on a tiny problem: trials stored, best trial written and diffable."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mnist_tui.config.loading import load_experiment
from mnist_tui.errors import MnistTuiError
from mnist_tui.runs.store import RunStore
from mnist_tui.studies.diff import diff_definitions

from .conftest import EXPERIMENTS

pytest.importorskip("optuna")


def test_two_trial_search(fake_data: Path, tmp_path: Path) -> None:
    from mnist_tui.studies.tune import tune

    exps = tmp_path / "experiments"
    shutil.copytree(EXPERIMENTS, exps)
    (exps / "small.toml").write_text(
        'extends = "fnn1"\n[data]\ndataset = "mnist"\n[train]\nepochs = 2\n'
        "[search]\ntrials = 2\n[search.params]\n"
        '"optim.lr" = { low = 0.01, high = 0.3, log = true }\n'
        '"model.hidden" = { choices = [[16, 32], [32, 32]] }\n'
    )
    spec = load_experiment("small", exps)
    store = RunStore(tmp_path / "runs")
    seen: list[dict[str, object]] = []
    result = tune(
        spec,
        store,
        device="cpu",
        data_dir=fake_data,
        download=False,
        experiments_dir=exps,
        on_trial=seen.append,
    )
    assert len(result.trials) == 2 and len(seen) == 2
    runs = store.runs("small")
    assert len(runs) == 2 and {r.summary["trial"] for r in runs} == {0, 1}
    assert all(r.group == "small-tune" for r in runs)
    assert (tmp_path / "runs" / "tune.journal").is_file()  # Optuna journal, not SQLite
    assert result.written == exps / "small-tune.toml"
    tuned = load_experiment("small-tune", exps)
    assert tuned.extends == "small"
    keys = {c.key for c in diff_definitions(spec.definition(), tuned.definition())}
    # the validation split only judged the trials: the tuned experiment trains like small
    assert keys <= {"optim.lr", "model.hidden"} and tuned.data.val_split == 0
    assert "data.val_split=0.1" in result.written.read_text().split("[", 1)[0]  # said why
    assert tuned.optim.lr == pytest.approx(result.best_params["optim.lr"])
    assert result.metric == "val_acc" and result.completed == 2
    # the same study name resumes the search
    again = tune(
        spec,
        store,
        trials=1,
        device="cpu",
        data_dir=fake_data,
        download=False,
        experiments_dir=exps,
    )
    assert len(again.trials) == 3


def test_tune_without_search_is_a_clear_error(tmp_path: Path) -> None:
    from mnist_tui.studies.tune import tune

    with pytest.raises(MnistTuiError, match=r"no \[search.params\]"):
        tune(load_experiment("fnn1", EXPERIMENTS), RunStore(tmp_path))


def test_bad_search_definitions_are_spec_errors(tmp_path: Path) -> None:
    from mnist_tui.errors import SpecError

    cases = {
        '"optim.lrr" = { low = 0.1, high = 1.0 }': "Did you mean 'optim.lr'?",
        '"optim.lr" = { low = 1.0, high = 0.1 }': "expected numbers low < high",
        '"optim.lr" = { low = 0.0, high = 0.1, log = true }': "log = true needs low > 0",
        '"model.dropot" = { low = 0.0, high = 0.5 }': "Did you mean 'dropout'?",
        '"optim.lr" = { low = 0.1, hihg = 1.0 }': "Did you mean 'high'?",
    }
    for line, words in cases.items():
        p = tmp_path / "s.toml"
        p.write_text(f'extends = "lenet5"\n[search.params]\n{line}\n')
        with pytest.raises(SpecError) as exc:
            load_experiment(str(p), EXPERIMENTS)
        assert words in str(exc.value), (line, str(exc.value))


async def test_console_shows_searches(fake_data: Path, tmp_path: Path) -> None:
    from textual.widgets import Static

    from mnist_tui.studies.tune import read_studies, tune
    from mnist_tui.tui.app import MnistTuiApp
    from mnist_tui.tui.screens import SearchScreen

    p = tmp_path / "s.toml"
    p.write_text(
        'extends = "fnn1"\n[data]\ndataset = "mnist"\n[train]\nepochs = 1\n'
        '[search.params]\n"optim.lr" = { low = 0.01, high = 0.3, log = true }\n'
        '"train.batch_size" = { choices = [16, 32] }\n'
    )
    store = RunStore(tmp_path / "runs")
    tune(
        load_experiment(str(p), EXPERIMENTS),
        store,
        trials=3,
        device="cpu",
        data_dir=fake_data,
        download=False,
        write_to=tmp_path / "best.toml",
    )
    (study,) = read_studies(store)
    assert len(study.trials) == 3 and study.best_value is not None
    app = MnistTuiApp(runs_dir=tmp_path / "runs", experiments_dir=EXPERIMENTS, concurrency=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("S")
        await pilot.pause(0.5)
        assert isinstance(app.screen, SearchScreen)
        status = app.screen.query_one("#search-status", Static)
        for _ in range(100):  # the studies are read in a worker thread
            if "1 search" in str(status.render()):
                break
            await pilot.pause(0.1)
        assert "1 search" in str(status.render())
        from mnist_tui.tui.grid import DataGrid

        (trials, *_) = app.screen.query(DataGrid)
        assert trials.row_count == 3


def test_trial_figures_in_percent_and_importances_carry_a_caveat() -> None:
    from mnist_tui.views import curves, search_tables

    trials = [
        {"number": 0, "state": "complete", "value": 0.9731, "params": {"optim.lr": 0.1}},
        {"number": 1, "state": "complete", "value": 0.9512, "params": {"optim.lr": 0.01}},
    ]
    table = search_tables.trials_table(trials, metric="val_acc")
    assert table.columns[2].header == "best val acc"  # says what it is best by
    assert [r.cells[2].text for r in table.rows] == ["97.31%", "95.12%"]
    assert "at the epoch its run judged best" in table.notes[0]
    curve = curves.history_curve(trials, "val_acc")
    assert curve.series[0].xs == (0.0, 1.0) and curve.series[0].ys[0] == pytest.approx(97.31)
    few = search_tables.importances_table({"optim.lr": 0.7, "model.hidden": 0.3}, completed=4)
    assert "from 4 completed trials only" in few.notes[0]
    assert not search_tables.importances_table({"optim.lr": 1.0}, completed=12).notes
    assert search_tables.trial_line(trials[0], "val_loss").split()[4] == "0.9731"
