"""Start and stop the server: what `andon serve` runs (app/cli/serve.py parses its arguments)."""

from __future__ import annotations

import errno
import time

from andon.app.errors import UsageError
from andon.app.serve.answers import Service
from andon.app.serve.catalog import Catalog
from andon.app.serve.engines import Pool, StartEngine
from andon.app.serve.http import MAX_BODY, ServeServer, is_loopback

DEFAULT_PORT = 11435  # Ollama's is 11434: both can run side by side


def make_server(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    api_key: str = "",
    max_body: int = MAX_BODY,
    start: StartEngine | None = None,
) -> ServeServer:
    """The server, bound and ready for `serve_forever`; UsageError (one line) where the address is
    taken or cannot be used. `start` makes an engine (tests pass their own)."""
    pool = Pool(start) if start is not None else Pool()
    service = Service(Catalog(), pool, api_key, time.time())
    try:
        return ServeServer(host, port, service, max_body)
    except OSError as exc:
        pool.close()
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(
                f"port {port} on {host} is in use (another andon serve?); choose another with --port"
            ) from None
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def warning_for(host: str) -> str | None:
    """The line said when the server listens where other machines can reach it."""
    if is_loopback(host):
        return None
    return (
        f"listening on {host}: other machines on the network can reach andon serve"
        " (set --api-key or ANDON_API_KEY to require a key)"
    )


def close(server: ServeServer) -> None:
    server.server_close()
    server.service.pool.close()
