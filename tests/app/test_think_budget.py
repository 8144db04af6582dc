"""think_budget (issue 24): at the budget the thinking is closed with the template's end marker
after the transition line, and the answer follows. The embedded SmolLM2 does not think: it is given
DeepSeek-R1's template (the reply begins inside the thinking) or Qwen3's with a grammar that makes
it write the thinking block (as tests/app/test_reasoning_model.py does)."""

from __future__ import annotations

import pytest
from andon.app.engine.engine import Done, Engine
from andon.app.engine.reasoning import TRANSITION
from andon.presets import Parameters

from tests.app.test_reasoning_model import DEEPSEEK_R1, HELLO, QWEN3, with_template

pytestmark = pytest.mark.model

THINK_THEN_HELLO = 'root ::= "<think>" [^<]* "</think>" "\\n\\n" "Hello!"'


def reply(engine: Engine, **settings) -> Done:
    values = {"temperature": 0.0, "seed": 1, "num_predict": 80, **settings}
    done = list(engine.stream(HELLO, Parameters.of(values)))[-1]
    assert isinstance(done, Done)
    return done


def test_the_thinking_is_closed_at_the_budget_and_the_answer_follows(engine, monkeypatch):
    with_template(engine, monkeypatch, DEEPSEEK_R1)
    free = reply(engine)
    assert free.text == "" and free.usage.thinking_tokens == free.usage.completion_tokens  # thinks to the end
    budget = 10
    done = reply(engine, think_budget=budget)
    closing = engine.tokenize(f"{TRANSITION}</think>\n\n")
    assert done.tokens[:budget] == free.tokens[:budget]  # the same thinking, up to the budget
    assert done.tokens[budget : budget + len(closing)] == closing  # then the line and the marker
    assert done.thinking.endswith(TRANSITION.strip()) and done.text.strip()  # an answer follows
    assert done.usage.thinking_tokens == budget + len(engine.tokenize(f"{TRANSITION}</think>"))


def test_a_grammar_forced_thinking_with_qwen3_s_template_is_closed_too(engine, monkeypatch):
    with_template(engine, monkeypatch, QWEN3)
    free = reply(engine, grammar=THINK_THEN_HELLO)
    assert free.text == "" and free.finish_reason == "length"  # it never stops thinking by itself
    done = reply(engine, grammar=THINK_THEN_HELLO, think_budget=6)
    assert (done.text, done.finish_reason) == ("Hello!", "stop")
    assert done.thinking.endswith(TRANSITION.strip())
    closing = engine.tokenize(f"{TRANSITION}</think>\n\n")
    at = next(k for k in range(len(done.tokens)) if done.tokens[k : k + len(closing)] == closing)
    after_marker = at + len(engine.tokenize(f"{TRANSITION}</think>"))
    # usage tells thinking and answer apart: the answer is what follows the end marker
    assert done.usage.completion_tokens - done.usage.thinking_tokens == len(done.tokens) - after_marker


def test_no_budget_and_a_model_that_does_not_think_change_nothing(engine):
    free = reply(engine, num_predict=20)
    assert reply(engine, num_predict=20, think_budget=3).tokens == free.tokens
    assert free.usage.thinking_tokens == 0
