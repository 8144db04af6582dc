"""A fake engine for UI tests: yields scripted tokens, no model needed."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from andon.app.engine import Delta, Done, ModelOptions, StopFilter, Usage


@dataclass
class FakeEngine:
    options: ModelOptions
    script: list[str] = field(default_factory=lambda: ["Hello", " from", " the", " fake", " model", "."])
    delay: float = 0.0
    model_name: str = "fake-model"
    n_ctx: int = 4096
    calls: list = field(default_factory=list)

    def chat_tokens(self, messages):
        return [0] * sum(len(m["content"].split()) + 4 for m in messages)

    def stream(self, messages, params, cancelled=None, chain=None):
        self.calls.append((list(messages), params))
        stops = StopFilter(params.stop)
        text, n = [], 0
        for piece in self.script:
            if cancelled is not None and cancelled():
                yield Done("".join(text), "cancelled", Usage(10, 10, n, 0.01, 50.0), 1)
                return
            if self.delay:
                time.sleep(self.delay)
            n += 1
            shown, hit = stops.feed(piece)
            if shown:
                text.append(shown)
                yield Delta(shown)
            if hit:
                break
            if 0 < params.num_predict <= n:
                break
        tail = stops.flush()
        if tail:
            text.append(tail)
            yield Delta(tail)
        yield Done("".join(text), "stop", Usage(len(self.chat_tokens(messages)), 10, n, 0.01, 42.0), 1)

    def close(self):
        pass
