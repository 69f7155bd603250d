"""What runs on a Ray cluster's nodes, in Ray worker processes (runs/ray_launcher.py submits it).

Kept apart from the driver so a node imports only this: the trainer's start on that node,
the shared-store probe and the liveness check of a trainer process there.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mnist_tui.runs import claim as claims
from mnist_tui.runs.launcher import die_with_parent

PROBE_DIR = ".ray-probe"


def train_task(
    run_dir: str, cmd: list[str], env: dict[str, str], holder: dict[str, Any], worker: str
) -> dict[str, Any]:
    """Train one run on this node: what a local slot does, in a Ray task."""
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    host = socket.gethostname()
    path = Path(run_dir)
    cmd = [sys.executable, *cmd[1:]]  # this node's Python, which has Ray and mnist-tui
    gpu_ids = [str(g) for g in ray.get_gpu_ids()]
    child_env = {
        **os.environ,
        **env,
        "PYTHONUNBUFFERED": "1",
        "MNIST_TUI_SLOT": f"ray:{host}",
        "MNIST_TUI_NODE": host,
        "MNIST_TUI_NODE_ID": node_id,
    }
    where = f"ray node {host} ({node_id[:8]}" + (f", GPU {','.join(gpu_ids)})" if gpu_ids else ")")
    with (path / "log.txt").open("ab") as log:
        # as a local slot: the command is in the log before the child exists
        log.write(
            f"{time.strftime('%Y-%m-%d %H:%M:%S')} starting on {where} "
            f"(ray task pid {os.getpid()}, worker {worker}): {shlex.join(cmd)}\n".encode()
        )
        log.flush()
        child = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env,
            start_new_session=True,
            preexec_fn=die_with_parent,  # a cancelled (killed) task takes its run with it
        )
    # the claim now names the process that trains, on this node
    mine = dataclasses.replace(claims.Holder(**holder), host=host)
    handed = claims.hand_over(path, mine, child.pid, "train", shlex.join(cmd))
    code = child.wait()
    return {
        "code": code,
        "node": host,
        "node_id": node_id,
        "pid": child.pid,
        "pid_start": handed.start_time,
    }


def probe_task(root: str, token: str) -> dict[str, Any]:
    """Whether this node sees the store as the driver does: read its token, write ours."""
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    out: dict[str, Any] = {"host": socket.gethostname(), "node_id": node_id}
    probe = Path(root) / PROBE_DIR
    try:
        seen = (probe / f"{token}.driver").read_text(encoding="utf-8")
        out["read"] = "ok" if seen == token else f"holds {seen[:20]!r}, not the token"
    except FileNotFoundError:
        out["read"] = "missing" if Path(root).is_dir() else "no store"
    except OSError as exc:
        out["read"] = f"unreadable ({exc.strerror})"
    try:
        (probe / f"{token}.{node_id}").write_text(f"{token} {node_id}", encoding="utf-8")
        out["write"] = "ok"
    except OSError as exc:
        out["write"] = exc.strerror or str(exc)
    return out


def remote_alive(pid: int, start_time: int | None) -> bool:
    """On a given node: whether this exact process still runs there."""
    from mnist_tui.runs.io import pid_alive

    return pid_alive(pid, start_time)
