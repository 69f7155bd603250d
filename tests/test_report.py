"""Grouping and statistics of stored runs (no training needed)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from mnist_tui.cli import main
from mnist_tui.config.loading import load_experiment
from mnist_tui.runs.store import RunStore
from mnist_tui.studies.report import Stat, build_report
from mnist_tui.views.report_tables import markdown, stat_text

from .conftest import EXPERIMENTS


def run_cli(*args: str) -> None:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    assert exc.value.code in (0, None)


def fake_run(
    store: RunStore,
    name: str,
    seed: int,
    final_acc: float,
    best_acc: float,
    overrides: tuple[str, ...] = (),
    status: str = "completed",
    hardest: str = "Shirt",
) -> None:
    spec = load_experiment(name, EXPERIMENTS, [f"train.seed={seed}", *overrides])
    h = store.create(name, spec.to_toml(), seed=seed, group=f"{name}-g")
    h.update(
        status=status,
        final={"test_acc": final_acc, "test_loss": 0.3},
        best={"test_acc": best_acc, "test_loss": 0.25},
        best_epoch=3,
        train_seconds=10.0 + seed,
        hardest_class=hardest,
        epochs_done=10,
    )


def test_stat_mean_std_and_spread() -> None:
    s = Stat.of([0.90, 0.92, 0.94])
    assert s is not None
    assert s.mean == pytest.approx(0.92) and s.std == pytest.approx(0.02)
    assert s.contains(0.955) and not s.contains(0.97)
    assert Stat.of([]) is None
    assert Stat.of([0.5]).std == 0.0  # type: ignore[union-attr]


def test_report_groups_seeds_and_ignores_other_definitions(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    for seed, acc in enumerate([0.83, 0.84, 0.85]):
        fake_run(store, "fnn1", seed, acc, acc + 0.005)
    fake_run(store, "fnn1", 9, 0.10, 0.10, overrides=("train.epochs=1",))  # another definition
    fake_run(store, "fnn1", 7, 0.99, 0.99, status="failed")  # not completed
    (row,) = build_report(EXPERIMENTS, store, ["fnn1"])
    assert row.runs == 3 and row.seeds == [0, 1, 2]
    assert row.other_definition_runs == 1  # the failed run counts nowhere
    md = markdown([row])
    assert "| 3 (+1 variant) |" in md and "not counted" in md
    assert row.final_acc is not None
    assert row.final_acc.mean == pytest.approx(0.84)
    assert row.final_acc.std == pytest.approx(statistics.stdev([0.83, 0.84, 0.85]))
    assert row.delta_pp == pytest.approx(100 * (0.84 - 0.838))
    assert row.inside is True
    assert row.hardest == "Shirt" and row.reported_hardest == "Shirt"


@pytest.mark.parametrize("accs", [[0.91126, 0.91126], [0.838049, 0.838051], [0.99, 0.99149]])
def test_delta_agrees_with_the_rounded_figures_shown(tmp_path: Path, accs: list[float]) -> None:
    """A reader who subtracts the two figures in the table gets the printed Δ."""
    store = RunStore(tmp_path)
    for seed, acc in enumerate(accs):
        fake_run(store, "fnn1", seed, acc, acc)
    (row,) = build_report(EXPERIMENTS, store, ["fnn1"])
    assert row.final_acc is not None and row.reported_acc is not None
    shown = float(stat_text(row.final_acc).split()[0].rstrip("%"))
    reported = float(f"{100 * row.reported_acc:.2f}")
    assert f"{row.delta_pp:+.2f}" == f"{shown - reported:+.2f}"


def test_best_epoch_studies_compare_best(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    for seed in range(3):
        fake_run(store, "lenet5", seed, 0.985, 0.990 + seed * 0.0005)
    (row,) = build_report(EXPERIMENTS, store, ["lenet5"])
    assert row.reported_at == "best"
    assert row.delta_pp == pytest.approx(100 * (0.9905 - 0.9918))
    assert row.inside is False  # 99.18 lies outside 99.05 ± t(0.975, 2) 0.05 / √3


def test_report_cli_markdown_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = RunStore(tmp_path / "runs")
    fake_run(store, "logreg", 0, 0.70, 0.71)
    run_cli("report", "--runs-dir", str(tmp_path / "runs"), "--md")
    md = capsys.readouterr().out
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert len(table) == 2 + 27  # header, rule, one line per experiment
    # every marker and column that needs one is explained under the table
    assert "ᵇ reported at the study's best epoch" in md and "Δ pp:" in md and "inside:" in md
    assert "| logreg | fashion_mnist | 7,850 | 10 | 71.50% | 70.00% |" in md
    run_cli("report", "logreg", "--runs-dir", str(tmp_path / "runs"), "--json")
    (row,) = json.loads(capsys.readouterr().out)
    assert row["runs"] == 1 and row["delta_pp"] == pytest.approx(-1.5)
    # the header and its rule, no rows
    assert sum(line.startswith("|") for line in markdown([]).splitlines()) == 2


def test_report_unknown_experiment_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["report", "fnn9"])
    assert exc.value.code == 2
    assert "no experiment named 'fnn9'" in capsys.readouterr().err


def test_run_repeats_makes_a_group(
    fake_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = str(tmp_path / "runs")
    run_cli(
        "run",
        "fnn1",
        "-S",
        "data.dataset=mnist",
        "--epochs",
        "1",
        "--seeds",
        "3,5",
        "-q",
        "--data-dir",
        str(fake_data),
        "--runs-dir",
        runs,
        "--no-download",
        "--device",
        "cpu",
    )
    capsys.readouterr()
    infos = RunStore(Path(runs)).runs()
    assert sorted(r.seed for r in infos) == [3, 5]  # type: ignore[type-var]
    assert len({r.group for r in infos}) == 1 and infos[0].group
