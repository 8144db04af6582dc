"""The engine in a process of its own, as the app and the CLI use it (server.py serves it).

`EngineProcess(options)` starts `python -m andon.app.engine.server` on a Unix socket in a private
folder, waits for the model to load (its progress reaches `options.progress`), and then offers what
the app and the commands need of an engine: `stream` (the same events as `Engine.stream`),
`chat_tokens`, `tokenize`, `token_text(s)`, `inspect`. The process dying, whatever the cause (a
SIGKILL, a segfault, ggml's abort on a lost RPC server), is `EngineDied` with what it last wrote on
standard error; the app keeps what the reply had and starts a new process for the next message.
Closing it (or this process ending) ends the engine and returns all its memory.
"""

from __future__ import annotations

import collections
import contextlib
import http.client
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from andon.app.engine.generation import CancelCheck, Delta, Done, Event, ReplyNotice, Usage
from andon.app.engine.loading import ModelLoadError, ModelOptions
from andon.app.engine.prompt import Message
from andon.presets.parameters import Parameters

if TYPE_CHECKING:
    from andon.app.engine.inspection import Inspection
    from andon.app.engine.perplexity import Perplexity

log = logging.getLogger("andon.engine")
STDERR_KEPT = 40  # the engine's last lines of standard error, for the line that says why it stopped
REASON_S = 3.0  # the engine's last line is the reason it ended only if written this close to the end
LOG_NOISE = ("llama_", "load", "print_info", "ggml_", "graph_")  # llama.cpp's own progress lines
CANCEL_POLL_S = 0.05  # how often a streaming reply's `cancelled` is asked


class EngineLike(Protocol):
    """What the app and the commands need of an engine: `EngineProcess` (the engine in its own
    process), `Engine` itself (in this process: benchmarks, tests), or a test's fake."""

    n_ctx: int
    n_vocab: int
    options: ModelOptions
    pid: int  # the process the model is loaded in

    @property
    def model_name(self) -> str: ...

    def stream(
        self,
        messages: Sequence[Message],
        params: Parameters,
        cancelled: CancelCheck | None = None,
        *,
        prompt: Sequence[int] | None = None,
        logprobs: int | None = None,
        samples: int | None = None,
    ) -> Iterator[Event]: ...

    def chat_tokens(self, messages: Sequence[Message], think: bool | str = True) -> list[int]: ...

    def tokenize(self, text: str, *, special: bool = True, add_bos: bool = False) -> list[int]: ...

    def token_text(self, token: int) -> str: ...

    def token_texts(self, tokens: Sequence[int]) -> list[str]: ...

    def inspect(self, tokens: Sequence[int], params: Parameters, top: int = 10,
                temperatures: Sequence[float] = (), reply: Sequence[int] = ()) -> Inspection: ...  # fmt: skip

    def alive(self) -> bool:
        """False once the engine cannot answer any more (its process ended)."""
        ...

    def close(self) -> None: ...


