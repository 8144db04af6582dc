"""The chat prompt: one messages_for, chat templates that differ, and what fits num_ctx."""

from __future__ import annotations

import pytest
from andon.app.engine.prompt import ChatPrompt, ChatTemplateError, fold_system, messages_for

# Gemma 2's template as its GGUF files carry it: no system role, strictly alternating turns.
GEMMA2 = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)
SYSTEM = {"role": "system", "content": "You answer in one word."}
HELLO = {"role": "user", "content": "Hello?"}


def test_messages_for_builds_every_prompt_the_same_way():
    history = [HELLO, {"role": "assistant", "content": "Hi."}]
    assert messages_for("You answer in one word.", history, "Why?") == [
        SYSTEM, *history, {"role": "user", "content": "Why?"},
    ]  # fmt: skip
    assert messages_for("", (), "Why?") == [{"role": "user", "content": "Why?"}]  # no empty system prompt
    assert messages_for(None, history) == history


def test_fold_system_moves_the_system_prompt_into_the_first_user_message():
    assert fold_system([SYSTEM, HELLO]) == [{"role": "user", "content": "You answer in one word.\n\nHello?"}]
    assert fold_system([HELLO]) == [HELLO]


@pytest.mark.model
def test_a_template_without_a_system_role_gets_the_system_prompt_in_the_first_turn(engine):
    prompt = ChatPrompt(GEMMA2, engine.texts, "gemma-like")
    text = prompt.format([SYSTEM, HELLO])
    assert "<start_of_turn>user\nYou answer in one word.\n\nHello?<end_of_turn>\n" in text
    assert text.endswith("<start_of_turn>model\n")  # add_generation_prompt: the reply's turn is opened
    assert prompt.folds_system
    later = prompt.format([SYSTEM, HELLO, {"role": "assistant", "content": "Hi."}, HELLO])
    assert later.count("<start_of_turn>user") == 2 and "You answer in one word." in later
    assert prompt.tokens([SYSTEM, HELLO])  # and it tokenizes


@pytest.mark.model
def test_a_template_that_refuses_the_conversation_is_one_clear_line(engine):
    prompt = ChatPrompt(GEMMA2, engine.texts, "gemma-like")
    with pytest.raises(ChatTemplateError) as err:
        prompt.format([HELLO, HELLO])
    message = str(err.value)
    assert message == (
        "the chat template of gemma-like cannot format this conversation: "
        "Conversation roles must alternate user/assistant/user/assistant/..."
    )


@pytest.mark.model
def test_a_template_that_is_not_valid_jinja_is_one_clear_line(engine):
    prompt = ChatPrompt("{% for m in messages %}{{ m.content }", engine.texts, "broken")
    assert prompt.has_template
    with pytest.raises(ChatTemplateError, match=r"^the chat template of broken is not valid: ") as err:
        prompt.format([HELLO])
    assert "\n" not in str(err.value)


@pytest.mark.model
def test_a_model_without_a_template_continues_a_plain_transcript(engine):
    prompt = ChatPrompt(None, engine.texts, "base")
    assert not prompt.has_template
    assert prompt.format([SYSTEM, HELLO]) == "System: You answer in one word.\nUser: Hello?\nAssistant:"


@pytest.mark.model
def test_the_models_own_template_formats_chatml(engine):
    text = engine.format_chat([SYSTEM, HELLO])
    assert text.startswith("<|im_start|>system\nYou answer in one word.<|im_end|>")
    assert text.endswith("<|im_start|>assistant\n")
