"""Reasoning models with the real engine: the embedded SmolLM2 does not think, so these tests give
it a reasoning model's chat template (Qwen3's and DeepSeek-R1's generation prompts, verbatim) or a
grammar that makes its reply begin with `<think>...</think>`. Its real tokens then go through the
engine's whole path, and `andon ask` is run as a user runs it."""

from __future__ import annotations

import json

import pytest
from andon.app.chat.history import History
from andon.app.chat.session import ChatSession
from andon.app.engine.engine import Done, Engine, ReplyNotice
from andon.app.engine.prompt import ChatPrompt, PromptFitter
from andon.presets import Parameters
from andon.presets.store import PresetStore

from tests.app.test_cli import andon

pytestmark = pytest.mark.model

_TURNS = (
    "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- endfor %}"
)
# Qwen3's generation prompt: with enable_thinking false it writes an empty thinking block itself
QWEN3 = (
    _TURNS + "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}{%- endif %}"
)
# DeepSeek-R1's: the generation prompt opens the thinking, so the reply begins inside it
DEEPSEEK_R1 = _TURNS + "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n<think>\\n' }}{%- endif %}"
HELLO = [{"role": "user", "content": "Say hello."}]
THINKING_GRAMMAR = 'root ::= "<think>" "The user greets me." "</think>" "\\n\\n" "Hello!"'


def with_template(engine: Engine, monkeypatch, template: str) -> ChatPrompt:
    prompt = ChatPrompt(template, engine.texts, "reasoning-like")
    monkeypatch.setattr(engine, "prompt", prompt)
    monkeypatch.setattr(engine, "fitter", PromptFitter(prompt, engine.n_ctx))
    return prompt


def reply(engine: Engine, messages, **settings) -> tuple[Done, list[ReplyNotice]]:
    events = list(engine.stream(messages, Parameters.of({"temperature": 0.0, "seed": 1, **settings})))
    done = events[-1]
    assert isinstance(done, Done)
    return done, [e for e in events if isinstance(e, ReplyNotice)]


def prompt_text(engine: Engine, done: Done) -> str:
    ids = engine.context_ids()[: done.usage.prompt_tokens]
    return b"".join(engine.piece(int(t), special=True) for t in ids).decode("utf-8", "replace")


def test_enable_thinking_reaches_a_template_that_reads_it(engine, monkeypatch):
    prompt = with_template(engine, monkeypatch, QWEN3)
    assert prompt.format(HELLO, prompt.variables(True)).endswith("<|im_start|>assistant\n")
    assert prompt.format(HELLO, prompt.variables(False)).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    # through the engine: `think` false is the prompt the model is given
    done, notices = reply(engine, HELLO, think=False, num_predict=3)
    assert prompt_text(engine, done).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert not notices  # this template can switch reasoning off: nothing to say
    # the inspector and the context count see the prompt the reply was given
    given = [int(t) for t in engine.context_ids()[: done.usage.prompt_tokens]]
    assert engine.chat_tokens(HELLO, think=False) == given
    done, _ = reply(engine, HELLO, think=True, num_predict=3)
    assert prompt_text(engine, done).endswith("<|im_start|>assistant\n")


def test_a_reply_begins_inside_thinking_when_the_template_opened_it(engine, monkeypatch):
    with_template(engine, monkeypatch, DEEPSEEK_R1)
    done, _ = reply(engine, HELLO, num_predict=8)
    assert done.finish_reason == "length" and done.usage.completion_tokens == 8
    assert done.thinking and done.text == ""  # cut before any </think>: all of it is thinking


def test_a_reply_that_writes_think_markers_is_split_and_stop_strings_look_at_the_answer(engine):
    """The grammar makes the model write `<think>` in several of its own tokens; "greets" is a stop
    string that the thinking contains and that must not end the reply."""
    done, _ = reply(engine, HELLO, grammar=THINKING_GRAMMAR, stop=["greets"])
    assert (done.thinking, done.text, done.finish_reason) == ("The user greets me.", "Hello!", "stop")
    assert len(done.tokens) > 6  # the markers came in pieces


def test_think_false_where_the_template_has_no_switch_is_said_once(engine, monkeypatch):
    with_template(engine, monkeypatch, DEEPSEEK_R1)
    monkeypatch.setattr(engine, "_told_no_switch", False)
    _, notices = reply(engine, HELLO, think=False, num_predict=2)
    assert [n.text for n in notices] == [
        f"think is false, but the chat template of {engine.model_name} has no switch for reasoning "
        "(enable_thinking): it cannot be asked not to think; any thinking is still shown apart"
    ]
    _, notices = reply(engine, HELLO, think=False, num_predict=2)
    assert not notices  # once


def test_a_stored_reply_s_thinking_is_never_sent_back_to_the_model(engine, monkeypatch, tmp_path):
    with_template(engine, monkeypatch, QWEN3)
    history = History(tmp_path / "h.sqlite3")
    chat = history.create_chat("c", "balanced")
    session = ChatSession(history, chat, PresetStore(tmp_path / "presets"))
    session.add_user("What is 2+2?")
    answer = session.start_reply()
    history.update_message(answer.id, "It is 4.", "complete", {}, "SECRET-REASONING about the sum")
    session.add_user("And 3+3?")
    reopened = ChatSession(history, chat, PresetStore(tmp_path / "presets"))  # as the app opens a chat
    assert reopened.messages[1].thinking == "SECRET-REASONING about the sum"
    done, _ = reply(engine, reopened.engine_messages(), num_predict=2)
    text = prompt_text(engine, done)
    assert "It is 4." in text and "And 3+3?" in text
    assert "SECRET" not in text and "<think>" not in text
    history.close()


# --- andon ask, as a user runs it -----------------------------------------------------------------

ASK = ("ask", "Say hello.", "--grammar", THINKING_GRAMMAR, "--set", "temperature=0")


def test_ask_prints_the_answer_on_stdout_and_the_thinking_on_stderr():
    r = andon(*ASK)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Hello!\n"
    assert r.stderr == "Thinking...\nThe user greets me.\n...done thinking.\n\n"  # not a terminal: not dimmed


def test_ask_hide_thinking_and_json():
    r = andon(*ASK, "--hide-thinking")
    assert (r.returncode, r.stdout, r.stderr) == (0, "Hello!\n", "")
    r = andon(*ASK, "--json")
    assert r.returncode == 0 and r.stderr == ""
    out = json.loads(r.stdout)
    assert (out["thinking"], out["text"]) == ("The user greets me.", "Hello!")


def test_ask_json_thinking_is_empty_for_a_model_that_does_not_think():
    r = andon("ask", "What is the capital of Japan?", "--json", "--set", "num_predict=8", "--set", "think=false")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["thinking"] == "" and out["text"] and out["parameters"]["think"] is False
    assert r.stderr.startswith("andon: think is false, but the chat template of")  # SmolLM2's has no switch
