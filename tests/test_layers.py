"""The architecture, checked: which layer may import which (see mnist_tui/__init__.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mnist_tui"


def _modules() -> list[str]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__main__":
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append(".".join(parts))
    return out


def _imported_by(module: str) -> set[str]:
    """Top-level packages in sys.modules after a fresh interpreter imports `module`."""
    code = (
        f"import json, sys; import {module}; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return set(json.loads(out.stdout))


CORE = [m for m in _modules() if not m.startswith("mnist_tui.tui")]


@pytest.mark.parametrize("module", CORE)
def test_core_modules_never_import_textual(module: str) -> None:
    assert "textual" not in _imported_by(module)


@pytest.mark.parametrize(
    "module",
    [
        "mnist_tui.config",
        "mnist_tui.config.loading",
        "mnist_tui.config.validate",
        "mnist_tui.models",
        "mnist_tui.user_models",
        "mnist_tui.runs.store",
        "mnist_tui.runs.index",
        "mnist_tui.views.render",
        "mnist_tui.views.tables",
        "mnist_tui.studies.catalog",
        "mnist_tui.studies.report",
        "mnist_tui.cli",
    ],
)
def test_read_only_layers_do_not_import_torch(module: str) -> None:
    if module not in _modules():
        pytest.skip(f"{module} does not exist")
    assert "torch" not in _imported_by(module)


def test_every_module_imports() -> None:
    code = "import importlib; " + "; ".join(f"importlib.import_module('{m}')" for m in _modules())
    subprocess.run([sys.executable, "-c", code], check=True, timeout=180)
