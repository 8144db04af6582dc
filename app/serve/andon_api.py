"""andon's own engine protocol through `andon serve`, for an andon app that uses the server's
engines (`andon --server`, app/engine/remote.py's ServerEngine).

A chat whose body carries `andon` (the engine protocol's additions: the reply's id, logprobs) gets
the engine's lines whole (its Done with the reply's text, tokens, usage, seed), and `/andon/cancel`
with that id ends it; the other routes (`/andon/props`, `/andon/chat_tokens`, `/andon/token_texts`,
`/andon/inspect`, `/tokenize`) are answered by the engine of the model the body names, loaded with
the body's options as a chat would load it. `prompt` and `samples` (a raw prompt, a sweep's draw)
are not served here.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterator
from typing import Any

from andon.app.engine.client import EngineConnection
from andon.app.engine.generation import Event
from andon.app.engine.server import event_line
from andon.app.serve import ollama_api
from andon.app.serve.answers import Answer, Service, Streamed
from andon.app.serve.engines import Gone
from andon.app.serve.jobs import Job, make_job, message
from andon.presets.parameters import ParameterError

ENGINE_ROUTES = ("/andon/props", "/andon/chat_tokens", "/andon/token_texts", "/andon/inspect", "/tokenize")
_cancels: dict[str, threading.Event] = {}  # a reply's id -> set to end it
_cancels_lock = threading.Lock()


def is_andon_client(body: dict[str, Any]) -> bool:
    return isinstance(body.get("andon"), dict)


def _job(service: Service, body: dict[str, Any], messages: list[Any]) -> Job:
    extra = body["andon"] if is_andon_client(body) else {}
    for name in ("prompt", "samples"):
        if name in extra:
            raise ParameterError(f"andon.{name}: not served through andon serve (run it without --server)")
    logprobs = extra.get("logprobs")
    if logprobs is not None and not isinstance(logprobs, int):
        raise ParameterError("andon.logprobs: expected a whole number")
    return make_job(service.catalog, body.get("model"), messages, ollama_api.options(body), body.get("keep_alive"),
                    logprobs)  # fmt: skip


def any_chat(service: Service, body: dict[str, Any], gone: Gone) -> Answer | Streamed:
    """POST /api/chat: an andon client's (the engine's lines whole), else Ollama's."""
    return chat(service, body, gone) if is_andon_client(body) else ollama_api.chat(service, body, gone)


def chat(service: Service, body: dict[str, Any], gone: Gone) -> Streamed:
    """The reply as the engine writes it (event_line), ended early by `/andon/cancel` or a client gone."""
    given = body.get("messages")
    if not isinstance(given, list) or not all(isinstance(m, dict) for m in given):
        raise ParameterError("messages: expected a list of {role, content}")
    messages = [message(m.get("role"), m.get("content"), f"messages[{i}]") for i, m in enumerate(given)]
    job = _job(service, body, messages)
    rid = str(body["andon"].get("id", ""))
    stop = threading.Event()
    return Streamed(_lines(job, job.run(service.pool, lambda: stop.is_set() or gone()), rid, stop))


def _lines(job: Job, events: Iterator[Event], rid: str, stop: threading.Event) -> Generator[dict[str, Any]]:
    if rid:
        with _cancels_lock:
            _cancels[rid] = stop
    try:
        for event in events:
            yield event_line(event, job.name)
    finally:
        if rid:
            with _cancels_lock:
                _cancels.pop(rid, None)


def cancel(body: dict[str, Any]) -> Answer:
    with _cancels_lock:
        stop = _cancels.get(str(body.get("id", "")))
    if stop is not None:
        stop.set()
    return Answer({"cancelled": stop is not None})


def engine_route(service: Service, path: str, body: dict[str, Any], gone: Gone) -> Answer:
    """One of the engine's routes, answered by the named model's engine (loaded first if need be)."""
    job = _job(service, body, [])
    forwarded = {k: v for k, v in body.items() if k not in ("model", "andon", "keep_alive")}
    with service.pool.using(job.target.entry.load_path(), job.name, job.params, job.keep_alive, gone) as engine:
        if not isinstance(engine, EngineConnection):
            raise ParameterError(f"{path}: this server's engines do not serve it")
        if path == "/andon/props":
            return Answer(dict(engine.props))
        if "options" in forwarded:  # the parameters as the server resolved them (the preset's, then the body's)
            forwarded["options"] = job.params.to_plain()
        return Answer(engine._call(path, forwarded))
