"""The environment failing under a command: a read-only store, a full file system, a file
this user may not read. One clear line naming the file, never a traceback.

`OSError` from a write says what went wrong but often not where (a `write` to an open file
carries no file name); `writing(path)` puts the path back, and `describe` turns any
OSError into the message the command line prints.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from pathlib import Path

from mnist_tui.errors import StoreError

_HINTS = {
    errno.ENOSPC: "the file system is full: free some space there and try again",
    errno.EDQUOT: "this user's disk quota is used up: free some space and try again",
    errno.EROFS: "the file system is mounted read-only",
    errno.EACCES: "this user may not use it: check its permissions (and the folder's)",
    errno.EPERM: "this user may not use it: check its permissions (and the folder's)",
}


class EnvironmentFailure(StoreError):
    """The file system refused: read-only, full, or not this user's to use."""


def describe(exc: OSError, path: str | Path | None = None, doing: str = "use") -> str:
    """'cannot write /store/.worker.lock: Permission denied (this user may not ...)'."""
    where = path if path is not None else exc.filename
    what = exc.strerror or str(exc) or type(exc).__name__
    hint = _HINTS.get(exc.errno or -1)
    target = f" {where}" if where is not None else ""
    return f"cannot {doing}{target}: {what}" + (f" ({hint})" if hint else "")


@contextlib.contextmanager
def writing(path: Path, doing: str = "write") -> Iterator[None]:
    """Turn an OSError inside the block into an EnvironmentFailure naming `path`."""
    try:
        yield
    except OSError as exc:
        if isinstance(exc, StoreError):  # pragma: no cover - StoreError is not an OSError
            raise
        raise EnvironmentFailure(describe(exc, exc.filename or path, doing)) from None
