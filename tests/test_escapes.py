"""Stored text reaches no terminal with live control characters: every kind of escape
sequence, through every path that shows stored text, in the CLI and in the console."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import pytest
from rich.text import Text
from textual.widgets import Static

from mnist_tui.config import loading
from mnist_tui.runs.store import RunStore
from mnist_tui.tui.app import MnistTuiApp
from mnist_tui.tui.grid import DataGrid
from mnist_tui.tui.screens import ExperimentScreen, RunScreen
from mnist_tui.views import tables
from mnist_tui.views.safe_console import SafeConsole
from mnist_tui.views.visible import VisibleStream, visible

from .conftest import FIXTURES
from .test_cli import cli
from .test_store import write_run

# each kind a terminal acts on: clipboard, title, clear, one-byte CSI, bell, backspace
SEQUENCES = {
    "osc52": "\x1b]52;c;cHduZWQ=\x07",
    "title0": "\x1b]0;owned\x07",
    "title2": "\x1b]2;owned\x1b\\",
    "clear": "\x1b[2J\x1b[H",
    "c1_csi": "\x9b2J",
    "bell": "\x07",
    "backspace": "ok\x08\x08XX",
    "del": "a\x7fb",
}
LIVE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # what a terminal would act on


def assert_inert(text: str, *, where: str) -> None:
    live = LIVE.findall(text)
    assert not live, f"{where}: live control characters {live!r} in {text!r}"


def payload(kind: str) -> str:
    return f"<{kind}>{SEQUENCES[kind]}</{kind}>"


def toml_string(s: str) -> str:
    """A TOML basic string holding `s` (control characters as \\u escapes)."""
    return json.dumps(s, ensure_ascii=True)


# ----------------------------------------------------------------------------- the rule


@pytest.mark.parametrize("kind", sorted(SEQUENCES))
def test_visible_shows_each_control_character_as_hex(kind: str) -> None:
    text = payload(kind)
    shown = visible(text)
    assert_inert(shown, where="visible")
    for ch in set(LIVE.findall(text)):
        assert f"\\x{ord(ch):02x}" in shown
    assert shown.startswith(f"<{kind}>") and shown.endswith(f"</{kind}>")


def test_visible_keeps_newlines_and_tabs_only_where_lines_are_shown() -> None:
    assert visible("a\tb\nc\r\nd", multiline=True) == "a\tb\nc\nd"
    assert visible("a\tb\nc\rd") == "a\tb\\x0ac\\x0dd"
    assert visible("Hangul 실험 é ü — ●") == "Hangul 실험 é ü — ●"  # printable: untouched


def test_visible_stream_joins_characters_cut_between_reads() -> None:
    data = ("é실험 \x1b[2J\r\nnext\x9b\n").encode()
    for cut in range(1, len(data)):
        stream = VisibleStream()
        out = stream.feed(data[:cut]) + stream.feed(data[cut:]) + stream.feed(b"", final=True)
        assert out == "é실험 \\x1b[2J\nnext\\x9b\n", cut


def test_table_cells_titles_and_notes_are_inert() -> None:
    evil = "".join(SEQUENCES.values())
    data = tables.TableData(evil, [tables.Column("a")], [], notes=[evil], empty=evil)
    row = tables.Row("k", (tables.Cell(evil, "red"),))
    for text in (data.title, *data.notes, data.empty, row.cells[0].text):
        assert_inert(text, where="table")
    assert row.cells[0].style == "red"


def test_the_cli_console_keeps_its_own_colours_and_shows_stored_escapes() -> None:
    buf = io.StringIO()
    out = SafeConsole(
        file=buf, force_terminal=True, color_system="standard", width=200, highlight=False
    )
    out.print(Text("done", style="red"), "  note: " + SEQUENCES["osc52"] + SEQUENCES["c1_csi"])
    written = buf.getvalue()
    assert "\x1b[31mdone" in written  # the tool's colour is sent as before
    assert "\x1b]52" not in written and "\x9b" not in written and "\x07" not in written
    assert "\\x1b]52;c;cHduZWQ=" in written and "\\x9b2J" in written


# ----------------------------------------------------------------------------- CLI


def _evil_store(root: Path, kind: str) -> RunStore:
    """A finished run and a queued one, whose stored text all carries the sequence."""
    text = payload(kind)
    spec = (FIXTURES / "runs" / "fnn1" / "f0000001" / "spec.toml").read_text(encoding="utf-8")
    done = write_run(root, "fnn1", spec, run_id="e0000001", group=text)
    summary = json.loads((done / "summary.json").read_text())
    summary.update(status="failed", reason=f"boom {text}", overrides=[f"train.lr={text}"])
    (done / "summary.json").write_text(json.dumps(summary))
    # meta.json copied in by hand: tags and a note no `tag` command would accept
    (done / "meta.json").write_text(json.dumps({"tags": [f"t{text}"], "note": text}))
    (done / "log.txt").write_bytes(f"epoch 1 {text}\nline two\n".encode())
    queued = write_run(root, "fnn1", spec, run_id="e0000002", status="queued", group=text)
    summary = json.loads((queued / "summary.json").read_text())
    summary.update(overrides=[f"train.lr={text}"], epochs_done=0)
    (queued / "summary.json").write_text(json.dumps(summary))
    return RunStore(root)


@pytest.mark.parametrize("kind", sorted(SEQUENCES))
def test_every_cli_output_of_stored_text_is_inert(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs, exps = tmp_path / "runs", tmp_path / "exps"
    _evil_store(runs, kind)
    exps.mkdir()
    (exps / "evil.toml").write_text(
        f'extends = "fnn1"\ndescription = {toml_string("desc " + payload(kind))}\n',
        encoding="utf-8",
    )
    where = ["--runs-dir", str(runs)]
    commands = [
        ["show", "evil", "--experiments-dir", str(exps), *where],
        ["show", "e0000001", *where],
        ["runs", *where],
        ["runs", "--tag", f"t{payload(kind)}", *where],
        ["queue", "ls", *where],
        ["logs", "e0000001", *where],
        ["logs", "-f", "e0000001", *where],
        ["note", "e0000001", f"again {payload(kind)}", *where],
        ["diff", "e0000001", "evil", "--experiments-dir", str(exps), *where],
    ]
    for args in commands:
        code, out, err = cli(capsys, *args)
        assert_inert(out + err, where=" ".join(args[:2]))
        assert code in (0, 2), (args, code, err)
    # what each said, shown
    shown = visible(SEQUENCES[kind])
    code, out, _ = cli(capsys, "show", "e0000001", *where)
    assert code == 0 and shown in out and "boom" in out
    code, out, _ = cli(capsys, "logs", "e0000001", *where)
    assert out == f"epoch 1 {visible(payload(kind))}\nline two\n"
    code, out, _ = cli(capsys, "note", "e0000001", f"again {payload(kind)}", *where)
    assert code == 0 and shown in out
    code, out, _ = cli(capsys, "show", "evil", "--experiments-dir", str(exps), *where)
    assert code == 0 and f"desc {visible(payload(kind))}" in out


# ----------------------------------------------------------------------------- console


@pytest.fixture
def _fixture_experiments_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loading, "shipped_experiments_dir", lambda: None, raising=False)


def _grid_text(grid: DataGrid) -> str:
    out = []
    for key in grid.row_keys():
        out += [str(c) for c in grid.get_row(key)]
    return "\n".join(out)


@pytest.mark.usefixtures("_fixture_experiments_only")
@pytest.mark.parametrize("kind", ["osc52", "title2", "clear", "c1_csi", "bell", "backspace"])
async def test_console_screens_show_stored_escapes_inert(kind: str, tmp_path: Path) -> None:
    text = payload(kind)
    exps = tmp_path / "exps"
    shutil.copytree(FIXTURES / "experiments", exps)
    (exps / "evil.toml").write_text(
        f'extends = "fnn1"\ndescription = {toml_string("desc " + text)}\n', encoding="utf-8"
    )
    runs = tmp_path / "runs"
    shutil.copytree(FIXTURES / "runs", runs)
    run_dir = runs / "fnn1" / "f0000003"
    summary = json.loads((run_dir / "summary.json").read_text())
    summary.update(status="failed", reason=f"boom {text}", group=text, overrides=[f"x={text}"])
    (run_dir / "summary.json").write_text(json.dumps(summary))
    (run_dir / "meta.json").write_text(json.dumps({"note": text, "tags": [f"t{text}"]}))
    (run_dir / "log.txt").write_bytes(f"training {text}\n".encode())
    app = MnistTuiApp(
        data_dir=None, runs_dir=runs, experiments_dir=exps, device="cpu", poll_interval=0.2
    )
    from .test_tui import loaded, select_row, wait_for

    async with app.run_test(size=(160, 50)) as pilot:
        await loaded(pilot)
        # the runs table
        await pilot.press("2")
        await pilot.pause()
        grid = app.main.grid("runs")
        await wait_for(pilot, lambda: "f0000003" in grid.row_keys(), timeout=20)
        assert_inert(_grid_text(grid), where="runs table")
        assert visible(SEQUENCES[kind]) in _grid_text(grid)
        # the run screen: header and log tail
        await select_row(app, pilot, "runs", "f0000003")
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, RunScreen)
        header = screen.query_one("#run-header", Static)
        await wait_for(pilot, lambda: "boom" in str(header.render()), timeout=20)
        log = screen.query_one("#run-log", Static)
        await wait_for(pilot, lambda: "training" in str(log.render()), timeout=20)
        for widget, name in ((header, "run header"), (log, "log tail")):
            rendered = str(widget.render())
            assert_inert(rendered, where=name)
            assert visible(SEQUENCES[kind]) in rendered
        await pilot.press("escape")
        # the experiment screen
        await pilot.press("1")
        await pilot.pause()
        await select_row(app, pilot, "experiments", "evil")
        await pilot.press("enter")
        exp = app.screen
        assert isinstance(exp, ExperimentScreen)
        head = exp.query_one("#exp-header", Static)
        await wait_for(pilot, lambda: "desc" in str(head.render()), timeout=20)
        assert_inert(str(head.render()), where="experiment header")
        assert visible(SEQUENCES[kind]) in str(head.render())
