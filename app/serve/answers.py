"""What a route answers, for the server to write: one JSON body, or a reply's lines as they come."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from andon.app.serve.catalog import Catalog
from andon.app.serve.engines import Pool


@dataclass(frozen=True)
class Service:
    """What every route reads: the models a client may name and their engines."""

    catalog: Catalog
    pool: Pool
    api_key: str = ""
    started: float = 0.0


@dataclass
class Answer:
    """One JSON body (a dict), or text for `GET /` as Ollama answers it."""

    body: dict[str, Any] | str
    status: int = 200


@dataclass
class Streamed:
    """A reply's items as they come: NDJSON lines (Ollama) or SSE events (OpenAI, `[DONE]` last)."""

    items: Generator[dict[str, Any]]
    sse: bool = False
