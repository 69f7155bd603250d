"""Resume a stopped run in a detached child process, for a client that never trains (the
console): checked first as `mnist-tui resume` checks it, then `mnist-tui resume RUN`
runs on its own, its output appended to the run's log.txt, so it outlives the console."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mnist_tui.runs.record import RunInfo
from mnist_tui.runs.store import RunStore


def start_resume(
    store: RunStore, run: RunInfo, *, data_dir: Path | None = None, device: str | None = None
) -> None:
    """Raises StoreError (the run left as it was) when it cannot be resumed."""
    from mnist_tui.studies.runner import check_resumable

    check_resumable(run)  # a clear refusal now, not in a detached process's log
    cmd = [sys.executable, "-m", "mnist_tui", "resume", run.id, "--quiet"]
    cmd += ["--runs-dir", str(store.root), "--no-download"]
    if data_dir is not None:
        cmd += ["--data-dir", str(data_dir)]
    if device:
        cmd += ["--device", device]
    with (run.path / "log.txt").open("ab") as log:
        subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
