"""One reply, written on a worker thread: no widgets here.

It runs the engine, hands the UI text in batches (one update per frame, not per token, so a key
press is never queued behind a backlog of renders), and saves the reply in the history as it goes,
so a killed andon keeps what was written. A reply the history cannot take ends marked as failed,
its text kept on screen.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

from andon.app.chat.history import History, HistoryError, Status, StoredMessage
from andon.app.chat.session import ChatSession
from andon.app.engine.client import EngineDied
from andon.app.engine.engine import ContextFullError, Delta, Done, ModelLoadError, Usage
from andon.app.engine.grammar import GrammarError
from andon.app.tui.engine_host import EngineHost
from andon.app.tui.failures import log_lines
from andon.presets.parameters import Parameters

SAVE_EVERY_S = 0.5  # how often a reply being written is saved in the history
FLUSH_EVERY_S = 0.1  # how often written text is handed to the UI (10 updates a second)


@dataclass
class ReplyError:
    text: str


@dataclass
class ReplyNote:
    """Something the engine tells about this reply (e.g. old turns dropped to fit num_ctx)."""

    text: str


@dataclass
class TextBatch:
    text: str
    tokens_per_second: float  # the live rate, 0 until it can be measured
    completion_tokens: int = 0  # the reply's tokens so far
    thinking: str = ""  # a reasoning model's thinking, shown apart from the answer
    progress: str = ""  # a search still going: e.g. "4 beams · 37 tokens"


Update = TextBatch | ReplyNote | Done | ReplyError
Emit = Callable[[Update], None]


def search_label(params: Parameters) -> str:
    """What writes the reply when it is not one draw: "4 beams", "8 samples"; "" for one reply."""
    if params.num_beams > 1:
        return f"{params.num_beams} beams"
    return f"{params.mbr_samples} samples" if params.mbr_samples else ""


def reply_stats(done: Done, search: str = "") -> dict:
    """What the history keeps of how a reply was written (`search`: the search_label it was chosen by)."""
    return {
        **({"search": search} if search else {}),
        "tokens": done.tokens,
        "completion_tokens": done.usage.completion_tokens,
        "prompt_tokens": done.usage.prompt_tokens,
        "tokens_per_second": round(done.usage.tokens_per_second, 2),
        "finish_reason": done.finish_reason,
        "seed": done.seed,
    }


class ReplyWriter:
    """The text of one reply as it arrives: batched for the UI, saved every SAVE_EVERY_S.

    A reasoning model's thinking is kept apart from the answer, on screen and in the history. A
    search (beams, MBR samples) sends no text until it has chosen: its progress is told instead.
    """

    def __init__(self, history: History, reply: StoredMessage, emit: Emit, continued: bool = False,
                 search: str = "") -> None:  # fmt: skip
        self.history = history
        self.search = search
        self.reply = reply
        self.emit = emit
        self.before = reply.content if continued else ""  # a reply continued goes on from its text
        self.thinking_before = reply.thinking if continued else ""
        self.tokens_before = int(reply.stats.get("completion_tokens", 0)) if continued else 0  # its count covers all
        self.text: list[str] = [self.before]
        self.batch: list[str] = []
        self.thinking: list[str] = [self.thinking_before]
        self.thinking_batch: list[str] = []
        self.rate = 0.0
        self.tokens = 0
        self.progress = ""
        self.last_save = self.last_flush = time.monotonic()

    def add(self, delta: Delta) -> None:
        self.text.append(delta.text)
        self.batch.append(delta.text)
        if delta.thinking:
            self.thinking.append(delta.thinking)
            self.thinking_batch.append(delta.thinking)
        self.tokens = max(self.tokens, delta.completion_tokens)
        if self.search and not delta.text and not delta.thinking:  # a search's step: nothing chosen yet
            self.progress = f"{self.search} · {delta.completion_tokens} tokens"
        if delta.seconds > 0:
            self.rate = (delta.completion_tokens - 1) / delta.seconds
        now = time.monotonic()
        if now - self.last_flush > FLUSH_EVERY_S:
            self.flush()
            self.last_flush = now
        if now - self.last_save > SAVE_EVERY_S:
            self.history.update_message(self.reply.id, "".join(self.text), thinking=self._thinking())
            self.last_save = now

    def flush(self) -> None:
        if self.batch or self.thinking_batch:
            text, progress = "".join(self.batch), self.progress
            self.emit(TextBatch(text, self.rate, self.tokens, "".join(self.thinking_batch), "" if text else progress))
            self.batch.clear()
            self.thinking_batch.clear()

    def _thinking(self) -> str:
        return "".join(self.thinking).strip()

    def finish(self, done: Done) -> None:
        """The engine's end of the reply: save it, then hand the UI its last text and the Done."""
        status: Status = "stopped" if done.finish_reason == "cancelled" else "complete"
        stats = reply_stats(done, self.search)
        if self.tokens_before:  # continued: the count is the whole reply's; a cut is at this run's num_predict
            stats["completion_tokens"] += self.tokens_before
            stats["num_predict"] = done.usage.completion_tokens
        text, thinking = self.before + done.text, "\n".join(t for t in (self.thinking_before, done.thinking) if t)
        self.history.update_message(self.reply.id, text, status, stats, thinking)
        self.reply.content, self.reply.status, self.reply.stats = text, status, stats
        self.reply.thinking = thinking
        self.flush()
        self.emit(done)

    def end(self, status: Status, error: str | None = None) -> None:
        """End a reply that did not finish normally: keep what there is, close the UI's stream."""
        if error:
            self.emit(ReplyError(error))
        self.flush()
        text, thinking = "".join(self.text), self._thinking()
        self.reply.content, self.reply.status, self.reply.thinking = text, status, thinking
        with suppress(HistoryError):  # already said; the reply stays on screen, and a later start marks it stopped
            self.history.update_message(self.reply.id, text, status, thinking=thinking)
        self.emit(Done(text, "cancelled", Usage(), -1, thinking=thinking))


def write_reply(
    host: EngineHost,
    history: History,
    session: ChatSession,
    reply: StoredMessage,
    cancelled: Callable[[], bool],
    emit: Emit,
    continued: bool = False,
) -> None:
    """Write `reply` for the session's messages (or go on writing it: `continued`, the prompt then
    ends inside it); every outcome ends with one Done emitted."""
    writer = ReplyWriter(history, reply, emit, continued, search_label(session.params))
    while not host.loaded.wait(0.1):  # a message sent before the model loaded waits for it
        if cancelled():
            return writer.end("stopped")
    try:
        with host.lock:
            engine = host.engine_for(session.params)
            messages = session.engine_messages(reply if continued else None)
            for event in engine.stream(messages, session.params, cancelled=cancelled):
                if isinstance(event, Delta):
                    writer.add(event)
                elif isinstance(event, Done):
                    writer.finish(event)
                else:
                    emit(ReplyNote(event.text))
    except HistoryError as exc:
        writer.end("error", f"error: the reply could not be saved: {exc}")
    except (ModelLoadError, ContextFullError, GrammarError) as exc:
        writer.end("error", f"error: {exc}")
    except EngineDied as exc:  # killed, crashed, aborted: the app goes on, the next message starts a new one
        where = log_lines(str(exc), exc.said) if exc.said else ""
        writer.end("error", f"error: {exc}; the next message starts it again{f' ({where})' if where else ''}")
    except Exception as exc:  # never a traceback in the app
        writer.end("error", f"error: the reply failed: {type(exc).__name__}: {exc}")
