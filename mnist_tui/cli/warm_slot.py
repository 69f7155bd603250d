"""Warm start: a per-slot parent that has imported torch and the trainer, forking each run.

A cold run pays seconds before its first step: a new interpreter, importing torch and the
CLI, decoding the dataset, the git commit for its provenance. The local launcher keeps, per
slot, one warm parent process that has paid all of that once, and forks a FRESH child per
run: a run's crash, leaked state, RNG or memory never reach the next run, because every
run starts from the same untouched parent image.

The parent never trains, never touches CUDA (a fork after CUDA init is unusable) and keeps
torch's thread pool unstarted, so the forked child sets devices and threads as a cold
process does. Protocol (JSON lines): the worker writes {"argv", "log", "title"} on the
parent's stdin; the parent answers {"ready"} once, {"forked": pid} per request and
{"exit": pid, "code": c} when a child ends (code as subprocess gives it: -N for signal N).

The child: a new session, PDEATHSIG (it dies with its parent, which dies with the worker),
stdout/stderr to the run's log.txt, its /proc cmdline rewritten to the `train-run` command
it stands for (cancel verifies a trainer by its command line), then the same code path as
`mnist-tui train-run`. It is an entry point beside the CLI (it runs the CLI in each child);
the worker's side is runs/warm_pool.py, which starts it with `python -m mnist_tui.cli.warm_slot`.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

from mnist_tui.runs.launcher import die_with_parent

# ----------------------------------------------------------------------------- the child


def _argv_area() -> tuple[int, int] | None:
    """Start and end address of this process's original argv strings (Linux)."""
    try:
        stat = Path("/proc/self/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    try:
        return int(fields[45]), int(fields[46])  # arg_start, arg_end: fields 48 and 49
    except (IndexError, ValueError):
        return None


def set_title(argv: list[str]) -> bool:
    """Rewrite /proc/self/cmdline to `argv`, in the original argv memory; False if it
    cannot (no room, not Linux)."""
    area = _argv_area()
    if area is None:
        return False
    start, end = area
    data = b"\0".join(a.encode() for a in argv) + b"\0"
    if start <= 0 or len(data) > end - start:
        return False
    ctypes.memmove(start, data, len(data))
    ctypes.memset(start + len(data), 0, end - start - len(data))
    return True


def _run_child(request: dict[str, Any], command: Any, keep: list[int]) -> int:
    """In the forked child: detach, redirect, then train-run exactly as a cold child."""
    os.setsid()
    die_with_parent()
    for fd in keep:
        with contextlib.suppress(OSError):
            os.close(fd)
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.close(null)
    if os.getppid() == 1:  # the parent died before PDEATHSIG was set
        return 1
    title = request.get("title") or []
    set_title(title)
    args = list(request["argv"])
    sys.argv = [str(Path(__file__).resolve().parents[1] / "__main__.py"), *args]
    from mnist_tui.cli import main

    try:
        main(args, command=command)
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return 1
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


# ----------------------------------------------------------------------------- the parent


def preload(datasets: list[str], data_dir: str | None) -> None:
    """Import what every run imports, and decode the datasets the queue names (best effort).

    Decoding runs on one torch thread so that no OpenMP pool exists when a child forks;
    the child sets its own thread count as a cold run does.
    """
    import torch
    import torch._dynamo

    import mnist_tui.studies.runner
    import mnist_tui.train.engines  # noqa: F401
    from mnist_tui.data import files
    from mnist_tui.runs import provenance

    provenance.git_commit(Path(provenance.__file__).resolve().parent)  # cached for children
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for key in datasets:
            with contextlib.suppress(Exception):  # a child reports the real error
                files.load_raw(key, Path(data_dir) if data_dir else None, download=False)
    finally:
        torch.set_num_threads(threads)


def serve(inp: int, out: int) -> int:
    """The parent's loop: fork per request, report each child's exit, end on EOF."""
    import typer

    from mnist_tui.cli import app, readable_metavars

    command = readable_metavars(typer.main.get_command(app))
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)

    def send(message: dict[str, Any]) -> None:
        os.write(out, (json.dumps(message) + "\n").encode())

    send({"ready": os.getpid()})
    buffer = b""
    while True:
        with contextlib.suppress(InterruptedError):
            select.select([inp, wake_r], [], [])
        with contextlib.suppress(BlockingIOError):
            os.read(wake_r, 512)
        while True:  # reap every ended child
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            send({"exit": pid, "code": os.waitstatus_to_exitcode(status)})
        try:
            chunk = os.read(inp, 65536)
        except BlockingIOError:
            continue
        if not chunk:
            return 0  # the worker closed the pipe (or died): nothing more to start
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            request = json.loads(line)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    code = _run_child(request, command, [inp, out, wake_r, wake_w])
                finally:
                    with contextlib.suppress(Exception):
                        sys.stdout.flush()
                        sys.stderr.flush()
                    os._exit(code)
            send({"forked": pid})


def main() -> int:
    # the protocol gets private descriptors; stray output of imports goes to stderr
    inp, out = os.dup(0), os.dup(1)
    os.set_blocking(inp, False)
    os.dup2(2, 1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a new session; stops come over the pipe
    config = json.loads(os.environ.get("MNIST_TUI_WARM", "{}"))
    preload(list(config.get("datasets", [])), config.get("data_dir"))
    return serve(inp, out)


if __name__ == "__main__":
    sys.exit(main())
