"""The HTTP server of `andon serve`: its checks come before any route, its errors are one line.

Every request is checked in this order: the Host header names the address the server listens on
(else 403: a web page cannot reach it through a DNS name of its own, CVE-2024-28224), an Origin
header is that address too (no CORS for other sites: a browser page elsewhere cannot use it),
the API key where one is set (401), the body's size (413) and its JSON (400). Errors are written
in each API's own shape: Ollama's `{"error": LINE}`, OpenAI's `{"error": {"message": LINE, ...}}`.
A client that goes away mid-reply ends its reply at once (the engine is told to cancel it).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import socket
import sys
from collections.abc import Callable
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from andon.app.engine.client import EngineDied
from andon.app.engine.sockets import connection_gone
from andon.app.errors import USER_ERRORS
from andon.app.serve import andon_api, ollama_api, openai_api
from andon.app.serve.answers import Answer, Service, Streamed
from andon.app.serve.catalog import UnknownModel
from andon.app.serve.engines import ClientGone

log = logging.getLogger("andon.serve")
MAX_BODY = 16 * 1024 * 1024  # a request's body: a long conversation fits many times over
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")

Route = Callable[[dict[str, Any], Callable[[], bool]], "Answer | Streamed"]


class HttpError(Exception):
    """A request refused before any route runs: its status and one line."""

    def __init__(self, status: int, line: str) -> None:
        super().__init__(line)
        self.status = status


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


class ServeServer(ThreadingHTTPServer):
    """Ollama's and OpenAI's APIs on one address (loopback unless told otherwise)."""

    daemon_threads = True

    def __init__(self, host: str, port: int, service: Service, max_body: int = MAX_BODY) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), Handler)
        self.service, self.max_body, self.host = service, max_body, host
        self.port: int = self.server_address[1]

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that failed outside any route (a client gone mid-write): one log line, no traceback."""
        exc = sys.exc_info()[1]
        log.info("connection from %s ended: %s", client_address, f"{type(exc).__name__}: {exc}")

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def host_allowed(self, netloc: str) -> bool:
        """Whether a Host header (or an Origin's host) names this server: a loopback name or the
        address it listens on, with its port; on a wildcard address (0.0.0.0, ::), any IP address."""
        host, _, port = netloc.lower().rpartition(":")
        if not host or port != str(self.port):
            return False
        own = f"[{self.host}]" if ":" in self.host else self.host
        wildcard = self.host in ("0.0.0.0", "::")
        return host in LOOPBACK_NAMES or host == own.lower() or (wildcard and _is_ip(host))

    def routes(self) -> dict[tuple[str, str], Route]:
        s = self.service

        def answer(make: Callable[[], dict[str, Any]]) -> Route:
            return lambda body, gone: Answer(make())

        def served(route: Callable[..., Answer | Streamed]) -> Route:
            return lambda body, gone: route(s, body, gone)

        table: dict[tuple[str, str], Route] = {
            ("GET", "/"): lambda body, gone: Answer("andon is running"),
            ("GET", "/api/version"): answer(ollama_api.version),
            ("GET", "/api/tags"): answer(lambda: ollama_api.tags(s)),
            ("GET", "/api/ps"): answer(lambda: ollama_api.ps(s)),
            ("POST", "/api/show"): lambda body, gone: Answer(ollama_api.show(s, body)),
            ("POST", "/api/chat"): served(andon_api.any_chat),
            ("POST", "/andon/cancel"): lambda body, gone: andon_api.cancel(body),
            **{("POST", p): partial(andon_api.engine_route, s, p) for p in andon_api.ENGINE_ROUTES},
            ("POST", "/api/generate"): served(ollama_api.generate),
            ("GET", "/v1/models"): answer(lambda: openai_api.models(s)),
            ("POST", "/v1/chat/completions"): served(openai_api.chat_completions),
            ("POST", "/v1/completions"): served(openai_api.completions),
        }
        return table


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ServeServer
    server_version = "andon"

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_OPTIONS(self) -> None:
        self._handle("OPTIONS")

    @property
    def _openai(self) -> bool:
        return self.path.startswith("/v1/")

    def _handle(self, method: str) -> None:
        path = urlsplit(self.path).path
        try:
            self._check()
            if method == "HEAD" or method == "OPTIONS":  # the ollama CLI's heartbeat; no CORS to offer
                return self._send(Answer("", 200), head=True)
            body = self._body() if method in ("POST", "DELETE", "PUT") else {}
            self._answer(self._route(method, path)(body, self._gone))
        except ClientGone:
            self.close_connection = True
        except Exception as exc:
            self._fail(exc)

    def _route(self, method: str, path: str) -> Route:
        route = self.server.routes().get((method, path))
        if route is not None:
            return route
        if path in ollama_api.OFFLINE:
            raise HttpError(501, ollama_api.OFFLINE[path])
        if path.startswith("/api/blobs/") or path == "/v1/embeddings":
            raise HttpError(501, "andon serve works offline and generates text: this route is not served")
        if method == "GET" and path.startswith("/v1/models/"):
            name = path.removeprefix("/v1/models/")
            return lambda body, gone: Answer(openai_api.model(self.server.service, name))
        if any(p == path for _, p in self.server.routes()):
            raise HttpError(405, f"{method} is not allowed on {path}")
        raise HttpError(404, f"no route {method} {path}")

    # --- the checks ---------------------------------------------------------------------------------

    def _check(self) -> None:
        host = self.headers.get("Host", "")
        if not self.server.host_allowed(host):
            raise HttpError(403, f"the Host header {host!r} does not name this server ({self.server.url})")
        origin = self.headers.get("Origin")
        if origin is not None and not self.server.host_allowed(urlsplit(origin).netloc):
            raise HttpError(403, f"requests from web pages at {origin!r} are not allowed (no cross-origin access)")
        key = self.server.service.api_key
        if key:
            given = self.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {key}".encode()):
                raise HttpError(401, "this server needs its API key: send the header Authorization: Bearer KEY")

    def _body(self) -> dict[str, Any]:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raise HttpError(411, "send the body with a Content-Length (chunked bodies are not read)")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise HttpError(400, "Content-Length: expected a number of bytes") from None
        if length > self.server.max_body:
            self.close_connection = True  # its body is not read
            raise HttpError(413, f"the request is {length} bytes; at most {self.server.max_body} are read")
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise HttpError(400, f"the request is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise HttpError(400, "the request must be a JSON object")
        return body

    def _gone(self) -> bool:
        return connection_gone(self.connection)

    # --- the answers --------------------------------------------------------------------------------

    def _answer(self, answer: Answer | Streamed) -> None:
        if isinstance(answer, Answer):
            return self._send(answer)
        items = answer.items
        try:
            first = next(items, None)  # an error before the reply's first item is still an HTTP error
        except BaseException:
            items.close()
            raise
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream" if answer.sse else "application/x-ndjson")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            if first is not None:
                self._item(first, answer.sse)
                for item in items:
                    self._item(item, answer.sse)
            if answer.sse:
                self._chunk(b"data: [DONE]\n\n")
        except (BrokenPipeError, ConnectionResetError):
            items.close()  # the client went away: its reply is cancelled in the engine
            self.close_connection = True
            return
        except Exception as exc:
            items.close()
            status, line = _status(exc)
            self._item(self._error_body(status, line), answer.sse)
        self._chunk(b"")

    def _item(self, item: dict[str, Any], sse: bool) -> None:
        data = json.dumps(item, ensure_ascii=False).encode()
        self._chunk(b"data: " + data + b"\n\n" if sse else data + b"\n")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _fail(self, exc: Exception) -> None:
        status, line = _status(exc)
        if status >= 500 and not isinstance(exc, HttpError):
            log.error("%s %s: %s", self.command, self.path, line, exc_info=not isinstance(exc, EngineDied))
        body = self._error_body(status, line)
        if not self._openai and not isinstance(exc, HttpError):
            body["kind"] = type(exc).__name__  # the engine protocol's: an andon client raises the same class
        try:
            self._send(Answer(body, status))
        except OSError:
            self.close_connection = True

    def _error_body(self, status: int, line: str) -> dict[str, Any]:
        if not self._openai:
            return {"error": line}
        kind = {401: "authentication_error", 403: "permission_error", 404: "not_found_error"}.get(status)
        kind = kind or ("invalid_request_error" if status < 500 else "server_error")
        return {"error": {"message": line, "type": kind, "param": None, "code": None}}

    def _send(self, answer: Answer, head: bool = False) -> None:
        text = isinstance(answer.body, str)
        data = answer.body.encode() if isinstance(answer.body, str) else json.dumps(answer.body).encode()
        self.send_response(answer.status)
        self.send_header("Content-Type", "text/plain; charset=utf-8" if text else "application/json")
        self.send_header("Content-Length", str(0 if head else len(data)))
        if answer.status == 401:
            self.send_header("WWW-Authenticate", "Bearer")
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)


def _status(exc: BaseException) -> tuple[int, str]:
    """An error's HTTP status and its one line (never a traceback)."""
    if isinstance(exc, HttpError):
        return exc.status, str(exc)
    if isinstance(exc, UnknownModel):
        return 404, str(exc)
    if isinstance(exc, (*USER_ERRORS, ValueError)):
        return 400, " ".join(str(exc).split())
    if isinstance(exc, EngineDied):
        return 500, str(exc)
    return 500, f"andon serve failed: {type(exc).__name__}: {' '.join(str(exc).split())}"
