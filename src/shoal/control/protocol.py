"""What travels over the control socket: one JSON request line, one JSON answer line.

Owns: the socket's path and the (de)serialization of sync reports. Kept import-light on purpose: the
CLI side of ``shoal sync`` loads only this module when a daemon is running.
"""

from __future__ import annotations

import json
import os
import socket

TYPE_CHECKING = False  # (not typing's: importing typing is a tenth of this command's start-up)
if TYPE_CHECKING:
    from typing import Any

SOCKET_NAME = "control.sock"
TIMEOUT_S = 3600.0


def socket_path(state_dir: str) -> str:
    return os.path.join(state_dir, SOCKET_NAME)


def call(state_dir: str, request: dict[str, Any], timeout_s: float = TIMEOUT_S) -> dict[str, Any] | None:
    """Ask the daemon of ``state_dir``: its answer, {} if it went away before answering in full, or None
    when no daemon listens there (the caller works alone)."""
    path = socket_path(state_dir)
    if not os.path.exists(path):
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(2.0)
        try:
            sock.connect(path)
        except OSError:
            return None  # a stale socket from a daemon that is gone
        sock.settimeout(timeout_s)
        chunks = []
        try:
            sock.sendall(json.dumps(request).encode() + b"\n")
            while chunk := sock.recv(1 << 16):
                chunks.append(chunk)
        except OSError:  # the daemon went away mid-request (or never answered): no answer
            return {}
    finally:
        sock.close()
    try:
        answer: dict[str, Any] = json.loads(b"".join(chunks) or b"{}")
    except ValueError:  # cut short
        return {}
    return answer
