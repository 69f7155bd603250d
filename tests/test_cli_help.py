"""Every command's help is readable: no type placeholders, every option explained."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import typer.main

from mnist_tui import __version__
from mnist_tui.cli import app, main, readable_metavars


def _commands() -> list[list[str]]:
    root = readable_metavars(typer.main.get_command(app))
    out: list[list[str]] = [[]]

    def walk(cmd: object, path: list[str]) -> None:
        for name, sub in getattr(cmd, "commands", {}).items():
            if getattr(sub, "hidden", False):
                continue
            out.append([*path, name])
            walk(sub, [*path, name])

    walk(root, [])
    return out


@pytest.mark.parametrize("path", _commands(), ids=lambda p: " ".join(p) or "root")
def test_help_has_no_type_placeholders_and_explains_every_option(
    path: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as exc:
        main([*path, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert not re.search(r"<(bool|int|float|str|path|list\[[a-z]+\])>", text), text
    command = readable_metavars(typer.main.get_command(app))
    for name in path:
        command = command.commands[name]
    for param in command.params:
        if param.opts[0].startswith("-") and not getattr(param, "hidden", False):
            assert (param.help or "").strip(), f"{' '.join(path)} {param.opts[0]}: no help text"


def test_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mnist_tui", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"mnist-tui {__version__}"


def test_a_command_line_builds_only_the_command_it_names() -> None:
    """`mnist-tui runs` builds one command, not the 30-odd; the global options that take
    a value are skipped with their value, and `--help` or a misspelt name get the tree."""
    from mnist_tui.cli import invoked_name, only
    from mnist_tui.cli.options import ROOT_VALUE_OPTIONS

    root = typer.main.get_command(app)
    taking_values = sorted(
        o for p in root.params if not getattr(p, "is_flag", False) for o in p.opts
    )
    assert taking_values == sorted(ROOT_VALUE_OPTIONS)
    assert invoked_name(["--runs-dir", "runs", "show", "abc"]) == "show"
    assert invoked_name(["--json"]) is None
    assert invoked_name(["--help", "runs"]) is None  # the root's help, every command
    assert invoked_name([]) is None
    slim = typer.main.get_command(only("runs"))
    assert list(getattr(slim, "commands", {})) == ["runs"]
    queue = typer.main.get_command(only("queue"))
    assert list(getattr(queue, "commands", {})) == ["queue"]
    assert only("rnus") is app
    assert only(None) is app


def test_a_slim_tree_runs_the_command_with_global_options(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--runs-dir", str(tmp_path), "runs", "--json"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == "[]"
