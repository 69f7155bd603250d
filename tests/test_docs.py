"""The README and docs/ say what is there: every repository path they name exists, and no
path of one developer's machine is written into them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# a path inside this repository: one of its top-level folders, then a file or folder name
# (placeholders such as `experiments/<study>.toml` and globs are not paths)
REPO_PATH = re.compile(
    r"(?<![\w./~+-])((?:mnist_tui|tests|docs|benchmarks|experiments|examples|\.ci)"
    r"(?:/[\w.+-]+)+/?)"
)
# what a reader's own commands write, shown as their output or argument (`mnist-tui new`,
# examples/make_image_folder.py): not files of this repository
WRITTEN_BY_COMMANDS = {
    "experiments/mystudy.toml",
    "experiments/models/mystudy.py",
    "examples/data/shapes",
}
# absolute paths of a machine, where a documented variable or a placeholder belongs
MACHINE_PATH = re.compile(r"(?<![\w.~$}-])/(?:work|home|root|mnt|Users|tmp)/[\w.+-]+")


def named_paths(text: str) -> list[str]:
    return sorted({m.rstrip("./") for m in REPO_PATH.findall(text)})


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_named_path_exists(doc: Path) -> None:
    paths = named_paths(doc.read_text(encoding="utf-8"))
    missing = [p for p in paths if not (REPO / p).exists() and p not in WRITTEN_BY_COMMANDS]
    assert not missing, f"{doc.name} names paths that do not exist: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_no_machine_path(doc: Path) -> None:
    found = MACHINE_PATH.findall(doc.read_text(encoding="utf-8"))
    assert not found, f"{doc.name} names paths of one machine: {found}"


def test_the_path_finder_finds_what_a_reader_would_follow() -> None:
    text = (
        "see `mnist_tui/train.py`, docs/scaling.md and tests/test_x.py; not "
        "`experiments/<study>.toml`, runs/<experiment>/<run-id>, ~/.ray/auth_token, "
        "ahnyujin/fashion_mnist or `.venv/bin/pip`"
    )
    assert named_paths(text) == ["docs/scaling.md", "mnist_tui/train.py", "tests/test_x.py"]
