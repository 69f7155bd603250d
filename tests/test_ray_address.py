"""A worker pointed at an address where something other than Ray listens says what
answered, at once, instead of waiting out its connect watchdog."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mnist_tui.runs.ray_probe import describe_answer, probe

pytest.importorskip("ray")


@contextmanager
def tcp_server(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """A plain TCP server on 127.0.0.1 that runs `handle` on each connection; its port."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    stop = threading.Event()
    conns: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conns.append(conn)
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(srv.getsockname()[1])
    finally:
        stop.set()
        thread.join(timeout=5)
        srv.close()
        for c in conns:
            c.close()


def http(conn: socket.socket) -> None:
    conn.recv(1024)
    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")


def ssh_banner(conn: socket.socket) -> None:
    conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")


def closes(conn: socket.socket) -> None:
    conn.close()


def silent(conn: socket.socket) -> None:
    time.sleep(30)


def escapes(conn: socket.socket) -> None:
    conn.sendall(b"\x1b]52;c;aGk=\x07\x1b[2J hello\r\n")


WORKER = [sys.executable, "-m", "mnist_tui", "worker", "--backend", "ray"]
CASES = [
    (http, "'HTTP/1.1 400 Bad Request'"),
    (ssh_banner, "'SSH-2.0-OpenSSH_9.6'"),
    (closes, "closed them without an answer"),
    (silent, "said nothing within"),
    (escapes, "\\x1b]52;c;aGk=\\x07\\x1b[2J hello"),
]


@pytest.mark.parametrize(("handle", "said"), CASES, ids=[h.__name__ for h, _ in CASES])
def test_probe_names_what_answered(handle: Callable[[socket.socket], None], said: str) -> None:
    with tcp_server(handle) as port:
        start = time.monotonic()
        why = probe("127.0.0.1", port)
        assert why is not None and said in why, why
        assert "\x1b" not in why
        assert time.monotonic() - start < 10


def test_probe_accepts_a_grpc_server_and_reports_a_closed_port() -> None:
    grpc = pytest.importorskip("grpc")
    from concurrent import futures

    server = grpc.server(futures.ThreadPoolExecutor(1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        assert probe("127.0.0.1", port) is None  # Ray's head speaks gRPC
    finally:
        server.stop(0)
    assert probe("127.0.0.1", port) == os.strerror(111)
    assert describe_answer(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00") is None


@pytest.mark.parametrize(("handle", "said"), CASES[:3], ids=[h.__name__ for h, _ in CASES[:3]])
def test_worker_at_a_port_where_ray_does_not_listen_says_what_answered(
    tmp_path: Path, handle: Callable[[socket.socket], None], said: str
) -> None:
    runs = tmp_path / "runs"
    with tcp_server(handle) as port:
        start = time.monotonic()
        out = subprocess.run(
            [*WORKER, "--address", f"127.0.0.1:{port}", "--runs-dir", str(runs)],
            env={**os.environ, "COLUMNS": "400"},
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        took = time.monotonic() - start
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    assert f"127.0.0.1:{port}" in out.stderr and said in out.stderr, out.stderr
    assert took < 60  # not the 120 s connect watchdog
