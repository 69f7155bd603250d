"""Conflicting options are errors: an invalid -S is reported whatever follows it, and a
shortcut (--epochs, --seed) and a -S of the same key that disagree are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from mnist_tui.cli import main
from mnist_tui.config.loading import load_experiment
from mnist_tui.errors import SpecError

from .conftest import EXPERIMENTS


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.parametrize(
    "args",
    [
        ["-S", "train.epochs.x=3", "--epochs", "1"],
        ["--epochs", "1", "-S", "train.epochs.x=3"],
        ["-S", "train.epochs=3", "--epochs", "1"],
        ["-S", "train={epochs=5}", "--epochs", "2"],
        ["-S", "train.epochs=abc", "--epochs", "2"],
        ["-S", "train.seed=4", "--seed", "3"],
        ["--seed", "3", "-S", "train.seed.deep=1"],
    ],
)
@pytest.mark.parametrize("command", [["queue", "add"], ["run"]])
def test_a_shortcut_and_a_disagreeing_override_are_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], command: list[str]
) -> None:
    runs = tmp_path / "runs"
    code, out = _cli(
        capsys,
        *command,
        "fnn1",
        *args,
        "--runs-dir",
        str(runs),
        "--experiments-dir",
        str(EXPERIMENTS),
        *(["--no-start-worker"] if command[0] == "queue" else []),
    )
    assert code == 2, out
    assert "Traceback" not in out
    override = next(a for a in args if "=" in a)
    flag = next(a for a in args if a.startswith("--"))
    flat = " ".join(out.split())
    assert f"-S {override}" in flat and flag in flat and "give only one" in flat
    assert not runs.exists() or not any(runs.glob("*/*/summary.json"))  # nothing queued


@pytest.mark.parametrize(
    "overrides",
    [
        ["train.epochs.x=3", "train.epochs=1"],
        ["train.epochs=1", "train.epochs.x=3"],
        ["train.epochs=abc", "train.epochs=2"],
        ["optim.lr=0.1", "optim.lr=0.2"],
        ["optim={lr=0.1}", "optim.lr=0.3"],
        ["model.hidden=[8]", "model.hidden.x=1"],
    ],
)
def test_overrides_that_contradict_each_other_are_reported(overrides: list[str]) -> None:
    with pytest.raises(SpecError) as exc:
        load_experiment("fnn1", EXPERIMENTS, overrides)
    text = str(exc.value)
    assert all(f"-S {o}" in text for o in overrides), text
    assert "different values" in text


@pytest.mark.parametrize(
    "overrides",
    [
        ["train.epochs=2", "train.epochs=2"],  # the same twice: no conflict
        ["optim={lr=0.1}", "optim.momentum=0.5"],  # a table and a sibling key
        ["optim.lr=0.1", "train.epochs=2"],
    ],
)
def test_overrides_that_agree_still_load(overrides: list[str]) -> None:
    spec = load_experiment("fnn1", EXPERIMENTS, overrides)
    assert spec.optim.lr in (0.1, spec.optim.lr)


def test_a_shortcut_that_agrees_with_its_override_is_fine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    code, out = _cli(
        capsys,
        "queue",
        "add",
        "fnn1",
        "-S",
        "train.epochs=1",
        "--epochs",
        "1",
        "--runs-dir",
        str(runs),
        "--experiments-dir",
        str(EXPERIMENTS),
        "--no-start-worker",
    )
    assert code == 0, out
    assert len(list(runs.glob("fnn1/*/summary.json"))) == 1
