"""Ollama's API (api/types.go, server/routes.go) over andon's engines.

The engine's own protocol is Ollama's /api/chat already (app/engine/server.py's `event_line`): a
chat's lines go out as the engine wrote them, with the name the client used; /api/generate writes
the same events as `response` fragments. Every andon parameter is taken in `options`; `format`,
`think` and `keep_alive` at the top level, as Ollama takes them.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Generator, Iterator
from typing import Any

from andon.app.engine.generation import Delta, Done, Event
from andon.app.engine.prompt import Message
from andon.app.engine.server import event_line
from andon.app.models.catalog import human_count
from andon.app.models.sources import ModelEntry
from andon.app.serve.answers import Answer, Service, Streamed
from andon.app.serve.engines import Gone
from andon.app.serve.jobs import Job, logprob_entry, logprobs_asked, make_job, message
from andon.presets.commands import parameter_lines
from andon.presets.parameters import ParameterError

NOT_SERVED = {  # a field Ollama takes that andon cannot honour: refused in one line, never ignored
    "tools": "tools: tool calling is not served by andon",
    "images": "images: andon's models read text only",
    "raw": "raw: a prompt without the chat template is not served; send it to /api/chat",
    "suffix": "suffix: fill-in-the-middle is not served",
    "template": "template: the model's own chat template is always used",
    "context": "context: not served (it is deprecated in Ollama); send the conversation to /api/chat",
}
OFFLINE = {
    "/api/pull": "andon serve works offline: it cannot pull models (put a GGUF file where `andon models` finds it)",
    "/api/push": "andon serve works offline: it cannot push models",
    "/api/create": "creating models is not served; make a preset with `andon presets` and ask for NAME@PRESET",
    "/api/copy": "copying models is not served; a preset gives a model a second name (NAME@PRESET)",
    "/api/delete": "deleting models is not served; andon never deletes a model file",
    "/api/embed": "embeddings are not served: andon generates text",
    "/api/embeddings": "embeddings are not served: andon generates text",
}


def _refuse_unserved(body: dict[str, Any]) -> None:
    for name, line in NOT_SERVED.items():
        if body.get(name) not in (None, False, "", [], 0):
            raise ParameterError(line)


def options(body: dict[str, Any]) -> dict[str, Any]:
    """The request's andon parameters: `options`, with `format` and `think` from the top level."""
    given = body.get("options")
    if given is not None and not isinstance(given, dict):
        raise ParameterError("options: expected an object of parameters (`andon presets parameters` lists them)")
    out = dict(given or {})
    if body.get("format") is not None:
        out["format"] = body["format"]
    if body.get("think") is not None:  # true, false, or a level (low, medium, high), as andon's think
        out["think"] = body["think"]
    return out


def _messages(body: dict[str, Any]) -> list[Message]:
    given = body.get("messages")
    if given is None:
        return []
    if not isinstance(given, list) or not all(isinstance(m, dict) for m in given):
        raise ParameterError("messages: expected a list of {role, content}")
    for m in given:
        _refuse_unserved({k: v for k, v in m.items() if k in ("images", "tool_calls")})
    return [message(m.get("role"), m.get("content"), f"messages[{i}]") for i, m in enumerate(given)]


def _stream(body: dict[str, Any]) -> bool:
    return body.get("stream") is not False  # Ollama streams unless told not to


# --- /api/chat and /api/generate ------------------------------------------------------------------


def chat(service: Service, body: dict[str, Any], gone: Gone) -> Answer | Streamed:
    _refuse_unserved(body)
    messages = _messages(body)
    job = _job(service, body, messages)
    if not messages:  # Ollama loads (or, with keep_alive 0, unloads) the model
        return Answer(_loaded(service, job, gone, {"message": {"role": "assistant", "content": ""}}))
    lines = chat_lines(job, job.run(service.pool, gone))
    return Streamed(lines) if _stream(body) else Answer(_whole(lines, "chat"))


def generate(service: Service, body: dict[str, Any], gone: Gone) -> Answer | Streamed:
    _refuse_unserved(body)
    prompt, system = body.get("prompt") or "", body.get("system")
    if not isinstance(prompt, str) or not isinstance(system, str | None):
        raise ParameterError("prompt and system: expected text")
    messages: list[Message] = [{"role": "system", "content": system}] if system else []
    messages += [{"role": "user", "content": prompt}] if prompt else []
    job = _job(service, body, messages)
    if not prompt:
        return Answer(_loaded(service, job, gone, {"response": ""}))
    lines = (generate_line(line) for line in chat_lines(job, job.run(service.pool, gone)))
    return Streamed(lines) if _stream(body) else Answer(_whole(lines, "generate"))


def _job(service: Service, body: dict[str, Any], messages: list[Message]) -> Job:
    asked = logprobs_asked(body.get("logprobs"), body.get("top_logprobs"))
    return make_job(service.catalog, body.get("model"), messages, options(body), body.get("keep_alive"), asked)


def chat_lines(job: Job, events: Iterator[Event]) -> Generator[dict[str, Any]]:
    """The reply's lines; where logprobs were asked for, each line carries those of its tokens
    (the last line the rest: tokens that showed no text, a stop string's), as Ollama's do."""
    sent = 0
    for event in events:
        line = chat_line(event, job.name)
        if job.logprobs is not None and isinstance(event, Delta | Done):
            entries = event.logprobs if isinstance(event, Delta) else event.logprobs[sent:]
            sent += len(entries)
            line["logprobs"] = [logprob_entry(e) for e in entries]
        yield line


