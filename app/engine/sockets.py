"""What both of andon's HTTP servers (the engine's, app/engine/server.py, and `andon serve`'s,
app/serve/http.py) ask of a client's connection while they stream a reply."""

from __future__ import annotations

import select
import socket


def connection_gone(connection: socket.socket) -> bool:
    """Whether the client closed its connection (its request was read whole: an end of stream is
    all that can be readable now); a connection that cannot be asked is gone too."""
    try:
        readable, _, _ = select.select([connection], [], [], 0)
        return bool(readable) and connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (OSError, ValueError):
        return True
