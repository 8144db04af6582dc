"""The engine process: one loaded model, its KV-cached context and the whole chain, served over HTTP.

The app and the CLI commands that generate start this process (`EngineProcess` in
client.py) and talk to it through one protocol: HTTP/1.1 on a Unix socket only they can
reach, in the shape of Ollama's API (`POST /api/chat` streams NDJSON: `message.content` and
`message.thinking` deltas, then a line with `done: true`, `done_reason` and the counts), each line
carrying what andon adds under `andon` (notices, usage, seed, the reply's tokens). What Ollama has
no route for is named as llama-server names it or under `/andon/`: `/tokenize`, `/props`,
`/andon/chat_tokens`, `/andon/token_texts`, `/andon/inspect`, `/andon/cancel`. `andon.samples` N in
a chat's body asks for N replies drawn together (Engine.stream's `samples`: a sweep's cell). A reply ends
"cancelled" when its client asks (`/andon/cancel` with the id it gave) or goes away; both are
checked between prompt blocks and between tokens.

Start-up talks on standard output, one JSON object a line: `{"progress": f}` while the weights load,
then `{"ready": PROPS}` once the socket listens, or `{"error": LINE, "kind": NAME}` where the model
cannot be loaded. Anything llama.cpp prints goes to standard error, which the parent keeps in its
log. The process ends when its standard input closes (the parent is gone), on SIGTERM, or when the
parent kills it; an abort inside llama.cpp ends only this process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socketserver
import sys
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import IO, Any, cast

from andon.app.engine import rpc
from andon.app.engine.context import KVContext
from andon.app.engine.engine import ContextFullError, Delta, Engine, Event, ModelLoadError, ModelOptions, ReplyNotice
from andon.app.engine.scheduler import Slots, SlotWaitCancelled
from andon.app.engine.sockets import connection_gone
from andon.presets.parameters import ALL_SPECS, Parameters

SOCKET_FOLDER_PREFIX = "andon-engine-"  # the private folder EngineProcess makes for the socket
MAX_BODY = 64 * 1024 * 1024  # a request's body: a long chat fits many times over


class RequestError(ValueError):
    """A request that cannot be served as it is: HTTP 400 with one line."""


def event_line(event: Event, model: str) -> dict[str, Any]:
    """One NDJSON line of a streamed reply, in Ollama's /api/chat shape with andon's additions."""
    line: dict[str, Any] = {"model": model, "created_at": _now()}
    if isinstance(event, Delta):
        line["message"] = {"role": "assistant", "content": event.text, "thinking": event.thinking}
        line["done"] = False
        line["andon"] = {"completion_tokens": event.completion_tokens, "seconds": event.seconds}
        if event.logprobs:
            line["andon"]["logprobs"] = event.logprobs
    elif isinstance(event, ReplyNotice):
        line["message"] = {"role": "assistant", "content": ""}
        line["done"] = False
        line["andon"] = {"notice": event.text}
    else:
        u = event.usage
        line["message"] = {"role": "assistant", "content": ""}
        line |= {
            "done": True,
            "done_reason": event.finish_reason,
            "total_duration": int(u.total_s * 1e9),
            "prompt_eval_count": u.prompt_eval_tokens,
            "prompt_eval_duration": int(u.ttft_s * 1e9),
            "eval_count": u.completion_tokens,
            "eval_duration": int(u.completion_tokens / u.tokens_per_second * 1e9) if u.tokens_per_second else 0,
            "andon": {
                "text": event.text,
                "thinking": event.thinking,
                "usage": asdict(u),
                "seed": event.seed,
                "dropped_turns": event.dropped_turns,
                "tokens": event.tokens,
                "candidates": event.candidates,
                "logprobs": event.logprobs,
            },
        }
    return line


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class EngineService:
    """The routes over one Engine. With `parallel` > 1, replies run together in that many slots
    (scheduler.py), decoded in one batch; what needs the engine's own context (speculative decoding,
    beams, MBR, the inspector, perplexity) runs alone once they end. With 1, one request at a time
    uses the engine's own context (the app's and `andon ask`'s engine: its KV cache is the chat's)."""

    def __init__(self, engine: Engine, parallel: int = 1) -> None:
        self.engine = engine
        self.lock = threading.Lock()
        self.slots = Slots(engine.llm, parallel, engine.n_ctx) if parallel > 1 and not engine.options.rpc else None
        self.cancels: dict[str, threading.Event] = {}
        self._cancels_lock = threading.Lock()

    def props(self) -> dict[str, Any]:
        e = self.engine
        return {"model_name": e.model_name, "n_ctx": e.n_ctx, "n_vocab": e.n_vocab, "pid": os.getpid()}

    # --- routes answered with one JSON object -------------------------------------------------------

    # Tokenizing reads only the vocabulary and the chat template, never the context: these answer
    # while a reply streams (the app counts a chat's tokens and names a reply's tokens meanwhile).

    def tokenize(self, body: dict[str, Any]) -> dict[str, Any]:
        text = _field(body, "content", str)
        special, bos = bool(body.get("parse_special", True)), bool(body.get("add_special", False))
        return {"tokens": self.engine.tokenize(text, special=special, add_bos=bos)}

    def chat_tokens(self, body: dict[str, Any]) -> dict[str, Any]:
        think = ALL_SPECS["think"].validate(body.get("think", True))  # true, false or a level
        return {"tokens": self.engine.chat_tokens(_messages(body), think)}

    def token_texts(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"texts": self.engine.token_texts(_tokens(body, "tokens", self.engine.n_vocab))}

    def inspect(self, body: dict[str, Any]) -> dict[str, Any]:
        tokens, reply = _tokens(body, "tokens", self.engine.n_vocab), _tokens(body, "reply", self.engine.n_vocab)
        params = _parameters(body)
        top = int(body.get("top", 10))
        temperatures = [float(t) for t in body.get("temperatures", [])]
        with self._alone():
            return self.engine.inspect(tokens, params, top, temperatures, reply).to_wire()

    def perplexity(self, body: dict[str, Any]) -> dict[str, Any]:
        tokens, n_ctx = _tokens(body, "tokens", self.engine.n_vocab), _field(body, "n_ctx", int)
        with self._alone():
            return self.engine.perplexity(tokens, n_ctx).to_json()

    def cancel(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._cancels_lock:
            event = self.cancels.get(str(body.get("id", "")))
        if event is not None:
            event.set()
        return {"cancelled": event is not None}

    # --- the streamed reply -------------------------------------------------------------------------

    def chat(self, body: dict[str, Any], gone: Callable[[], bool]) -> Generator[dict[str, Any]]:
        """The reply's lines; the first is pulled before the response starts, so a refusal (a bad
        grammar, a chat template that fails) is still an HTTP error."""
        messages, params = _messages(body), _parameters(body)
        extra: dict[str, Any] = body["andon"] if isinstance(body.get("andon"), dict) else {}
        rid = str(extra.get("id", ""))
        prompt = _tokens(extra, "prompt", self.engine.n_vocab) if "prompt" in extra else None  # raw: no template
        logprobs = _field(extra, "logprobs", int) if "logprobs" in extra else None
        samples = _field(extra, "samples", int) if "samples" in extra else None  # N replies drawn together
        stop = threading.Event()
        if rid:
            with self._cancels_lock:
                self.cancels[rid] = stop

        def cancelled() -> bool:
            return stop.is_set() or gone()

        model = self.engine.model_name
        try:
            if self.slots is not None and samples is None and _batched(params):
                yield from self._in_slot(messages, params, cancelled, prompt, logprobs)
                return
            with self._alone():
                for event in self.engine.stream(messages, params, cancelled=cancelled, prompt=prompt,
                                                logprobs=logprobs, samples=samples):  # fmt: skip
                    yield event_line(event, model)
        finally:
            if rid:
                with self._cancels_lock:
                    self.cancels.pop(rid, None)

    def _in_slot(self, messages: list[Any], params: Parameters, cancelled: Callable[[], bool],
                 prompt: list[int] | None, logprobs: int | None) -> Generator[dict[str, Any]]:  # fmt: skip
        """The reply in the slot that holds the longest prefix of its prompt, decoded with the others."""
        assert self.slots is not None
        model = self.engine.model_name
        tokens = prompt if prompt is not None else self.engine.chat_tokens(messages, params.think)
        try:
            with self.slots.take(tokens, cancelled) as context:
                for event in self.engine.stream(messages, params, cancelled=cancelled, prompt=prompt,
                                                logprobs=logprobs, context=cast(KVContext, context)):  # fmt: skip
                    yield event_line(event, model)
        except SlotWaitCancelled:
            return  # its client left while it waited: nobody to answer

    @contextlib.contextmanager
    def _alone(self) -> Generator[None]:
        """The engine's own context, for one request at a time (and no slot's reply meanwhile)."""
        with self.slots.exclusive() if self.slots is not None else contextlib.nullcontext(), self.lock:
            yield


def _batched(params: Parameters) -> bool:
    """Whether a reply can run in a slot: one sequence, no draft model beside it."""
    return not params.draft.strip() and params.num_beams <= 1 and params.mbr_samples <= 0


def _field(body: dict[str, Any], name: str, kind: type) -> Any:
    value = body.get(name)
    if not isinstance(value, kind):
        raise RequestError(f"{name}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def _tokens(body: dict[str, Any], name: str, n_vocab: int) -> list[int]:
    """Token ids of this model (one past the vocabulary would read outside llama.cpp's tables)."""
    value = body.get(name, [])
    if not isinstance(value, list) or not all(
        isinstance(t, int) and not isinstance(t, bool) and 0 <= t < n_vocab for t in value
    ):
        raise RequestError(f"{name}: expected a list of token ids from 0 to {n_vocab - 1}")
    return value


def _messages(body: dict[str, Any]) -> list[Any]:
    messages = body.get("messages", [])
    ok = isinstance(messages, list) and all(
        isinstance(m, dict)
        and m.get("role") in ("system", "user", "assistant")
        and isinstance(m.get("content", ""), str)
        for m in messages
    )
    if not ok:
        raise RequestError("messages: expected a list of {role: system|user|assistant, content: text}")
    return [{"role": m["role"], "content": m.get("content", "")} for m in messages]


def _parameters(body: dict[str, Any]) -> Parameters:
    options = body.get("options", {})
    if not isinstance(options, dict):
        raise RequestError("options: expected an object of parameters")
    return Parameters.of(options)  # ParameterError (a ValueError): one line, HTTP 400


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: EngineHTTPServer

    def do_GET(self) -> None:
        service = self.server.service
        routes: dict[str, Callable[[], dict[str, Any]]] = {
            "/props": service.props,
            "/api/version": lambda: {"version": _version()},
        }
        route = routes.get(self.path)
        if route is None:
            self._send(404, {"error": f"no route {self.path}"})
        else:
            self._send(200, route())

    def do_POST(self) -> None:
        try:
            self._post()
        finally:
            if rpc.lost():  # the faulted model cannot be freed here: the process ends, its memory returns
                self.wfile.flush()
                _exit(self.server.server_address if isinstance(self.server.server_address, str) else "")

    def _post(self) -> None:
        service = self.server.service
        try:
            body = self._body()
            if self.path == "/api/chat":
                return self._stream(service.chat(body, self._gone))
            routes: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
                "/tokenize": service.tokenize,
                "/andon/chat_tokens": service.chat_tokens,
                "/andon/token_texts": service.token_texts,
                "/andon/inspect": service.inspect,
                "/andon/perplexity": service.perplexity,
                "/andon/cancel": service.cancel,
            }
            route = routes.get(self.path)
            if route is None:
                return self._send(404, {"error": f"no route {self.path}"})
            self._send(200, route(body))
        except Exception as exc:
            self._fail(exc)

    def _stream(self, lines: Generator[dict[str, Any]]) -> None:
        try:
            first = next(lines)
        except StopIteration:
            first = None
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            if first is not None:
                self._chunk(first)
                for line in lines:
                    self._chunk(line)
        except (BrokenPipeError, ConnectionResetError):
            lines.close()  # the client went away: the reply ends (its `gone` check says so too)
            self.close_connection = True
            return
        except Exception as exc:
            self._chunk({"error": _message(exc), "kind": _kind(exc)})
        self.wfile.write(b"0\r\n\r\n")

    def _chunk(self, line: dict[str, Any]) -> None:
        data = json.dumps(line, ensure_ascii=False).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _gone(self) -> bool:
        return connection_gone(self.connection)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise RequestError(f"the request is {length} bytes; at most {MAX_BODY}")
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise RequestError(f"the request is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise RequestError("the request must be a JSON object")
        return body

    def _fail(self, exc: Exception) -> None:
        self._send(400 if _users(exc) else 500, {"error": _message(exc), "kind": _kind(exc)})

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def address_string(self) -> str:
        return "engine-client"  # a Unix socket's peer has no address

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a request log would fill the log file with one line per request


def _users(exc: BaseException) -> bool:
    """Whether the error says what is wrong with the request (its line is written for the user: a
    ValueError, a model that cannot be loaded, a chat past num_ctx), not with andon. Its class name
    crosses too, so the client raises the same class (client.py)."""
    return isinstance(exc, ValueError | ModelLoadError | ContextFullError)


def _kind(exc: BaseException) -> str:
    return type(exc).__name__


def _message(exc: BaseException) -> str:
    return str(exc) if _users(exc) else f"{type(exc).__name__}: {exc}"


def _version() -> str:
    from andon import __version__

    return __version__


class EngineHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, service: EngineService) -> None:
        self.service = service
        super().__init__(path, Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-reply (the app stopped reading, a server's client left) is
        not an error of the engine's: nothing is written. Anything else is, as socketserver writes it."""
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


# --- the process --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="andon-engine")
    ap.add_argument("--socket", required=True)
    ap.add_argument("--options", required=True, help="the model options as JSON")
    ap.add_argument("--parallel", type=int, default=1, help="replies decoded together (andon serve's slots)")
    args = ap.parse_args(argv)
    out = _protocol_stream()
    signal.signal(signal.SIGTERM, lambda *_: _exit(args.socket))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C in the terminal is the client's to handle
    threading.Thread(target=_exit_with_parent, args=(args.socket,), daemon=True).start()

    def say(message: dict[str, Any]) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    try:
        options = _options(json.loads(args.options), lambda f: say({"progress": round(f, 4)}))
        engine = Engine(options)
    except ModelLoadError as exc:
        say({"error": str(exc), "kind": _kind(exc)})
        return 0
    except Exception as exc:
        say({"error": f"could not load the model: {_kind(exc)}: {exc}", "kind": "ModelLoadError"})
        return 0
    service = EngineService(engine, args.parallel)
    server = EngineHTTPServer(args.socket, service)
    say({"ready": service.props()})
    server.serve_forever(poll_interval=0.5)
    return 0


def _options(data: dict[str, Any], progress: Callable[[float], None]) -> ModelOptions:
    return ModelOptions(
        path=Path(data["path"]),
        num_ctx=int(data["num_ctx"]),
        num_gpu=int(data["num_gpu"]),
        num_thread=int(data["num_thread"]),
        num_batch=int(data["num_batch"]),
        verbose=bool(data["verbose"]),
        rpc=tuple(data["rpc"]),
        flash_attn=bool(data["flash_attn"]),
        progress=progress,
    )


def options_json(options: ModelOptions) -> str:
    """`options` as `--options` takes them (the progress callback stays with the client)."""
    return json.dumps(
        {
            "path": str(options.path),
            "num_ctx": options.num_ctx,
            "num_gpu": options.num_gpu,
            "num_thread": options.num_thread,
            "num_batch": options.num_batch,
            "verbose": options.verbose,
            "rpc": list(options.rpc),
            "flash_attn": options.flash_attn,
        }
    )


def _protocol_stream() -> IO[str]:
    """Standard output kept for the protocol's lines; file descriptor 1 then points at standard
    error, so whatever else writes there (llama.cpp, a library) cannot break a line."""
    fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(fd, "w", encoding="utf-8")


def _exit_with_parent(path: str) -> None:
    """Standard input is a pipe the parent holds open: its end means the parent is gone."""
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except (OSError, ValueError):
        pass
    _exit(path)


def _exit(path: str) -> None:
    """End at once (a reply may be running: nothing of it needs saving here), leaving no socket
    behind, nor the private folder the client made for it."""
    folder = os.path.dirname(path)
    with contextlib.suppress(OSError):
        os.unlink(path)
    if os.path.basename(folder).startswith(SOCKET_FOLDER_PREFIX):
        with contextlib.suppress(OSError):
            os.rmdir(folder)
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
