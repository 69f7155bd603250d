"""What answers at a Ray address, before `ray.init` is trusted with it.

`ray.init(address=HOST:PORT)` against a port where something other than Ray listens (a web
server, SSH, a database) retries inside Ray's C++ code for minutes, and only the worker's
watchdog ends it. Ray's head (the GCS) speaks gRPC, that is HTTP/2 without TLS: sent the
HTTP/2 client preface, it answers at once with a SETTINGS frame. Anything else is named
by what it said, at once.
"""

from __future__ import annotations

import os
import socket

# the HTTP/2 client connection preface, then an empty SETTINGS frame (RFC 9113, 3.4)
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
SETTINGS = 0x04
ANSWER_TIMEOUT = 5.0  # a gRPC server answers the preface in milliseconds


def _shown(data: bytes) -> str:
    """The first bytes of an answer, printable: control bytes as \\xNN, never raw."""
    text = data[:60].decode("latin-1")
    out = "".join(c if " " <= c <= "~" else f"\\x{ord(c):02x}" for c in text)
    return out + ("…" if len(data) > 60 else "")


def describe_answer(data: bytes | None) -> str | None:
    """None if `data` is how a gRPC (HTTP/2) server answers the preface; else what it was.
    `data` None: nothing came within the timeout."""
    if data is None:
        return (
            f"something accepts connections there but said nothing within {ANSWER_TIMEOUT:g} s;"
            " a Ray head answers at once"
        )
    if not data:
        return "something accepts connections there but closed them without an answer"
    if len(data) >= 9 and data[3] == SETTINGS:
        return None
    if data[:1] == b"\x15" and data[1:2] == b"\x03":
        return "a TLS server answers there, not Ray's gRPC (for Ray with TLS set RAY_USE_TLS=1)"
    first = data.split(b"\r\n", 1)[0].split(b"\n", 1)[0] or data
    return f"something other than Ray answers there: '{_shown(first)}'"


def probe(host: str, port: int, connect_timeout: float = 10.0) -> str | None:
    """Why HOST:PORT is not a Ray head (nothing listens, or what answered instead); None
    when it answers as Ray's gRPC server does."""
    try:
        sock = socket.create_connection((host, port), timeout=connect_timeout)
    except OSError as exc:
        return exc.strerror or str(exc) or type(exc).__name__
    with sock:
        if os.environ.get("RAY_USE_TLS", "").lower() in ("1", "true"):
            return None  # TLS: Ray's own handshake tells
        data: bytes | None
        try:
            sock.settimeout(ANSWER_TIMEOUT)
            sock.sendall(PREFACE)
            data = sock.recv(256)
        except TimeoutError:
            data = None
        except OSError:
            data = b""  # reset on our preface: closed without an answer
    return describe_answer(data)