def chat_line(event: Event, name: str) -> dict[str, Any]:
    """The engine's line for this event, as Ollama writes it (thinking only where there is some)."""
    line = event_line(event, name)
    extra = line.pop("andon", {})
    if not line["message"].get("thinking"):
        line["message"].pop("thinking", None)
    if "notice" in extra:
        line["andon"] = {"notice": extra["notice"]}
    if isinstance(event, Done):
        line["load_duration"] = 0
        line["andon"] = {"seed": extra["seed"], "usage": extra["usage"]}
    return line


def generate_line(line: dict[str, Any]) -> dict[str, Any]:
    """A chat line as /api/generate writes it: `response` (and `thinking`) instead of `message`."""
    message = line.pop("message")
    out = {"model": line.pop("model"), "created_at": line.pop("created_at"), "response": message["content"]}
    if message.get("thinking"):
        out["thinking"] = message["thinking"]
    return out | line


def _whole(lines: Iterator[dict[str, Any]], route: str) -> dict[str, Any]:
    """The reply in one object (Ollama's `stream: false`): the last line, holding the whole text."""
    text, thinking, logprobs = [], [], []
    for line in lines:
        holder = line["message"] if route == "chat" else line
        key = "content" if route == "chat" else "response"
        text.append(holder.get(key, ""))
        thinking.append(holder.get("thinking", ""))
        logprobs += line.get("logprobs", [])
        if line.get("done"):
            holder[key] = "".join(text)
            if any(thinking):
                holder["thinking"] = "".join(thinking)
            if "logprobs" in line:
                line["logprobs"] = logprobs
            return line
    raise RuntimeError("the engine ended the reply without its last line")


def _loaded(service: Service, job: Job, gone: Gone, extra: dict[str, Any]) -> dict[str, Any]:
    params, path = job.params, job.target.entry.load_path()
    service.pool.load(path, job.name, params, job.keep_alive, gone)
    reason = "unload" if job.keep_alive == 0 else "load"
    return {"model": job.name, "created_at": _iso(time.time()), **extra, "done": True, "done_reason": reason}


# --- what models there are --------------------------------------------------------------------------


def tags(service: Service) -> dict[str, Any]:
    catalog = service.catalog
    return {"models": [_model(service, name, entry) for name, entry in catalog.names()]}


def _model(service: Service, name: str, entry: ModelEntry) -> dict[str, Any]:
    info = service.catalog.info(entry)
    return {
        "name": name,
        "model": name,
        "modified_at": _iso(entry.path.stat().st_mtime if entry.path.is_file() else time.time()),
        "size": info.file_size,
        "digest": _digest(entry),
        "details": details(service, entry),
    }


def details(service: Service, entry: ModelEntry) -> dict[str, Any]:
    info = service.catalog.info(entry)
    return {
        "parent_model": "",
        "format": "gguf",
        "family": info.architecture,
        "families": [info.architecture],
        "parameter_size": info.size_label or human_count(info.parameters),
        "quantization_level": info.quantization,
    }


def _digest(entry: ModelEntry) -> str:
    """Ollama's blob digest where the model is Ollama's; else one made of the file's path, size and time
    (hashing gigabytes for a listing would take minutes)."""
    if entry.path.name.startswith("sha256-"):
        return entry.path.name.removeprefix("sha256-")
    stat = entry.path.stat() if entry.path.is_file() else None
    key = f"{entry.path}:{stat.st_size if stat else 0}:{stat.st_mtime_ns if stat else 0}"
    return hashlib.sha256(key.encode()).hexdigest()


def show(service: Service, body: dict[str, Any]) -> dict[str, Any]:
    name = body.get("model", body.get("name"))
    target = service.catalog.resolve(name)
    settings = service.catalog.settings(target)
    info = service.catalog.info(target.entry)
    arch = info.architecture
    preset = target.preset or settings.preset.name
    return {
        "modelfile": f"# andon: {target.entry.name} with preset {preset}\nFROM {target.entry.name}\n",
        "parameters": "\n".join(parameter_lines(settings.params.changed())),
        "template": info.chat_template,
        "system": settings.system,
        "details": details(service, target.entry),
        "model_info": {
            "general.architecture": arch,
            "general.name": info.name,
            "general.parameter_count": info.parameters,
            f"{arch}.context_length": info.context_length,
            f"{arch}.embedding_length": info.embedding_length,
            f"{arch}.block_count": info.block_count,
        },
        "capabilities": ["completion"],
        "modified_at": _iso(time.time()),
    }


def ps(service: Service) -> dict[str, Any]:
    out = []
    for slot in service.pool.loaded():
        engine = slot.engine
        try:
            entry = service.catalog.resolve(slot.name).entry
        except LookupError:
            continue  # a model gone from its folder since
        expires = time.time() + (slot.expires - time.monotonic()) if slot.expires is not None else 2**33
        out.append(
            _model(service, slot.name, entry)
            | {"expires_at": _iso(expires), "size_vram": 0, "context_length": engine.n_ctx if engine else 0}
        )
    return {"models": out}


def version() -> dict[str, Any]:
    from andon import __version__

    return {"version": __version__}


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(min(seconds, 2**33)))
