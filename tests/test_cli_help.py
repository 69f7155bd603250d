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
