"""OpenAI's API (/v1/chat/completions, /v1/completions, /v1/models) over andon's engines.

Shapes as OpenAI defines them and llama-server writes them (tools/server/server-common.cpp):
`chat.completion` and its `chat.completion.chunk` SSE stream (`data: [DONE]` last), `usage` (in the
stream with `stream_options.include_usage`), a reasoning model's thinking as `reasoning_content`.
Every andon parameter is taken at the top level of the body, as llama-server takes its own; the
fields OpenAI defines are translated (max_tokens -> num_predict, response_format -> format).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Generator, Iterator
from typing import Any

from andon.app.engine.generation import Delta, Done, Event
from andon.app.engine.logprobs import MAX_TOP
from andon.app.engine.prompt import Message
from andon.app.serve.answers import Answer, Service, Streamed
from andon.app.serve.engines import Gone
from andon.app.serve.jobs import Job, logprob_entry, logprobs_asked, make_job, message
from andon.presets.parameters import ParameterError

SAME_NAMES = ("temperature", "top_p", "stop", "seed", "presence_penalty", "frequency_penalty", "logit_bias")
IGNORED = ("user", "metadata", "store", "service_tier", "parallel_tool_calls")  # no effect on a reply's text
NOT_SERVED = {
    "tools": "tools: tool calling is not served by andon",
    "functions": "functions: tool calling is not served by andon",
    "suffix": "suffix: fill-in-the-middle is not served",
    "echo": "echo: not served",
    "audio": "audio: andon's models read and write text only",
}
LOGPROBS = ("logprobs", "top_logprobs")  # read apart (_logprobs), not andon parameters
FINISH = {"stop": "stop", "length": "length", "grammar": "stop", "cancelled": "stop"}


def _options(body: dict[str, Any], own: tuple[str, ...]) -> dict[str, Any]:
    """The andon parameters of an OpenAI body: its own fields translated, every other one an andon
    parameter (an unknown name gets the same line as `andon ask --set`)."""
    for name, line in NOT_SERVED.items():
        if body.get(name) not in (None, False, [], 0, ""):
            raise ParameterError(line)
    n = body.get("n")
    if n not in (None, 1):
        raise ParameterError(f"n: {n!r} is not served (one choice per request: n must be 1)")
    out: dict[str, Any] = {}
    for name, value in body.items():
        if value is None or name in own or name in IGNORED or name in NOT_SERVED or name in ("n", *LOGPROBS):
            continue
        if name in ("max_tokens", "max_completion_tokens"):
            out["num_predict"] = value
        elif name == "response_format":
            out["format"] = response_format(value)
        elif name == "reasoning_effort":  # think's level; OpenAI's ends clamped to it, as Ollama does
            out["think"] = reasoning_effort(value)
        else:
            out[name] = value  # SAME_NAMES and every andon parameter
    return out


EFFORTS = {"none": False, "minimal": "low", "low": "low", "medium": "medium", "high": "high", "xhigh": "high"}


def reasoning_effort(value: object) -> object:
    """OpenAI's reasoning_effort as andon's think: none is off, minimal and xhigh clamped (as Ollama does);
    another value is refused under the name the client sent."""
    if not isinstance(value, str) or value not in EFFORTS:
        raise ParameterError(f"reasoning_effort: {value!r} is not allowed (must be one of {', '.join(EFFORTS)})")
    return EFFORTS[value]


def _logprobs(body: dict[str, Any], chat: bool) -> int | None:
    """The alternatives per token the body asks for: chat's `logprobs` true with `top_logprobs` K,
    or the legacy completions' `logprobs` K; None where it asks for none."""
    if chat:
        return logprobs_asked(body.get("logprobs"), body.get("top_logprobs"))
    k = body.get("logprobs")
    if k is None:
        return None
    if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= MAX_TOP:
        raise ParameterError(f"logprobs: {k!r} is not allowed (a whole number from 0 to {MAX_TOP})")
    return k


def response_format(value: object) -> object:
    """OpenAI's response_format as andon's format: text "", json_object "json", json_schema its schema."""
    if not isinstance(value, dict):
        raise ParameterError("response_format: expected an object with type text, json_object or json_schema")
    kind = value.get("type")
    if kind == "text":
        return ""
    if kind == "json_object":
        return value.get("schema") or "json"  # llama-server takes a schema here too
    if kind == "json_schema":
        spec = value.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise ParameterError("response_format.json_schema.schema: expected a JSON schema object")
        return schema
    raise ParameterError(f"response_format.type: {kind!r} is not allowed (text, json_object or json_schema)")


def _content(value: object, where: str) -> object:
    """A message's content: text, or a list of text parts (joined)."""
    if not isinstance(value, list):
        return value
    texts = []
    for i, part in enumerate(value):
        if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise ParameterError(f"{where}[{i}]: only text parts are served (andon's models read text only)")
        texts.append(part["text"])
    return "".join(texts)


def _messages(body: dict[str, Any]) -> list[Message]:
    given = body.get("messages")
    if not isinstance(given, list) or not given or not all(isinstance(m, dict) for m in given):
        raise ParameterError("messages: expected a non-empty list of {role, content}")
    return [
        message(m.get("role"), _content(m.get("content"), f"messages[{i}].content"), f"messages[{i}]")
        for i, m in enumerate(given)
    ]


# --- the completions --------------------------------------------------------------------------------


