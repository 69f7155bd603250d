"""Where a run came from: package and library versions, device, host, command line, git commit."""

from __future__ import annotations

import functools
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any


@functools.cache  # one answer per process: a warm trainer parent asks once for every run
def git_commit(cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    commit = out.stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=5,
        check=False,
    ).stdout.strip()
    return commit + ("-dirty" if dirty else "")


def _version(package: str) -> str | None:
    """An installed package's version without importing it (torchvision alone costs
    seconds of every run's start-up)."""
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def environment(device: str, seed: int) -> dict[str, Any]:
    import torch

    from mnist_tui import __version__

    return {
        "mnist_tui": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "cuda": torch.version.cuda,
        "device": device,
        "seed": seed,
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "command": sys.argv,
        "cwd": str(Path.cwd()),
        # the code that trained, not whatever repository the user happens to stand in
        # (None for an installed wheel, whose version says it)
        "git_commit": git_commit(Path(__file__).resolve().parent),
    }
