"""`python -m mnist_tui.runs.index_check STORE`: the run index's full disk check, made by a
detached process that a command started instead of making it itself (runs/index.py,
DEFER_ABOVE). One at a time per store: a second one finds the lock taken and leaves."""

from __future__ import annotations

import contextlib
import fcntl
import sys
from pathlib import Path

from mnist_tui.runs.index import CHECK_LOCK, RunIndex


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m mnist_tui.runs.index_check STORE", file=sys.stderr)
        return 2
    root = Path(argv[0])
    try:
        lock = open(root / CHECK_LOCK, "a")  # noqa: SIM115 - held for the whole check
    except OSError:
        return 1  # a store this process cannot write: the commands check it themselves
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return 0  # another process is making it
        with contextlib.suppress(Exception):  # a detached helper: nobody to tell
            RunIndex(root).sync()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
