"""Nothing a user can put in a file makes a view super-linear.

A 300 KB description took 493 s to `show` (Rich's automatic highlighting is quadratic);
the bound below is loose on purpose: it catches quadratic behaviour, not noise.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from mnist_tui.cli import main

from .conftest import EXPERIMENTS


@pytest.mark.parametrize("command", [["show", "big"], ["diff", "big", "fnn1", "--all"], ["list"]])
def test_a_300kb_description_is_shown_in_linear_time(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
) -> None:
    exps = tmp_path / "exps"
    shutil.copytree(EXPERIMENTS, exps)
    text = "word (paren) 12.5% [x] 0x1f /path/to 'q' " * 7500  # ~300 KB, highlighter bait
    (exps / "big.toml").write_text(f'extends = "fnn1"\ndescription = """{text}"""\n')
    monkeypatch.setenv("MNIST_TUI_EXPERIMENTS", str(exps))
    monkeypatch.setenv("COLUMNS", "100")
    started = time.perf_counter()
    with pytest.raises(SystemExit) as exc:
        main(command)
    elapsed = time.perf_counter() - started
    assert exc.value.code in (0, None)
    assert "big" in capsys.readouterr().out
    assert elapsed < 30, f"{' '.join(command)} took {elapsed:.1f} s on a 300 KB description"
