"""A real install: sdist -> wheel -> a fresh virtualenv, run outside the repository.

The wheel must carry the 27 shipped experiments (setup.py copies experiments/*.toml into
the package), `mnist-tui list` run from an empty directory must show them, and a user's
experiments directory layers on top (a same-named file shadows the shipped one).
Dependencies come from this virtualenv through a .pth file, so nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import pytest

from .conftest import EXPERIMENTS, REPO

PIP = [sys.executable, "-m", "pip"]
OFFLINE = ["--no-deps", "--no-index", "-q"]
SHIPPED = sorted(p.name for p in EXPERIMENTS.glob("*.toml"))


def _pip_can_target_another_python() -> bool:
    """pip >= 22.3 installs into another interpreter with --python."""
    try:
        import pip

        major, minor = (int(x) for x in pip.__version__.split(".")[:2])
    except (ImportError, ValueError):
        return False
    return (major, minor) >= (22, 3)


def _can_build_wheels() -> bool:
    """setuptools >= 70.1 builds wheels itself; before, the wheel package did."""
    try:
        major, minor = (int(x) for x in metadata.version("setuptools").split(".")[:2])
    except (metadata.PackageNotFoundError, ValueError):
        return False
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


pytestmark = pytest.mark.skipif(
    not _can_build_wheels() or not _pip_can_target_another_python(),
    reason="needs setuptools with bdist_wheel and pip >= 22.3 to build and install offline",
)


def _run(
    cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**(env or os.environ), "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    out = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"{cmd}\n{out.stdout}\n{out.stderr}"
    return out


def _source_copy(dst: Path) -> Path:
    """What a release is built from, copied: the build never writes into the checkout."""
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy2(REPO / name, dst / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "experiments", dst / "experiments", ignore=ignore)
    shutil.copytree(REPO / "mnist_tui", dst / "mnist_tui", ignore=ignore)
    return dst


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with mnist-tui installed from a wheel built from the sdist."""
    root = tmp_path_factory.mktemp("packaging")
    (root / "src").mkdir()
    src = _source_copy(root / "src")
    _run([sys.executable, "setup.py", "-q", "sdist", "-d", str(root / "sdist")], cwd=src)
    (sdist,) = (root / "sdist").glob("*.tar.gz")
    with tarfile.open(sdist) as tar:
        in_sdist = sorted(Path(n).name for n in tar.getnames() if "/experiments/" in n)
    assert in_sdist == SHIPPED
    _run([*PIP, "wheel", *OFFLINE, "--no-build-isolation", "-w", str(root / "dist"), str(sdist)])
    (wheel,) = (root / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as z:
        in_wheel = sorted(
            Path(n).name for n in z.namelist() if n.startswith("mnist_tui/experiments/")
        )
    assert in_wheel == SHIPPED

    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    _run([*PIP, "--python", str(python), "install", *OFFLINE, str(wheel)])
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    # the dependencies (torch, typer, rich...) from this virtualenv, after the venv's own
    ours = sysconfig.get_paths()["purelib"]
    (Path(purelib.stdout.strip()) / "_test_deps.pth").write_text(ours + "\n")
    return venv


def _tool(venv: Path, tmp: Path, cwd: Path) -> Callable[..., str]:
    """Run a command of the installed package from `cwd`: `run("mnist-tui", "list")`."""
    env = {k: v for k, v in os.environ.items() if k != "MNIST_TUI_EXPERIMENTS"}
    # one model-check cache beside the venv: only the first command pays for the builds
    env.update(
        MNIST_TUI_RUNS=str(tmp / "runs"), XDG_CACHE_HOME=str(venv.parent / "cache"), COLUMNS="120"
    )

    def run(program: str, *args: str) -> str:
        return _run([str(venv / "bin" / program), *args], cwd=cwd, env=env).stdout

    return run


def test_wheel_install_lists_the_shipped_experiments_outside_the_repo(
    installed: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    run = _tool(installed, tmp_path, empty)
    where = run("python", "-c", "import mnist_tui; print(mnist_tui.__file__)")
    assert str(installed) in where and str(REPO) not in where
    rows = json.loads(run("mnist-tui", "list", "--json"))
    assert sorted(f"{r['name']}.toml" for r in rows) == SHIPPED
    assert [r["name"] for r in rows if r["error"]] == []
    assert not (empty / "experiments").exists()  # reading creates nothing


def test_user_experiments_layer_over_the_shipped_set(installed: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    (work / "experiments").mkdir(parents=True)
    (work / "experiments" / "mine.toml").write_text('extends = "fnn1"\n[train]\nepochs = 1\n')
    (work / "experiments" / "fnn2.toml").write_text('extends = "fnn1"\ndescription = "my fnn2"\n')
    run = _tool(installed, tmp_path, work)
    code = (
        "import json; from mnist_tui.config.loading import experiment_sources as s; "
        "print(json.dumps({n: [x.origin, x.shadowed] for n, x in s().items()}))"
    )
    sources = json.loads(run("python", "-c", code))
    assert len(sources) == len(SHIPPED) + 1
    assert sources["mine"] == ["user", False]
    assert sources["fnn2"] == ["user", True]
    assert sources["fnn1"] == ["shipped", False]
    rows = {r["name"]: r for r in json.loads(run("mnist-tui", "list", "--json"))}
    assert len(rows) == len(SHIPPED) + 1 and rows["mine"]["error"] is None
    assert "my fnn2" in run("mnist-tui", "show", "fnn2")