class EngineDied(RuntimeError):
    """The engine process ended (killed, crashed, aborted): one line that says how; `said` holds
    what it last wrote on standard error, for a log."""

    def __init__(self, message: str, said: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.said = list(said)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None = None) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.timeout is not None:
            sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class EngineConnection:
    """The protocol's client side over one engine's socket (server.py's routes)."""

    def __init__(self, path: str, props: dict[str, Any]) -> None:
        self._socket, self.props = path, props
        self._texts: dict[int, str] = {}

    def died(self) -> EngineDied:
        """The error for an engine that no longer answers (EngineProcess says how its process ended)."""
        return EngineDied("the engine closed the connection")

    def _connection(self) -> http.client.HTTPConnection:
        """A new connection to the engine (its Unix socket; a server's engine: server.py's TCP address)."""
        return _UnixConnection(self._socket)

    def _headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json"}

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> http.client.HTTPResponse:
        connection = self._connection()
        data = json.dumps(body or {}).encode()
        try:
            connection.request(method, path, body=data, headers=self._headers())
            response = connection.getresponse()
        except (OSError, http.client.HTTPException):
            connection.close()
            raise self.died() from None
        if response.status != 200:
            try:
                error = json.loads(response.read())
            except (OSError, ValueError, http.client.HTTPException):
                raise self.died() from None
            finally:
                connection.close()
            raise _error(error)
        return response

    def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self._request("POST", path, body)
        try:
            return dict(json.loads(response.read()))
        except (OSError, ValueError, http.client.HTTPException):
            raise self.died() from None
        finally:
            response.close()

    def chat_tokens(self, messages: Sequence[Message], think: bool | str = True) -> list[int]:
        return list(self._call("/andon/chat_tokens", {"messages": list(messages), "think": think})["tokens"])

    def tokenize(self, text: str, *, special: bool = True, add_bos: bool = False) -> list[int]:
        body = {"content": text, "parse_special": special, "add_special": add_bos}
        return list(self._call("/tokenize", body)["tokens"])

    def token_texts(self, tokens: Sequence[int]) -> list[str]:
        """Each token's text for display (special tokens spelled out); kept, as they never change."""
        missing = [t for t in dict.fromkeys(tokens) if t not in self._texts]
        if missing:
            texts = self._call("/andon/token_texts", {"tokens": missing})["texts"]
            self._texts.update(zip(missing, texts, strict=True))
        return [self._texts[t] for t in tokens]

    def token_text(self, token: int) -> str:
        return self.token_texts([token])[0]

    def inspect(self, tokens: Sequence[int], params: Parameters, top: int = 10,
                temperatures: Sequence[float] = (), reply: Sequence[int] = ()) -> Inspection:  # fmt: skip
        from andon.app.engine.inspection import Inspection

        body = {"tokens": list(tokens), "options": params.to_plain(), "top": top,
                "temperatures": list(temperatures), "reply": list(reply)}  # fmt: skip
        return Inspection.from_wire(self._call("/andon/inspect", body))

    def perplexity(self, tokens: Sequence[int], n_ctx: int) -> Perplexity:
        """llama-perplexity's figure for a text's tokens in chunks of n_ctx (engine/perplexity.py)."""
        from andon.app.engine.perplexity import Perplexity

        return Perplexity(**self._call("/andon/perplexity", {"tokens": list(tokens), "n_ctx": n_ctx}))

    def stream(
        self, messages: Sequence[Message], params: Parameters, cancelled: CancelCheck | None = None,
        *, prompt: Sequence[int] | None = None, logprobs: int | None = None, samples: int | None = None,
    ) -> Iterator[Event]:  # fmt: skip
        """The reply's events, as Engine.stream yields them. `cancelled` is asked every 50 ms while
        the reply runs; once true, the engine ends the reply ("cancelled") between prompt blocks or
        tokens, and the Done that says so arrives as usual. EngineDied if the process ends first.
        `prompt`, `logprobs` and `samples` as Engine.stream takes them."""
        rid = uuid.uuid4().hex
        extra: dict[str, Any] = {"id": rid}
        if prompt is not None:
            extra["prompt"] = list(prompt)
        if logprobs is not None:
            extra["logprobs"] = logprobs
        if samples is not None:
            extra["samples"] = samples
        body = {"messages": list(messages), "options": params.to_plain(), "stream": True, "andon": extra}
        finished = threading.Event()
        if cancelled is not None:  # watched from the start: the answer's headers wait for its first line
            threading.Thread(target=self._watch, args=(rid, cancelled, finished), daemon=True).start()
        response: http.client.HTTPResponse | None = None
        try:
            response = self._request("POST", "/api/chat", body)
            yield from self._events(response)
        except BaseException:
            self._cancel(rid)  # Ctrl+C while reading, a consumer that stopped: the engine stops too
            raise
        finally:
            finished.set()
            if response is not None:
                response.close()

    def _events(self, response: http.client.HTTPResponse) -> Iterator[Event]:
        while True:
            try:
                raw = response.readline()
            except (OSError, http.client.HTTPException):
                raw = b""
            if not raw:
                raise self.died()
            line = json.loads(raw)
            if "error" in line:
                raise _error(line)
            event = _event(line)
            yield event
            if isinstance(event, Done):
                return

    def _watch(self, rid: str, cancelled: Callable[[], bool], finished: threading.Event) -> None:
        """Once `cancelled()`, tell the engine, again each poll until it knows the reply (a cancel
        may come before the engine has started it) and the reply ends."""
        while not finished.wait(CANCEL_POLL_S):
            if cancelled() and self._cancel(rid):
                return

    def _cancel(self, rid: str) -> bool:
        """Ask the engine to end reply `rid`; whether it was running there."""
        try:
            return bool(self._call("/andon/cancel", {"id": rid}).get("cancelled"))
        except (EngineDied, OSError):
            return True  # nothing more to stop


