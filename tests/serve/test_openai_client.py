"""`andon serve` through the official `openai` package, unchanged: chat and completions, SSE with
usage, response_format, andon's parameters at the top level, errors in OpenAI's shape."""

from __future__ import annotations

import json

import openai
import pytest
from andon.app.serve.http import ServeServer

from tests.serve.conftest import MODEL

pytestmark = pytest.mark.model
HI = [{"role": "user", "content": "Say hello to Ada."}]
GREEDY = {"temperature": 0, "max_tokens": 12, "seed": 1}


@pytest.fixture(scope="module")
def client(server: ServeServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def test_chat_completion_and_its_stream_agree(client: openai.OpenAI):
    whole = client.chat.completions.create(model=MODEL, messages=HI, **GREEDY)  # type: ignore[arg-type]
    chunks = list(client.chat.completions.create(model=MODEL, messages=HI, stream=True,  # type: ignore[call-overload]
                                                 stream_options={"include_usage": True}, **GREEDY))  # fmt: skip
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert whole.choices[0].message.content and text == whole.choices[0].message.content
    assert whole.choices[0].finish_reason == "length" and whole.usage.completion_tokens == 12
    assert whole.usage.total_tokens == whole.usage.prompt_tokens + 12
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 12 and not chunks[-1].choices


def test_completions_answer_a_prompt(client: openai.OpenAI):
    reply = client.completions.create(model=MODEL, prompt="Name a colour.", max_tokens=5, temperature=0)
    assert reply.choices[0].text.strip() and reply.usage.completion_tokens == 5


def test_models_list_each_preset_and_an_unknown_model_is_404(client: openai.OpenAI):
    ids = [m.id for m in client.models.list().data]
    assert MODEL in ids and f"{MODEL}@creative" in ids
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=HI)  # type: ignore[arg-type]


def test_response_format_json_schema(client: openai.OpenAI):
    schema = {"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]}
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Ada is 36."}], max_tokens=40, temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema}},
    )  # fmt: skip
    assert isinstance(json.loads(reply.choices[0].message.content or "")["age"], int)


def test_andon_parameters_at_the_top_level(client: openai.OpenAI):
    greedy = client.chat.completions.create(model=MODEL, messages=HI, **GREEDY).choices[0].message.content  # type: ignore[arg-type]
    xtc = client.chat.completions.create(model=MODEL, messages=HI, **GREEDY,  # type: ignore[call-overload]
                                         extra_body={"xtc_probability": 1.0, "xtc_threshold": 0.01})  # fmt: skip
    assert xtc.choices[0].message.content.split()[0] != (greedy or "").split()[0]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=HI, extra_body={"dry_multplier": 1})  # type: ignore[arg-type]
    assert caught.value.status_code == 400 and "dry_multplier: unknown parameter" in caught.value.message


def test_stop_and_seed(client: openai.OpenAI):
    free = client.chat.completions.create(model=MODEL, messages=HI, **GREEDY).choices[0].message.content or ""  # type: ignore[arg-type]
    word = free.split()[1]
    stopped = client.chat.completions.create(model=MODEL, messages=HI, stop=[word], **GREEDY)  # type: ignore[arg-type]
    assert stopped.choices[0].finish_reason == "stop" and word not in (stopped.choices[0].message.content or "")
    sampled = [client.chat.completions.create(model=MODEL, messages=HI, max_tokens=12, seed=7, temperature=1.0)  # type: ignore[arg-type]
               .choices[0].message.content for _ in range(2)]  # fmt: skip
    assert sampled[0] == sampled[1]


def test_what_is_not_served_is_said(client: openai.OpenAI):
    for extra in ({"n": 2}, {"tools": [{"type": "function", "function": {"name": "f"}}]}):
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model=MODEL, messages=HI, extra_body=extra)  # type: ignore[arg-type]
        assert next(iter(extra)) in caught.value.message


def test_a_resent_chat_reports_its_cached_tokens(client: openai.OpenAI):
    chat = [{"role": "user", "content": "Tell me about the moon in two sentences."}]
    first = client.chat.completions.create(model=MODEL, messages=chat, **GREEDY)  # type: ignore[arg-type]
    chat += [{"role": "assistant", "content": first.choices[0].message.content or ""},
             {"role": "user", "content": "And the sun?"}]  # fmt: skip
    second = client.chat.completions.create(model=MODEL, messages=chat, **GREEDY)  # type: ignore[arg-type]
    cached = second.usage.prompt_tokens_details.cached_tokens  # type: ignore[union-attr]
    assert cached is not None and cached >= first.usage.prompt_tokens - 1  # type: ignore[union-attr]


def test_a_reasoning_effort_not_known_is_named_as_sent(client: openai.OpenAI):
    """OpenAI's field is refused under its own name and values, not as andon's `think`."""
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}],
                                       reasoning_effort="extreme", max_tokens=4)  # type: ignore[arg-type]  # fmt: skip
    line = str(refused.value)
    assert "reasoning_effort: 'extreme' is not allowed" in line and "minimal" in line and "think" not in line
    reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}],
                                           reasoning_effort="xhigh", max_tokens=4)  # fmt: skip
    assert reply.choices[0].message.content is not None
