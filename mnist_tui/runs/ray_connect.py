"""Joining a Ray cluster from the driver: reachability, the auth token, a watchdog on
`ray.init`, and the probe that every node sees the run store (runs/ray_launcher.py uses it).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import threading
from pathlib import Path
from typing import Any

from mnist_tui.errors import MnistTuiError
from mnist_tui.runs.ray_tasks import PROBE_DIR, probe_task

CONNECT_TIMEOUT = 120.0
PROBE_TIMEOUT = 60.0


class StoreNotShared(MnistTuiError):
    exit_code = 2


def _unreachable(address: str) -> str | None:
    """Why nothing answers at HOST:PORT (None: something does); Ray itself would retry
    for minutes inside C++ code that no signal interrupts."""
    if "://" in address or address == "auto":
        return None  # Ray client and auto-detection: Ray's own checks
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return f"'{address}' is not HOST:PORT"
    from mnist_tui.runs.ray_probe import probe

    return probe(host.strip("[]"), int(port))  # nothing listens, or not Ray: what answered


def _watchdog(seconds: float, message: str) -> threading.Timer:
    """Exit with `message` if still waiting after `seconds` (ray.init can wait forever,
    e.g. for a raylet registered under another address of this machine)."""

    def expire() -> None:
        sys.stderr.write(f"error: {message}\n")
        sys.stderr.flush()
        os._exit(2)  # the lock is an flock: it goes with the process

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    return timer


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def _has_token() -> bool:
    """Whether this user has a Ray authentication token (Ray's own places for one)."""
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return True
    return (Path.home() / ".ray" / "auth_token").is_file()


def _is_loopback(address: str | None) -> bool:
    host = (address or "").rsplit(":", 1)[0].strip("[]")
    return host in ("127.0.0.1", "localhost", "::1")


def join(ray: Any, address: str | None) -> None:
    """Connect this process to the cluster at `address` (None: start one on this machine)."""
    if address is None or _is_loopback(address):
        # a cluster of this one machine: keep Ray on the loopback interface (without
        # this Ray swaps 127.0.0.1 for the machine's address and listens on it)
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    if address is not None and "RAY_AUTH_MODE" not in os.environ and _has_token():
        # once a token exists, `ray start` turns token auth on, but a driver that
        # connects sends the token only in token mode (a cluster without auth
        # accepts it too)
        os.environ["RAY_AUTH_MODE"] = "token"
        with contextlib.suppress(Exception):  # Ray reads its config once, at import
            import importlib

            importlib.import_module("ray._raylet").Config.initialize("")
    if address is not None and (why := _unreachable(address)):
        raise MnistTuiError(
            f"no Ray cluster answers at {address} ({why}); start one with "
            "`ray start --head --port 6379` there (docs/scaling.md), or leave out "
            "--address to start one on this machine"
        )
    timer = _watchdog(
        CONNECT_TIMEOUT,
        f"connecting to the Ray cluster at {address or '(local)'} did not finish "
        f"within {CONNECT_TIMEOUT:g} s; a cluster started on 127.0.0.1 needs "
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 on both sides (docs/scaling.md)",
    )
    try:
        if address is None:
            ray.init(
                address="local",
                include_dashboard=False,
                logging_level="ERROR",
                log_to_driver=False,
                _node_ip_address="127.0.0.1",
            )
        else:
            ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError...
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        hint = (
            ""
            if address is None
            else (
                " (a cluster with token auth also needs its token: RAY_AUTH_TOKEN, or "
                "~/.ray/auth_token)"
            )
        )
        raise MnistTuiError(f"cannot connect to {where}: {first_line(exc)}{hint}") from None
    finally:
        timer.cancel()


def check_shared_store(
    ray: Any, store_root: Path, address: str | None, nodes: list[dict[str, Any]]
) -> None:
    """Refuse a store some node cannot see: every node must read and write it."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    root = store_root
    probe = root / PROBE_DIR
    token = secrets.token_hex(8)
    probe.mkdir(parents=True, exist_ok=True)
    (probe / f"{token}.driver").write_text(token, encoding="utf-8")
    task = ray.remote(probe_task)
    refs = {
        n["NodeID"]: task.options(
            num_cpus=0,
            max_retries=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False),
        ).remote(str(root), token)
        for n in nodes
    }
    hosts = {
        n["NodeID"]: n.get("NodeManagerHostname") or n.get("NodeManagerAddress") for n in nodes
    }
    _, late = ray.wait(list(refs.values()), num_returns=len(refs), timeout=PROBE_TIMEOUT)
    problems = []
    try:
        for node_id, ref in refs.items():
            name = f"node {hosts[node_id]} ({node_id[:8]})"
            if ref in late:
                ray.cancel(ref, force=True)
                problems.append(f"{name} did not answer within {PROBE_TIMEOUT:g} s")
                continue
            try:
                found = ray.get(ref)
            except Exception as exc:
                problems.append(f"{name}: the probe failed: {first_line(exc)}")
                continue
            read, wrote = found["read"], found["write"]
            seen_here = probe / f"{token}.{node_id}"
            try:
                back = seen_here.read_text(encoding="utf-8") == f"{token} {node_id}"
            except OSError:
                back = False
            if read == "ok" and wrote == "ok" and back:
                continue
            what = {
                "missing": f"{root} is there but without the token this worker just wrote",
                "no store": f"there is no {root}",
            }.get(read, f"the token file {read}" if read != "ok" else "it read the token")
            if wrote != "ok":
                what += f"; writing a file into {PROBE_DIR} there failed ({wrote})"
            elif not back:
                what += "; what it wrote there does not appear here"
            problems.append(f"on {name} {what}")
    finally:
        for f in probe.glob(f"{token}.*"):
            with contextlib.suppress(OSError):
                f.unlink()
        with contextlib.suppress(OSError):
            probe.rmdir()  # unless another worker's probe is in it
    if problems:
        raise StoreNotShared(
            f"the run store {root} is not shared with the Ray cluster at "
            f"{address or 'this machine'}: " + "; ".join(problems) + ". Every node "
            "must see the store at the same path (a shared file system mounted there); "
            "pass it with --runs-dir (docs/scaling.md)"
        )
