"""A running `andon serve`'s engine, used by the app as its own (`andon --server [URL]`).

`ServerEngine` speaks the engine protocol (client.py's EngineConnection) to the server's TCP
address instead of an engine's Unix socket: the server forwards `/api/chat` with andon's additions
and the `/andon/...` routes to the engine of the model named in each request (app/serve/andon_api.py),
so two apps on one server share one loaded model. The model is named as `andon models` names it;
the model options (num_ctx, num_gpu, num_thread, num_batch) travel with every request, so the
server loads the model as the app asked. Closing it leaves the model loaded on the server (other
clients may use it: the server unloads it after its keep_alive). An engine that dies is the
server's: one line says so, and the server starts a new one at the next message.
"""

from __future__ import annotations

import http.client
import os
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

from andon.app.engine.client import EngineConnection, EngineDied
from andon.app.engine.generation import CancelCheck, Event
from andon.app.engine.loading import ModelLoadError, ModelOptions
from andon.app.engine.prompt import Message
from andon.presets.parameters import Parameters

DEFAULT_URL = "http://127.0.0.1:11435"  # andon serve's default address (app/serve/run.py's DEFAULT_PORT)
API_KEY_ENV = "ANDON_API_KEY"  # sent as a bearer token where set, as `andon serve --api-key` asks


def server_address(url: str) -> tuple[str, int]:
    """host and port of an http:// URL (ValueError, one line, for anything else)."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"--server: {url!r} is not allowed (an http://HOST:PORT address of andon serve)")
    try:
        return parts.hostname, parts.port or 80
    except ValueError:
        raise ValueError(f"--server: {url!r} has no valid port (1-65535)") from None


class ServerEngine(EngineConnection):
    """The engine of model `name` on the andon serve at `url`, loaded with `options` (ModelLoadError
    where the server cannot be reached or cannot load it)."""

    def __init__(self, url: str, options: ModelOptions, name: str) -> None:
        if options.rpc:
            raise ModelLoadError("rpc: not with --server (the server's machine chooses its RPC servers)")
        self.url, self.options, self.name = url.rstrip("/"), options, name
        self._host, self._port = server_address(url)
        self._dead = False
        super().__init__("", {})
        try:
            props = self._call("/andon/props", {})
        except EngineDied as exc:
            raise ModelLoadError(str(exc)) from None
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"andon serve at {self.url}: {exc}") from None
        self.props = props
        self.model_name: str = props["model_name"]
        self.n_ctx: int = props["n_ctx"]
        self.n_vocab: int = props["n_vocab"]
        self.pid: int = props["pid"]

    def _connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self._host, self._port)

    def _headers(self) -> dict[str, str]:
        key = os.environ.get(API_KEY_ENV, "")
        return super()._headers() | ({"Authorization": f"Bearer {key}"} if key else {})

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> http.client.HTTPResponse:
        """Each request names the model and carries the model options (rpc is the server's own)."""
        body = dict(body or {})
        options = {k: v for k, v in body.get("options", {}).items() if k != "rpc"}
        o = self.options
        body["options"] = options | {"num_ctx": o.num_ctx, "num_gpu": o.num_gpu, "num_thread": o.num_thread,
                                     "num_batch": o.num_batch}  # fmt: skip
        body["model"] = self.name
        body.setdefault("andon", {})
        return super()._request(method, path, body)

    def stream(
        self, messages: Sequence[Message], params: Parameters, cancelled: CancelCheck | None = None,
        *, prompt: Sequence[int] | None = None, logprobs: int | None = None, samples: int | None = None,
    ) -> Iterator[Event]:  # fmt: skip
        """As EngineConnection.stream; a failure the server reports mid-reply is its engine's end."""
        try:
            yield from super().stream(messages, params, cancelled, prompt=prompt, logprobs=logprobs, samples=samples)
        except RuntimeError as exc:
            if isinstance(exc, EngineDied):
                raise
            raise self.died(str(exc)) from None

    def died(self, why: str = "") -> EngineDied:
        """The server or its engine stopped answering: the next message asks the server again."""
        self._dead = True
        return EngineDied(f"andon serve ({self.url}): {why or 'the connection closed (is the server running?)'}")

    def alive(self) -> bool:
        return not self._dead

    def close(self) -> None:
        """Nothing to end here: the model stays loaded on the server for its other clients."""
