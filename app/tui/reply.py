"""One reply, run on a worker thread: no widgets here.

It streams from the engine, hands the UI text in batches (one update per frame, not per token,
so a key press is never queued behind a backlog of renders), and writes the reply to the history
as it goes, so a killed andon keeps what was written.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from andon.app.chat import ChatSession
from andon.app.engine import ContextFullError, Delta, Done, ModelLoadError, ReplyNotice, Usage
from andon.app.history import History, Status, StoredMessage
from andon.app.tui.engine_host import EngineHost

SAVE_EVERY_S = 0.5  # how often a streaming reply is written to the history
FLUSH_EVERY_S = 0.1  # how often streamed text is handed to the UI (10 updates a second)


@dataclass
class ReplyError:
    text: str


@dataclass
class TextBatch:
    text: str
    tokens_per_second: float  # the live rate, 0 until it can be measured


Update = TextBatch | ReplyNotice | Done | ReplyError


def reply_stats(done: Done) -> dict:
    return {
        "tokens": done.tokens,
        "completion_tokens": done.usage.completion_tokens,
        "prompt_tokens": done.usage.prompt_tokens,
        "tokens_per_second": round(done.usage.tokens_per_second, 2),
        "finish_reason": done.finish_reason,
        "seed": done.seed,
    }


def run_reply(
    host: EngineHost,
    history: History,
    session: ChatSession,
    reply: StoredMessage,
    cancelled: Callable[[], bool],
    emit: Callable[[Update], None],
) -> None:
    """Write `reply` for the session's messages; every outcome ends with one Done emitted."""
    while not host.loaded.wait(0.1):  # a message sent before the model loaded waits for it
        if cancelled():
            return _end(history, reply, emit, "stopped", "")
    text: list[str] = []
    batch: list[str] = []
    rate = 0.0
    last_save = last_flush = time.monotonic()
    try:
        with host.lock:
            engine = host.engine_for(session.params)
            for event in engine.stream(session.engine_messages(), session.params, cancelled=cancelled):
                if isinstance(event, Delta):
                    text.append(event.text)
                    batch.append(event.text)
                    if event.seconds > 0:
                        rate = (event.completion_tokens - 1) / event.seconds
                    now = time.monotonic()
                    if now - last_flush > FLUSH_EVERY_S:
                        emit(TextBatch("".join(batch), rate))
                        batch.clear()
                        last_flush = now
                    if now - last_save > SAVE_EVERY_S:
                        history.update_message(reply.id, "".join(text))
                        last_save = now
                elif isinstance(event, Done):
                    if batch:
                        emit(TextBatch("".join(batch), rate))
                    status: Status = "stopped" if event.finish_reason == "cancelled" else "complete"
                    stats = reply_stats(event)
                    history.update_message(reply.id, event.text, status, stats)
                    reply.content, reply.status, reply.stats = event.text, status, stats
                    emit(event)
                else:
                    emit(event)
    except (ModelLoadError, ContextFullError) as exc:
        emit(ReplyError(f"error: {exc}"))
        _end(history, reply, emit, "error", "".join(text))
    except Exception as exc:  # never a traceback in the app
        emit(ReplyError(f"error: the reply failed: {type(exc).__name__}: {exc}"))
        _end(history, reply, emit, "error", "".join(text))


def _end(history: History, reply: StoredMessage, emit: Callable[[Update], None], status: Status, text: str) -> None:
    """End a reply that did not finish normally: store what there is, close the UI's stream."""
    history.update_message(reply.id, text, status)
    reply.content, reply.status = text, status
    emit(Done(text, "cancelled", Usage(), -1))
