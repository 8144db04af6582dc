"""A fake engine for UI tests: yields scripted tokens, no model needed. It has every member of the
app's EngineLike protocol; its vocabulary is the script's pieces (token i is piece i)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from andon.app.chat.history import History
from andon.app.engine.engine import Delta, Done, ModelOptions, StopFilter, Usage
from andon.app.engine.reasoning import ThinkingSplitter
from andon.presets.parameters import Parameters

HELLO = ["Hello", " from", " the", " fake", " model", "."]


@dataclass
class FakeEngine:
    options: ModelOptions
    script: list[str] = field(default_factory=lambda: list(HELLO))
    delay: float = 0.0
    model_name: str = "fake-model"
    n_ctx: int = 4096
    calls: list = field(default_factory=list)
    pid: int = field(default_factory=os.getpid)

    @property
    def n_vocab(self) -> int:
        return len(self.script)

    def chat_tokens(self, messages, think=True):
        return [0] * sum(len(m["content"].split()) + 4 for m in messages)

    def stream(self, messages, params, cancelled=None, chain=None):
        self.calls.append((list(messages), params))
        stops, split = StopFilter(params.stop), ThinkingSplitter()  # thinking apart, as the engine
        text, thought, n, start, reason = [], [], 0, time.perf_counter(), "stop"
        for piece in self.script:
            if cancelled is not None and cancelled():
                yield Done("".join(text), "cancelled", Usage(10, 10, n, 0.01, 50.0), 1, thinking="".join(thought))
                return
            if self.delay:
                time.sleep(self.delay)
            n += 1
            thinking, answer = split.feed(piece)
            shown, hit = stops.feed(answer)
            if shown or thinking:
                text.append(shown)
                thought.append(thinking)
                yield Delta(shown, n, time.perf_counter() - start, thinking)
            if hit:
                break
            if 0 < params.num_predict <= n:
                reason = "length"  # as the engine: a reply cut by num_predict
                break
        tail = stops.flush() + split.finish().answer
        if tail:
            text.append(tail)
            yield Delta(tail, n, time.perf_counter() - start)
        usage = Usage(len(self.chat_tokens(messages)), 10, n, 0.01, 42.0)
        if params.draft:  # speculative decoding: every token drafted, all but one accepted
            usage.drafted_tokens, usage.accepted_tokens = n, n - 1
        yield Done("".join(text), reason, usage, 1, thinking="".join(thought).strip())

    def tokenize(self, text: str, *, special: bool = True, add_bos: bool = False) -> list[int]:
        return [self.script.index(p) for p in self.script if p in text]

    def piece(self, token: int, *, special: bool = False) -> bytes:
        return self.script[token].encode()

    def token_text(self, token: int) -> str:
        return self.script[token]

    def token_texts(self, tokens):
        return [self.token_text(t) for t in tokens]

    def inspect(self, tokens, params, top=10, temperatures=(), reply=()):
        from andon.app.engine.inspection import inspect_next  # over this fake's logits, as the engine runs it

        return inspect_next(self, tokens, params, top, temperatures, reply)

    def vocab_for(self, params: Parameters):
        return None

    def prefill(self, tokens: Sequence[int]) -> int:
        return len(tokens)

    def logits(self):
        return np.linspace(1.0, 0.0, self.n_vocab, dtype=np.float32)

    def alive(self):
        return True

    def close(self):
        pass


def seeded_history(path: Path, turns: int, title: str = "Long chat", busy_timeout: float = 1.5) -> History:
    """A history with one chat of `turns` question-and-answer pairs."""
    history = History(path, busy_timeout)
    chat = history.create_chat(title, "balanced")
    for i in range(turns):
        history.add_message(chat.id, "user", f"question {i}")
        history.add_message(chat.id, "assistant", f"answer {i}")
    return history


def run_fake_app(folder: str, words: int = 3000, delay: float = 0.01) -> None:
    """The app on a slow fake engine, as a process of its own (for tests in a terminal)."""
    import sys

    from andon.app.tui.app import AndonApp
    from andon.presets.store import PresetStore

    base = Path(folder)
    app = AndonApp(lambda o: FakeEngine(o, script=["word "] * words, delay=delay), base / "fake.gguf",
                   history=History(base / "h.sqlite3"), store=PresetStore(base / "presets"))  # fmt: skip
    app.run()
    sys.exit(app.return_code or 0)
