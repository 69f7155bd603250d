"""The backend table: each name `--backend` takes, its launcher and the checks of its options.

One place says which backends exist and what a bad `--backend`/`--address` means, for the
CLI (`worker`, `tune --parallel`) and the console alike. A new backend is one launcher
module with a `BACKEND` row (runs/launcher.py: Backend), listed here.
"""

from __future__ import annotations

from mnist_tui.errors import MnistTuiError, did_you_mean
from mnist_tui.runs import local_launcher, ray_launcher
from mnist_tui.runs.launcher import Backend, WorkerOptions
from mnist_tui.runs.store import RunStore
from mnist_tui.runs.worker import Worker

BACKENDS: dict[str, Backend] = {b.name: b for b in (local_launcher.BACKEND, ray_launcher.BACKEND)}


def backend(name: str) -> Backend:
    """The table's row for `name`, or an error listing the names (with did-you-mean)."""
    found = BACKENDS.get(name)
    if found is None:
        names = list(BACKENDS)
        hint = did_you_mean(name, names)
        raise MnistTuiError(f"--backend: expected {' or '.join(names)}, got '{name}'.{hint}")
    return found


def check(name: str, address: str | None = None) -> Backend:
    """A backend that exists, takes the options given and can run here (else an error now,
    not in a detached worker's log)."""
    row = backend(name)
    if address and not row.takes_address:
        takers = [b.name for b in BACKENDS.values() if b.takes_address]
        raise MnistTuiError(
            f"--address names a cluster: use it with --backend {' or '.join(takers)}"
        )
    row.check()
    return row


def make_worker(store: RunStore, options: WorkerOptions) -> Worker:
    """The worker loop over the launcher of `options.backend`."""
    return Worker(store, options, backend(options.backend).make)