class Completion:
    """One reply in OpenAI's shapes: `chat.completion` (message/delta) or `text_completion` (text).
    Where logprobs were asked for, each choice carries those of its tokens (`logprobs.content` for a
    chat, the legacy tokens/token_logprobs/top_logprobs/text_offset for a completion)."""

    def __init__(self, job: Job, chat: bool, include_usage: bool) -> None:
        self.job, self.chat, self.include_usage = job, chat, include_usage
        self.id = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        self.created = int(time.time())
        self.object = "chat.completion" if chat else "text_completion"
        self._offset = 0  # a completion's text so far, for text_offset

    def _head(self, suffix: str = "") -> dict[str, Any]:
        return {"id": self.id, "object": self.object + suffix, "created": self.created, "model": self.job.name,
                "system_fingerprint": "andon"}  # fmt: skip

    def _choice(self, text: str, thinking: str, finish: str | None, delta: bool,
                logprobs: list[dict[str, Any]] | None = None) -> dict[str, Any]:  # fmt: skip
        shaped = self._logprobs(logprobs or [])
        if not self.chat:
            return {"index": 0, "text": text, "logprobs": shaped, "finish_reason": finish}
        msg: dict[str, Any] = {"role": "assistant", "content": text}
        if thinking:
            msg["reasoning_content"] = thinking
        if delta:
            msg = {k: v for k, v in msg.items() if v or k == "content"}
        return {"index": 0, "delta" if delta else "message": msg, "logprobs": shaped, "finish_reason": finish}

    def _logprobs(self, entries: list[dict[str, Any]]) -> dict[str, Any] | None:
        """A choice's `logprobs` for these engine entries; None where none were asked for."""
        if self.job.logprobs is None:
            return None
        if self.chat:
            return {"content": [logprob_entry(e) for e in entries], "refusal": None}
        offsets = []
        for e in entries:
            offsets.append(self._offset)
            self._offset += len(e["token"])
        return {
            "tokens": [e["token"] for e in entries],
            "token_logprobs": [e["logprob"] for e in entries],
            "top_logprobs": [{t["token"]: t["logprob"] for t in e["top_logprobs"]} for e in entries],
            "text_offset": offsets,
        }

    def whole(self, events: Iterator[Event]) -> dict[str, Any]:
        text, thinking = [], []
        for event in events:
            if isinstance(event, Delta):
                text.append(event.text)
                thinking.append(event.thinking)
            elif isinstance(event, Done):
                choice = self._choice("".join(text), "".join(thinking), _finish(event), False, event.logprobs)
                return self._head() | {"choices": [choice], "usage": usage(event)}
        raise RuntimeError("the engine ended the reply without its last event")

    def chunks(self, events: Iterator[Event]) -> Generator[dict[str, Any]]:
        """The SSE chunks: each Delta's text with its tokens' logprobs; the last one has the rest
        (tokens that showed no text, a stop string's)."""
        suffix = ".chunk" if self.chat else ""
        sent = 0
        if self.chat:
            yield self._head(suffix) | {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                     "logprobs": None, "finish_reason": None}]}  # fmt: skip
        for event in events:
            if isinstance(event, Delta) and (event.text or event.thinking or event.logprobs):
                sent += len(event.logprobs)
                choice = self._choice(event.text, event.thinking, None, True, event.logprobs)
                yield self._head(suffix) | {"choices": [choice]}
            elif isinstance(event, Done):
                last = self._choice("", "", _finish(event), True, event.logprobs[sent:])
                if self.chat:
                    last["delta"] = {}
                yield self._head(suffix) | {"choices": [last]}
                if self.include_usage:
                    yield self._head(suffix) | {"choices": [], "usage": usage(event)}


def _finish(done: Done) -> str:
    """OpenAI's finish_reason: "length" at num_predict, else "stop" (an end of turn, a stop string...)."""
    return FINISH.get(done.finish_reason, "stop")


def usage(done: Done) -> dict[str, Any]:
    u = done.usage
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": u.prompt_tokens - u.prompt_eval_tokens},
    }


def _reply(service: Service, body: dict[str, Any], job: Job, chat: bool, gone: Gone) -> Answer | Streamed:
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
    completion = Completion(job, chat, include_usage)
    events = job.run(service.pool, gone)
    if body.get("stream"):
        return Streamed(completion.chunks(events), sse=True)
    return Answer(completion.whole(events))


def chat_completions(service: Service, body: dict[str, Any], gone: Gone) -> Answer | Streamed:
    own = ("model", "messages", "stream", "stream_options", "keep_alive", "tool_choice")
    job = make_job(service.catalog, body.get("model"), _messages(body), _options(body, own), body.get("keep_alive"),
                   _logprobs(body, chat=True))  # fmt: skip
    return _reply(service, body, job, True, gone)


def completions(service: Service, body: dict[str, Any], gone: Gone) -> Answer | Streamed:
    """A prompt answered as a user message through the chat template (as Ollama's /v1/completions)."""
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise ParameterError("prompt: expected text (one prompt per request)")
    own = ("model", "prompt", "stream", "stream_options", "keep_alive", "best_of")
    if body.get("best_of") not in (None, 1):
        raise ParameterError("best_of: not served (one choice per request)")
    messages: list[Message] = [{"role": "user", "content": prompt}]
    job = make_job(service.catalog, body.get("model"), messages, _options(body, own), body.get("keep_alive"),
                   _logprobs(body, chat=False))  # fmt: skip
    return _reply(service, body, job, False, gone)


def models(service: Service) -> dict[str, Any]:
    return {"object": "list", "data": [model_object(name, service) for name, _ in service.catalog.names()]}


def model_object(name: str, service: Service) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": int(service.started), "owned_by": "andon"}


def model(service: Service, name: str) -> dict[str, Any]:
    service.catalog.resolve(name)  # UnknownModel: 404
    return model_object(name, service)
