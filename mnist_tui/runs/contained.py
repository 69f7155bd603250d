"""Nothing the store does to its files reaches outside it through a symbolic link.

Deleting moves a run into `<runs-dir>/.trash/<experiment>/`; `gc` deletes the trash;
archiving, tagging and noting rewrite a run's meta.json; export reads its files. If the
trash, an experiment folder, a run folder or a file inside one is a link that leads out
of the store, following it would move runs into (or delete, read, rewrite) a directory
that is not the store's, and `gc` would report space freed that was never freed.
Every such operation checks its paths here first and refuses, naming the link.

Links that stay inside the store are fine, and so is a store directory that is itself
a link (a runs directory kept on another disk): "inside" is measured from the store's
real path.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from mnist_tui.errors import StoreError


class OutsideStoreError(StoreError):
    """A path of the store leads outside it through a symbolic link."""


def _real_root(root: Path) -> str:
    return os.path.realpath(root)


def _inside(real: str, real_root: str) -> bool:
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def _refuse(link: Path, root: Path, doing: str) -> OutsideStoreError:
    try:
        target = os.readlink(link)
    except OSError:
        target = os.path.realpath(link)
    return OutsideStoreError(
        f"{link} is a symbolic link to {target}, outside the run store {root}: "
        f"refusing to {doing} through it (nothing was changed; replace the link with "
        "a real directory or file to go on)"
    )


def check_path(root: Path, path: Path, doing: str) -> None:
    """Refuse when `path`, or a folder between the store's root and it, is a link that
    leads outside the store (or when the path resolves outside it at all)."""
    real_root = _real_root(root)
    here = path
    chain: list[Path] = []
    while here != root and here != here.parent:
        chain.append(here)
        here = here.parent
    for p in reversed(chain):  # the outermost link is the one to name
        if p.is_symlink() and not _inside(os.path.realpath(p), real_root):
            raise _refuse(p, root, doing)
    if os.path.lexists(path) and not _inside(os.path.realpath(path), real_root):
        raise _refuse(path, root, doing)


def check_tree(root: Path, top: Path, doing: str) -> None:
    """`check_path` for `top`, and every link anywhere below it (never followed)."""
    check_path(root, top, doing)
    if top.is_symlink() or not top.is_dir():
        return
    real_root = _real_root(root)
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        for name in (*dirnames, *filenames):
            p = Path(dirpath) / name
            if p.is_symlink() and not _inside(os.path.realpath(p), real_root):
                raise _refuse(p, root, doing)


def check_runs(root: Path, run_dirs: Iterable[Path], doing: str) -> None:
    """Every run's folders and files, before the first is touched (all or nothing)."""
    for run_dir in run_dirs:
        check_tree(root, run_dir, doing)
