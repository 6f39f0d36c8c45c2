"""Messages between a `planner` command and a resident worker: length-prefixed JSON over a Unix
socket, with the command's stdin, stdout and stderr passed along as file descriptors.

The exchange:
    worker -> command   {"pid", "key"}                     on accepting (the worker is free)
    command -> worker   {"op": "run", "argv", "cwd", "env", "streams", "started"} + fds 0, 1, 2
                        {"op": "status"} | {"op": "stop"}
    worker -> command   {"exit": code} after the run | the status | {"stopping": true}
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
from typing import Any

_HEADER = struct.Struct("!I")
MAX_MESSAGE = 16 << 20  # an environment and argument list, never near this
INTERNAL_ERROR = 3  # `planner`'s exit code for an internal error (planner.cli.INTERNAL_ERROR)


class ProtocolError(Exception):
    """The other side closed the connection or sent something that is not a message."""


def send(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    body = json.dumps(message, separators=(",", ":")).encode()
    data = _HEADER.pack(len(body)) + body
    if fds:
        sent = socket.send_fds(sock, [data], fds)
        if sent < len(data):
            sock.sendall(data[sent:])
    else:
        sock.sendall(data)


def receive(sock: socket.socket, max_fds: int = 0) -> tuple[dict[str, Any], list[int]]:
    """One message and the descriptors that came with it (the caller owns and closes them)."""
    fds: list[int] = []
    if max_fds:
        data, fds, _flags, _addr = socket.recv_fds(sock, _HEADER.size, max_fds)
    else:
        data = sock.recv(_HEADER.size)
    try:
        data += _exactly(sock, _HEADER.size - len(data)) if data else b""
        if len(data) < _HEADER.size:
            raise ProtocolError("connection closed")
        (size,) = _HEADER.unpack(data)
        if size > MAX_MESSAGE:
            raise ProtocolError(f"message of {size} bytes")
        message = json.loads(_exactly(sock, size))
        if not isinstance(message, dict):
            raise ProtocolError("not a JSON object")
    except (ProtocolError, ValueError, OSError) as exc:
        for fd in fds:
            _close(fd)
        raise ProtocolError(str(exc)) from exc
    return message, fds


def _exactly(sock: socket.socket, size: int) -> bytes:
    chunks = []
    while size > 0:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            raise ProtocolError("connection closed")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _close(fd: int) -> None:
    import os

    with contextlib.suppress(OSError):
        os.close(fd)
