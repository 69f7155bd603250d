"""The command line as a user meets it: output, exit codes, clean errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mnist_tui.cli import main

from .conftest import EXPERIMENTS, FIXTURES


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_list_shows_every_experiment(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "list", "--json")
    assert code == 0
    rows = json.loads(out)
    by_name = {r["name"]: r for r in rows}
    assert by_name["lenet5"]["parameters"] == 61_706
    assert by_name["task2"]["model"] == "minivgg"
    assert by_name["task3"]["reported_test_acc"] == pytest.approx(0.9064)


def test_diff_task4_task6(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "diff", "task4", "task6", "--json")
    assert code == 0
    d = json.loads(out)
    assert [c["key"] for c in d["definition"]] == ["model.kernel"]
    code, text, _ = cli(capsys, "diff", "task4", "task6")
    # task6 traced to the authors' code: both kernels 5x5 (task4: 3x3)
    assert "model.kernel" in text and "[5, 5]" in text and "model.filters" not in text
    code, text, _ = cli(capsys, "diff", "task4", "task6", "--all")
    assert "model.filters" in text
    # piped, colour is gone: changed and unchanged keys are told apart by a mark
    lines = text.splitlines()
    assert any("≠" in line and "model.kernel" in line for line in lines)
    assert any("=" in line and "model.filters" in line and "≠" not in line for line in lines)
    assert "Reported results" in text and "task4 reported" in text
    code, md, _ = cli(capsys, "diff", "task4", "task6", "--all", "--md")
    assert "| ≠ | `model.kernel` |" in md and "| = | `model.filters` |" in md


def test_show_experiment_marks_inherited(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = cli(capsys, "show", "task6", "--json")
    d = json.loads(out)
    assert d["kind"] == "experiment" and "data.dataset" in d["inherited"]
    assert "model.kernel" not in d["inherited"]
    _code, text, _ = cli(capsys, "show", "task6")
    assert "inherited" in text and "task4" in text
    # keys no file sets are the schema's defaults, not "set here"
    fold = next(line for line in text.splitlines() if "data.fold " in line)
    assert "default" in fold and "set here" not in fold


def test_run_then_runs_show_diff(
    fake_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = str(tmp_path / "runs")
    base = ["--data-dir", str(fake_data), "--runs-dir", runs, "--no-download", "--device", "cpu"]
    code, out, err = cli(capsys, "run", "fnn1", "-S", "data.dataset=mnist", "--epochs", "2", *base)
    assert code == 0, err
    assert "epoch   2/2" in out and "Reported vs reproduced" in out
    code, out, _ = cli(
        capsys,
        "run",
        "fnn1",
        "-S",
        "data.dataset=mnist",
        "--epochs",
        "2",
        "--seed",
        "1",
        "-q",
        *base,
    )
    assert code == 0
    code, out, _ = cli(capsys, "runs", "--runs-dir", runs, "--json")
    listed = json.loads(out)
    assert len(listed) == 2 and all(r["status"] == "completed" for r in listed)
    newest = listed[0]["id"]
    code, out, _ = cli(capsys, "show", newest[:5], "--runs-dir", runs)
    assert code == 0 and "Per epoch" in out and "Confusion matrix" in out
    code, out, _ = cli(capsys, "diff", "1", "2", "--runs-dir", runs, "--json")
    d = json.loads(out)
    assert [c["key"] for c in d["definition"]] == ["train.seed"]
    assert any(r["figure"] == "final test acc" for r in d["results"])
    # a run against its experiment: which figures were reported and which reproduced
    code, out, _ = cli(capsys, "diff", "fnn1", "1", "--runs-dir", runs, "--md")
    assert code == 0
    assert "fnn1 reported" in out and f"fnn1/{newest} reproduced" in out
    assert "`data.dataset`" in out  # the override shows as a changed key


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["run", "lenet"], ["no experiment named 'lenet'", "Did you mean 'lenet5'?"]),
        (["run", "lenet5", "-S", "optim.lrr=1"], ["optim.lrr", "Did you mean 'lr'?"]),
        (["run", str(FIXTURES / "broken" / "typo_in_section.toml")], ["model.kernal"]),
        (["show", "zzzz"], ["neither an experiment"]),
        (["diff", "task4", "taks6"], ["Did you mean 'task6'?"]),
        (["show", "fnn"], ["Did you mean 'fnn1', 'fnn2' or 'fnn3'?"]),
        (["runs", "fnn"], ["Did you mean: fnn1, fnn2, fnn3?"]),
    ],
)
def test_user_errors_exit_2_without_traceback(
    capsys: pytest.CaptureFixture[str], args: list[str], words: list[str]
) -> None:
    code, out, err = cli(capsys, *args)
    assert code == 2
    flat = " ".join(err.split())  # the console wraps long errors at its width
    for w in words:
        assert w in flat, (w, err)
    assert "Traceback" not in err + out


def test_missing_data_is_explained_in_a_real_process(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "MNIST_TUI_RUNS": str(tmp_path / "runs"),
        "MNIST_TUI_EXPERIMENTS": str(EXPERIMENTS),
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mnist_tui",
            "run",
            "lenet5",
            "--epochs",
            "1",
            "--data-dir",
            str(tmp_path / "empty"),
            "--no-download",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "MNIST/raw" in proc.stderr and "train-images-idx3-ubyte.gz" in proc.stderr


@pytest.mark.parametrize(
    ("command", "section"),
    [("tune", "[search]"), ("run", "[train] repeats"), ("cv", "[cv] folds")],
)
def test_help_keeps_bracketed_section_names(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: str,
    section: str,
) -> None:
    # Rich markup would swallow an unescaped "[search]" and leave a gap in the help.
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = cli(capsys, command, "--help")
    assert code == 0
    assert section in out


def test_epoch_lines_are_never_cut_in_a_log_file() -> None:
    """Piped into a file (no terminal, 80 columns or fewer), an epoch stays one line."""
    import io

    from rich.console import Console

    from mnist_tui.train.events import EpochEnded, EpochMetrics
    from mnist_tui.views.render import RunProgress

    buf = io.StringIO()
    progress = RunProgress(Console(file=buf, width=40), enabled=False)
    progress.epochs = 15
    m = EpochMetrics(12, 0.2419, 0.9114, 0.3583, 0.8729, 0.01, 11.3, 10.6, 5670.0)
    progress.on_event(EpochEnded(m, best_epoch=12, improved=True))
    (line,) = buf.getvalue().splitlines()
    assert line.startswith("epoch  12/15") and line.endswith("5,670 img/s *")


def test_list_tells_the_users_experiments_and_shadowed_names_apart(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from mnist_tui.config import loading

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "wide.toml").write_text('extends = "fnn1"\n[train]\nepochs = 3\n')
    (mine / "logreg.toml").write_text((EXPERIMENTS / "logreg.toml").read_text())
    monkeypatch.setattr(loading, "shipped_experiments_dir", lambda: EXPERIMENTS)
    monkeypatch.setenv("MNIST_TUI_EXPERIMENTS", str(mine))
    code, out, _ = cli(capsys, "list", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert (rows["wide"]["origin"], rows["wide"]["shadows"]) == ("user", False)
    assert (rows["logreg"]["origin"], rows["logreg"]["shadows"]) == ("user", True)
    assert (rows["fnn1"]["origin"], rows["fnn1"]["shadows"]) == ("shipped", False)
    code, text, _ = cli(capsys, "list")
    assert "2 yours" in text and "1 shadowing a shipped one" in text