class EngineProcess(EngineConnection):
    """One model loaded in an engine process of its own, and the connection to it; the methods
    block until it answers."""

    def __init__(self, options: ModelOptions, show_log: bool | None = None, parallel: int = 1) -> None:
        """`show_log`: pass the engine's standard error (llama.cpp's log) on to this process's as it
        comes; by default where `options.verbose` asks for the log. `parallel`: replies decoded
        together in slots of their own (andon serve; app/engine/scheduler.py)."""
        from andon.app.engine.server import SOCKET_FOLDER_PREFIX, options_json

        self.options = options
        self._show_log = options.verbose if show_log is None else show_log
        self._folder = tempfile.mkdtemp(prefix=SOCKET_FOLDER_PREFIX)  # 0700: only this user reaches the socket
        self._socket = os.path.join(self._folder, "engine.sock")
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_KEPT)
        self._last_said = 0.0  # when the engine last wrote a line (time.monotonic)
        command = [sys.executable, "-m", "andon.app.engine.server", "--socket", self._socket,
                   "--options", options_json(options), "--parallel", str(parallel)]  # fmt: skip
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # Ctrl+C in the terminal reaches the app, which stops the reply
            env={**os.environ, "GGML_NO_BACKTRACE": "1"},  # an abort's own line is the last (no gdb attached)
        )
        self.pid = self.proc.pid
        self._stderr_reader = threading.Thread(target=self._keep_stderr, daemon=True)
        self._stderr_reader.start()
        try:
            props = self._wait_ready()
        except BaseException:
            self.close()
            raise
        super().__init__(self._socket, props)
        self.model_name: str = props["model_name"]
        self.n_ctx: int = props["n_ctx"]
        self.n_vocab: int = props["n_vocab"]

    # --- start and end ------------------------------------------------------------------------------

    def _wait_ready(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                message = json.loads(raw)
            except ValueError:
                continue
            if "progress" in message and self.options.progress is not None:
                self.options.progress(float(message["progress"]))
            elif "ready" in message:
                return dict(message["ready"])
            elif "error" in message:
                raise ModelLoadError(str(message["error"]))
        self.proc.wait()
        raise ModelLoadError(f"the engine stopped while loading the model: {self._why()}")

    def _keep_stderr(self) -> None:
        """The engine's standard error: its last lines kept (and logged); with `verbose`, passed on
        to this process's standard error as it comes (llama.cpp's log, as --verbose shows it)."""
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if self._show_log:
                with contextlib.suppress(OSError, ValueError):
                    sys.stderr.write(line + "\n")  # a terminal sees its control characters shown (stdio)
                    sys.stderr.flush()
            if line.strip():
                self._stderr.append(line)
                self._last_said = time.monotonic()
                log.info("engine %d: %s", self.pid, line)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _why(self) -> str:
        """How the process ended, and the last thing it said that looks like a reason."""
        with contextlib.suppress(subprocess.TimeoutExpired):  # its socket closes a moment before it is reaped
            self.proc.wait(timeout=2)
        self._stderr_reader.join(timeout=1)
        code = self.proc.poll()
        if code is None:
            how = "it stopped answering"
        elif code < 0:
            try:
                how = f"killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"killed by signal {-code}"
        else:
            how = f"exit status {code}"
        said = [line for line in self._stderr if any(c.isalpha() for c in line) and not line.startswith(LOG_NOISE)]
        # a reason only if said as it ended (not a line from minutes before; all of them are in the log)
        last = said[-1] if said and time.monotonic() - self._last_said < REASON_S else ""
        return f"{how}: {last}" if last else how

    def died(self) -> EngineDied:
        return EngineDied(f"the engine stopped ({self._why()})", self._stderr)

    def close(self) -> None:
        """End the engine process (its memory returns to the system) and remove its socket."""
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()  # the engine ends when its standard input does
                self.proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self._folder, ignore_errors=True)


def _event(line: dict[str, Any]) -> Event:
    extra = line.get("andon", {})
    if line.get("done"):
        return Done(
            text=extra["text"],
            finish_reason=line["done_reason"],
            usage=Usage(**extra["usage"]),
            seed=extra["seed"],
            dropped_turns=extra["dropped_turns"],
            tokens=list(extra["tokens"]),
            thinking=extra["thinking"],
            candidates=list(extra.get("candidates", [])),
            logprobs=list(extra.get("logprobs", [])),
        )
    if "notice" in extra:
        return ReplyNotice(extra["notice"])
    message = line["message"]
    return Delta(message["content"], extra.get("completion_tokens", 0), extra.get("seconds", 0.0),
                 message.get("thinking", ""), list(extra.get("logprobs", [])))  # fmt: skip


def _error(body: dict[str, Any]) -> Exception:
    """The engine's one-line error as the class the code on this side catches."""
    message, kind = str(body.get("error", "the engine failed")), str(body.get("kind", ""))
    return _error_class(kind)(message)


def _error_class(kind: str) -> type[Exception]:
    from andon.app.engine.grammar import GrammarError
    from andon.app.engine.perplexity import PerplexityError
    from andon.app.engine.prompt import ChatTemplateError, ContextFullError
    from andon.app.engine.speculative import DraftModelError
    from andon.presets.parameters import ParameterError

    classes: dict[str, type[Exception]] = {
        "ContextFullError": ContextFullError,
        "ChatTemplateError": ChatTemplateError,
        "GrammarError": GrammarError,
        "DraftModelError": DraftModelError,
        "ParameterError": ParameterError,
        "PerplexityError": PerplexityError,
        "ModelLoadError": ModelLoadError,
        "RequestError": ValueError,
        "ValueError": ValueError,
    }
    return classes.get(kind, RuntimeError)
