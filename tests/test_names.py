"""Names people use: an experiment file named in Hangul, with accents, with spaces or 200
characters long is listed, shown and diffed; training it is refused before any work,
naming the rule its runs' directory must follow, and nothing is stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .test_cli import cli

NAMES = ["é실험", "실험", "ünïcödé", "a" * 200, "my experiment", "Ünï-" + "실" * 60]
RULE = "cannot name a run directory: use letters, digits"


def flat(text: str) -> str:
    return "".join(text.split())


@pytest.fixture
def exps(tmp_path: Path) -> Path:
    d = tmp_path / "exps"
    d.mkdir()
    for i, name in enumerate(NAMES):
        (d / f"{name}.toml").write_text(
            f'extends = "fnn1"\ndescription = "named {i}"\n[train]\nepochs = {i + 2}\n',
            encoding="utf-8",
        )
    return d


@pytest.mark.parametrize("name", NAMES)
def test_any_name_is_listed_shown_and_diffed(
    name: str, exps: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    where = ["--experiments-dir", str(exps), "--runs-dir", str(tmp_path / "runs")]
    code, out, err = cli(capsys, "list", "--json", *where)
    assert code == 0, err
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows[name]["error"] is None
    code, out, err = cli(capsys, "show", name, "--json", *where)
    assert code == 0, err
    shown = json.loads(out)
    assert shown["label"] == name and shown["spec"]["train"]["epochs"] == NAMES.index(name) + 2
    code, out, err = cli(capsys, "show", name, *where)
    assert code == 0 and f"named {NAMES.index(name)}" in out, err
    code, out, err = cli(capsys, "show", str(exps / f"{name}.toml"), *where)
    assert code == 0, err
    other = NAMES[(NAMES.index(name) + 1) % len(NAMES)]
    code, out, err = cli(capsys, "diff", name, other, *where)
    assert code == 0 and "train.epochs" in out, err
    code, out, err = cli(capsys, "diff", name, other, "--json", *where)
    assert code == 0 and [c["key"] for c in json.loads(out)["definition"]] == ["train.epochs"]


def test_a_name_is_extended_by_another_file(
    exps: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (exps / "child.toml").write_text('extends = "é실험"\n', encoding="utf-8")
    code, out, err = cli(
        capsys, "show", "child", "--json", "--experiments-dir", str(exps),
        "--runs-dir", str(tmp_path / "runs"),
    )  # fmt: skip
    assert code == 0, err
    shown = json.loads(out)
    assert shown["spec"]["train"]["epochs"] == 2 and "train.epochs" in shown["inherited"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "command", [["run", "--epochs", "1"], ["queue", "add", "--no-start-worker"], ["cv"]]
)
def test_training_a_name_no_run_directory_can_have_is_refused_before_any_work(
    name: str, command: list[str], exps: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # no dataset anywhere: a refusal that came after loading data would say so instead
    monkeypatch.setenv("MNIST_TUI_DATA", str(tmp_path / "no-data"))
    runs = tmp_path / "runs"
    args = (
        [*command[:2], name, *command[2:]]
        if command[0] == "queue"
        else [command[0], name, *command[1:]]
    )
    code, out, err = cli(capsys, *args, "--experiments-dir", str(exps), "--runs-dir", str(runs))
    said = out + err
    assert code == 2, said
    assert RULE in " ".join(said.split()) and "Traceback" not in said
    assert "but not trained" in " ".join(said.split())
    runs_made = [p for p in runs.glob("*/*") if not p.parent.name.startswith(".")]
    assert not runs_made  # no run directory, not even a failed one


def test_a_run_of_several_experiments_refuses_before_the_first_trains(
    exps: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    code, out, err = cli(
        capsys, "run", "fnn1", "é실험", "--epochs", "1",
        "--experiments-dir", str(exps), "--runs-dir", str(runs),
    )  # fmt: skip
    assert code == 2 and RULE in " ".join((out + err).split())
    assert not (runs / "fnn1").exists()  # the valid one was not trained either
