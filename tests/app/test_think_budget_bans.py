"""think_budget with banned_strings: a ban that takes the budget's closing text back with the
thinking before it arms the budget again (the thinking is closed once it reaches the budget again),
and the thinking's tokens are counted to the token of its end marker even when bans held that
marker back with some of the answer. The embedded model is given reasoning templates, as
tests/app/test_think_budget.py does."""

from __future__ import annotations

import json
import re

import pytest
from andon.app.engine.engine import Done, Engine
from andon.app.engine.reasoning import TRANSITION

from tests.app.test_cli import andon
from tests.app.test_reasoning_model import DEEPSEEK_R1, QWEN3, with_template
from tests.app.test_think_budget import reply

pytestmark = pytest.mark.model

GREETS = 'root ::= "<think>" "The user greets me." "</think>" "\\n\\n" "Hello!"'


def tokens_to_marker(engine: Engine, done: Done, marker: str = "</think>") -> int:
    """The reference count of thinking tokens: the reply's tokens up to the one that completes the marker."""
    text = b""
    for k, token in enumerate(done.tokens, start=1):
        text += engine.piece(token, special=True)
        if marker.encode() in text:
            return k
    raise AssertionError("the reply never closed its thinking")


def test_the_thinking_count_ends_at_the_marker_when_bans_held_it_with_the_answer(engine, monkeypatch):
    with_template(engine, monkeypatch, QWEN3)
    # a pattern that may match from "me." through the marker and the blank line until "Hello" tells
    held = reply(engine, grammar=GREETS, banned_strings=[r"re:me\.</think>\s{0,4}Hi"])
    assert (held.thinking, held.text, held.usage.rewinds) == ("The user greets me.", "Hello!", 0)
    assert held.usage.thinking_tokens == tokens_to_marker(engine, held)
    free = reply(engine, grammar=GREETS)
    assert held.tokens == free.tokens and held.usage.thinking_tokens == free.usage.thinking_tokens


def test_a_ban_that_takes_the_close_back_arms_the_budget_again(engine, monkeypatch):
    """The ban matches a word and the closing line after it. A ban holds a word that may begin a
    match back, and the thinking is counted (so closed) once released: the close comes after a
    word that ended a match's first chance while the next word began another."""
    with_template(engine, monkeypatch, DEEPSEEK_R1)
    budget = 10
    free = reply(engine).thinking.split()  # the model's thinking, word by word
    at = len(reply(engine, think_budget=budget).thinking.split(TRANSITION.strip())[0].split()) - 1
    first, then = free[at], free[at + 1]  # the word the close followed, and the one the model writes next
    ban = f"re:({re.escape(first)}|{re.escape(then)})\\s{{0,4}}Okay"
    done = reply(engine, think_budget=budget, banned_strings=[ban])
    assert done.usage.rewinds >= 1  # the close after `then` was taken back with `then`
    assert done.thinking.count(TRANSITION.strip()) == 1 and done.text.strip()  # closed again, the answer follows
    assert not re.search(ban[3:], done.thinking + done.text)
    closing = len(engine.tokenize(f"{TRANSITION}</think>"))
    assert done.usage.thinking_tokens == tokens_to_marker(engine, done)
    assert budget + closing <= done.usage.thinking_tokens <= budget + closing + 3  # late only by held tokens


def test_ask_verbose_shows_the_thinking_and_answer_tokens_apart():
    from tests.app.test_reasoning_model import ASK

    r = andon(*ASK, "--verbose", "--hide-thinking")
    assert r.returncode == 0 and r.stdout == "Hello!\n", r.stderr
    lines = dict(line.split(":", 1) for line in r.stderr.splitlines() if ":" in line)
    thinking, answer = (int(lines[k].split()[0]) for k in ("thinking tokens", "answer tokens"))
    assert thinking + answer == int(lines["eval count"].split()[0])
    usage = json.loads(andon(*ASK, "--json").stdout)["usage"]  # the same reply (temperature 0)
    assert (thinking, answer) == (usage["thinking_tokens"], usage["answer_tokens"]) and answer >= 2  # "\n\nHello!"
    plain = andon("ask", "Say hello.", "--verbose", "--set", "num_predict=3", "--set", "think=false")
    assert plain.returncode == 0 and "thinking tokens" not in plain.stderr  # a model that did not think
