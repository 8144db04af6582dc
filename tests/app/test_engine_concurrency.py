"""Several clients at once on one engine process with slots (app/engine/scheduler.py, as andon serve
starts it): replies decoded together give each client the text it gets alone, one client's cancel
leaves the others' replies as they were, a resent conversation reuses its slot's cached prefix, and
what needs the engine's own context (the inspector) still answers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from andon.app.engine.client import EngineProcess
from andon.app.engine.engine import Delta, Done
from andon.app.engine.loading import ModelOptions
from andon.presets import Parameters

pytestmark = pytest.mark.model

GREEDY = Parameters.of({"temperature": 0, "num_predict": 12, "seed": 1})
PROMPTS = ["Write a story about a lighthouse.", "Explain how bread rises.", "Describe a walk in the rain.",
           "Tell me about the history of maps."]  # fmt: skip


def chat(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
def process(model_path):
    engine = EngineProcess(ModelOptions(model_path, num_ctx=2048), parallel=4)
    yield engine
    engine.close()


class Run:
    """One client's reply in a thread: its Done, and when its first text and its end arrived."""

    def __init__(self, engine: EngineProcess, text: str, cancelled: Callable[[], bool] | None = None) -> None:
        self.engine, self.text, self.cancelled = engine, text, cancelled
        self.done: Done | None = None
        self.first = self.end = 0.0
        self.deltas = 0
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        for event in self.engine.stream(chat(self.text), GREEDY, cancelled=self.cancelled):
            if isinstance(event, Delta) and event.text:
                self.deltas += 1
                self.first = self.first or time.perf_counter()
            elif isinstance(event, Done):
                self.done, self.end = event, time.perf_counter()


def together(
    engine: EngineProcess, texts: list[str], cancels: dict[int, Callable[[], bool]] | None = None
) -> list[Run]:
    runs = [Run(engine, t, (cancels or {}).get(i)) for i, t in enumerate(texts)]
    for run in runs:
        run.thread.start()
    for run in runs:
        run.thread.join(timeout=120)
    assert all(run.done is not None for run in runs)
    return runs


def alone(engine: EngineProcess, text: str) -> Done:
    (run,) = together(engine, [text])
    assert run.done is not None
    return run.done


def assert_same_or_tie(engine: EngineProcess, text: str, solo: Done, other: Done | None) -> None:
    """`other` wrote what `solo` wrote, or they part where the model's two best tokens were within
    a 1.25 ratio of probability (a model unsure between them): a batch's logits differ a little from
    one sequence's (llama.cpp sums in another order, as in llama-server's slots), which may tip such
    a choice either way."""
    assert other is not None
    k = next((i for i, (a, b) in enumerate(zip(solo.tokens, other.tokens, strict=False)) if a != b), None)
    if k is None:
        assert other.text == solo.text
        return
    at = engine.inspect([*engine.chat_tokens(chat(text)), *solo.tokens[:k]], GREEDY, top=2)
    first, second = sorted(at.stages[0].probs.values(), reverse=True)[:2]
    assert first / second < 1.25, f"parted at token {k} where the model was sure ({first:.3f} vs {second:.3f})"
    assert {solo.tokens[k], other.tokens[k]} <= set(at.stages[0].probs)


@pytest.mark.parametrize("n", [2, 4])
def test_concurrent_streams_write_what_each_writes_alone_and_overlap(process, n):
    solo = [alone(process, t) for t in PROMPTS[:n]]
    runs = together(process, PROMPTS[:n])
    for text, s, run in zip(PROMPTS, solo, runs, strict=False):
        assert_same_or_tie(process, text, s, run.done)
    assert all(s.text for s in solo)
    # served together, not in turn: every reply had shown text before any other reply ended
    assert max(r.first for r in runs) < min(r.end for r in runs)


def test_one_clients_cancel_leaves_the_others_replies_as_they_were(process):
    solo = [alone(process, t) for t in PROMPTS[:3]]
    runs: list[Run] = []
    cancels = {1: lambda: runs[1].deltas >= 2}
    runs.extend(Run(process, t, cancels.get(i)) for i, t in enumerate(PROMPTS[:3]))
    for run in runs:
        run.thread.start()
    for run in runs:
        run.thread.join(timeout=120)
    done = [r.done for r in runs]
    assert done[1] is not None and done[1].finish_reason == "cancelled"
    assert len(done[1].tokens) < 12
    assert_same_or_tie(process, PROMPTS[0], solo[0], done[0])
    assert_same_or_tie(process, PROMPTS[2], solo[2], done[2])


def test_a_resent_conversation_evaluates_only_what_it_adds(process):
    first = alone(process, "Name three colours.")
    again = alone(process, "Name three colours.")  # the same prompt: only its last token, for the logits
    assert (again.usage.prompt_eval_tokens, again.text) == (1, first.text)
    turn2 = [*chat("Name three colours."), {"role": "assistant", "content": first.text},
             {"role": "user", "content": "And three animals?"}]  # fmt: skip
    done = next(e for e in process.stream(turn2, GREEDY) if isinstance(e, Done))
    assert 0 < done.usage.prompt_eval_tokens < done.usage.prompt_tokens - first.usage.prompt_tokens


def test_the_inspector_runs_alone_beside_the_slots(process):
    runs: list[Run] = []
    inspected: list[object] = []

    def inspect() -> None:
        tokens = process.chat_tokens(chat(PROMPTS[0]))
        inspected.append(process.inspect(tokens, GREEDY, top=3))

    thread = threading.Thread(target=inspect)
    runs.extend(Run(process, t) for t in PROMPTS[:2])
    for run in runs:
        run.thread.start()
    thread.start()
    for t in [*(r.thread for r in runs), thread]:
        t.join(timeout=120)
    assert len(inspected) == 1 and all(r.done is not None and r.done.text for r in runs)
