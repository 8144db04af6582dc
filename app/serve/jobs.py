"""A request as both APIs give it to the engine: the model, its messages, its parameters, keep_alive.

Each API reads its own fields into these; the parameters go through the one parser andon has
(presets' `Parameters`), so a bad or unknown option gets the same line as `andon ask --set`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from andon.app.engine.generation import Event
from andon.app.engine.logprobs import MAX_TOP
from andon.app.engine.prompt import Message
from andon.app.serve.catalog import Catalog, Target
from andon.app.serve.engines import Gone, Pool
from andon.presets.parameters import ParameterError, Parameters

DEFAULT_KEEP_ALIVE = 300.0  # seconds an engine stays loaded after its last reply, as Ollama's 5m
ROLES = ("system", "user", "assistant")
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class Job:
    """One request's reply, ready for the engine."""

    name: str  # the model as the client named it (echoed back, as both APIs do)
    target: Target
    messages: list[Message]
    params: Parameters
    keep_alive: float | None  # seconds; None: kept until the server ends
    logprobs: int | None = None  # each token's log-probability and this many alternatives (None: not asked)

    def run(self, pool: Pool, gone: Gone) -> Iterator[Event]:
        path = self.target.entry.load_path()
        return pool.reply(path, self.name, self.messages, self.params, self.keep_alive, gone, self.logprobs)


def make_job(
    catalog: Catalog,
    name: object,
    messages: list[Message],
    options: Mapping[str, Any],
    keep_alive: object = None,
    logprobs: int | None = None,
) -> Job:
    """The job a request asks for; the preset's system prompt leads where the messages have none."""
    target = catalog.resolve(name)
    params = catalog.parameters(target, options)
    if logprobs is not None and (params.num_beams > 1 or params.mbr_samples > 0):
        raise ParameterError("logprobs: not served with num_beams or mbr_samples (the reply is chosen among several)")
    system = catalog.settings(target).system
    if system and not any(m["role"] == "system" for m in messages):
        messages = [{"role": "system", "content": system}, *messages]
    return Job(str(name), target, messages, params, keep_alive_seconds(keep_alive), logprobs)


def logprobs_asked(logprobs: object, top_logprobs: object) -> int | None:
    """OpenAI's chat and Ollama's `logprobs` (true/false) and `top_logprobs` (0 to 20, with logprobs
    true) as the engine's count of alternatives per token; None where none are asked for."""
    if logprobs not in (None, True, False):
        raise ParameterError(f"logprobs: {logprobs!r} is not allowed (true or false)")
    if top_logprobs is not None and (
        not isinstance(top_logprobs, int) or isinstance(top_logprobs, bool) or not 0 <= top_logprobs <= MAX_TOP
    ):
        raise ParameterError(f"top_logprobs: {top_logprobs!r} is not allowed (a whole number from 0 to {MAX_TOP})")
    if not logprobs:
        if top_logprobs:
            raise ParameterError("top_logprobs: needs logprobs set to true")
        return None
    return int(top_logprobs or 0)


def logprob_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """An engine's logprobs entry in OpenAI's and Ollama's shape (token, logprob, bytes,
    top_logprobs): the chain's own log-probability is andon's, left out."""
    return {k: v for k, v in entry.items() if k != "chain_logprob"}


def message(role: object, content: object, where: str) -> Message:
    """One chat message, checked: a role andon's chat templates take and text content."""
    if role == "developer":  # OpenAI's newer name for the system message
        role = "system"
    if role not in ROLES:
        raise ParameterError(f"{where}.role: {role!r} is not served (allowed: {', '.join(ROLES)})")
    if content is None:
        content = ""
    if not isinstance(content, str):
        raise ParameterError(f"{where}.content: expected text")
    return {"role": role, "content": content}  # type: ignore[typeddict-item]


def keep_alive_seconds(value: object) -> float | None:
    """Ollama's keep_alive: seconds as a number, or a duration ("5m", "1h30m", "0"); negative keeps
    the model loaded until the server ends. Absent: 5 minutes."""
    if value is None:
        return DEFAULT_KEEP_ALIVE
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number or (isinstance(value, str) and value.strip() in ("0", "-1")):
        seconds = float(value)  # type: ignore[arg-type]
    elif isinstance(value, str) and _is_duration(value.strip().removeprefix("-")):
        text = value.strip()
        seconds = sum(float(n) * _UNIT_S[u] for n, u in _DURATION.findall(text))
        seconds = -seconds if text.startswith("-") else seconds
    else:
        raise ParameterError(
            f"keep_alive: {value!r} is not allowed (a number of seconds or a duration such as 5m, 1h, 0, -1)"
        )
    return None if seconds < 0 else seconds


def _is_duration(text: str) -> bool:
    return bool(text) and _DURATION.sub("", text) == ""
