"""`logprobs` / `top_logprobs` through the official `openai` and `ollama` packages: OpenAI's chat
`logprobs.content` (streamed in each chunk), the legacy completions' shape, Ollama's `logprobs`;
the values are log_softmax of llama.cpp's logits at each position of the reply."""

from __future__ import annotations

import math

import httpx
import numpy as np
import ollama
import openai
import pytest
from andon.app.serve.http import ServeServer

from tests.serve.conftest import MODEL

pytestmark = pytest.mark.model
HI = [{"role": "user", "content": "Say hello to Ada."}]
GREEDY = {"temperature": 0, "max_tokens": 6, "seed": 1, "extra_body": {"repeat_penalty": 1.0}}  # the likeliest token


@pytest.fixture(scope="module")
def client(server: ServeServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def _prompt(server: ServeServer, engine) -> list[int]:
    """The chat's prompt as the server writes it: the preset's system prompt (/api/show's) first."""
    system = httpx.post(f"{server.url}/api/show", json={"model": MODEL}).json()["system"]
    return engine.chat_tokens([{"role": "system", "content": system}, *HI] if system else HI)


def _reference(engine, prompt: list[int], reply_bytes: list[list[int]], top: int) -> list[tuple[float, list[float]]]:
    """(the chosen token's logprob, the `top` best logprobs) at each position, from llama.cpp's
    logits for the chat's prompt and the reply so far (the greedy reply's token ids found by their bytes)."""
    tokens: list[int] = []
    out = []
    for piece in reply_bytes:
        engine.context.truncate(0)
        engine.context.prefill([*prompt, *tokens])
        logits = np.asarray(engine.logits(), dtype=np.float64)
        ref = logits - (logits.max() + np.log(np.exp(logits - logits.max()).sum()))
        token = int(np.argmax(ref))  # greedy
        assert list(engine.piece(token)) == piece
        out.append((float(ref[token]), sorted(ref.tolist(), reverse=True)[:top]))
        tokens.append(token)
    return out


def _content(reply) -> list:
    return reply.choices[0].logprobs.content


def test_chat_logprobs_are_llama_cpps_and_the_stream_carries_the_same(server: ServeServer, client: openai.OpenAI,
                                                                      engine):  # fmt: skip
    whole = client.chat.completions.create(model=MODEL, messages=HI, logprobs=True, top_logprobs=3,  # type: ignore[arg-type]
                                           **GREEDY)  # fmt: skip
    entries = _content(whole)
    assert len(entries) == whole.usage.completion_tokens == 6
    prompt = _prompt(server, engine)
    assert whole.usage.prompt_tokens == len(prompt)
    assert "".join(e.token for e in entries).startswith(whole.choices[0].message.content)
    for entry, (logprob, best) in zip(entries, _reference(engine, prompt, [e.bytes for e in entries], 3), strict=True):
        assert entry.logprob == pytest.approx(logprob, abs=1e-2)
        assert [t.logprob for t in entry.top_logprobs] == pytest.approx(best, abs=1e-2)
        assert entry.top_logprobs[0].token == entry.token  # greedy: the chosen one is the likeliest
        assert sum(math.exp(t.logprob) for t in entry.top_logprobs) <= 1.0 + 1e-6
    chunks = list(client.chat.completions.create(model=MODEL, messages=HI, logprobs=True, top_logprobs=3,  # type: ignore[call-overload]
                                                 stream=True, **GREEDY))  # fmt: skip
    streamed = [e for c in chunks if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content]
    assert [e.model_dump() for e in streamed] == [e.model_dump() for e in entries]
    for c in chunks:  # each chunk with text carries its own tokens
        if c.choices and c.choices[0].delta.content:
            assert "".join(e.token for e in c.choices[0].logprobs.content) == c.choices[0].delta.content


def test_without_logprobs_there_are_none(client: openai.OpenAI):
    reply = client.chat.completions.create(model=MODEL, messages=HI, **GREEDY)  # type: ignore[arg-type]
    assert reply.choices[0].logprobs is None


def test_completions_give_the_legacy_shape(client: openai.OpenAI):
    chat = _content(client.chat.completions.create(model=MODEL, messages=HI, logprobs=True, top_logprobs=2,  # type: ignore[arg-type]
                                                   **GREEDY))  # fmt: skip
    reply = client.completions.create(model=MODEL, prompt=HI[0]["content"], logprobs=2, **GREEDY)
    lp = reply.choices[0].logprobs
    assert lp.tokens == [e.token for e in chat]
    assert lp.token_logprobs == [e.logprob for e in chat]
    assert lp.top_logprobs == [{t.token: t.logprob for t in e.top_logprobs} for e in chat]
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(len(lp.tokens))]
    streamed = list(client.completions.create(model=MODEL, prompt=HI[0]["content"], logprobs=2, stream=True,
                                              **GREEDY))  # fmt: skip
    assert [t for c in streamed if c.choices[0].logprobs for t in c.choices[0].logprobs.tokens] == lp.tokens
    assert [o for c in streamed if c.choices[0].logprobs for o in c.choices[0].logprobs.text_offset] == lp.text_offset


def test_ollama_logprobs_equal_openais(server: ServeServer, client: openai.OpenAI):
    chat = _content(client.chat.completions.create(model=MODEL, messages=HI, logprobs=True, top_logprobs=2,  # type: ignore[arg-type]
                                                   **GREEDY))  # fmt: skip
    o = ollama.Client(host=server.url)
    options = {"temperature": 0, "num_predict": 6, "seed": 1, "repeat_penalty": 1.0}
    whole = o.chat(model=MODEL, messages=HI, options=options, logprobs=True, top_logprobs=2)
    assert [(e.token, e.logprob) for e in whole.logprobs] == [(e.token, e.logprob) for e in chat]
    assert [[t.logprob for t in e.top_logprobs] for e in whole.logprobs] == [
        [t.logprob for t in e.top_logprobs] for e in chat
    ]
    parts = o.generate(model=MODEL, prompt=HI[0]["content"], options=options, logprobs=True, stream=True)
    assert [e.token for p in parts for e in (p.logprobs or [])] == [e.token for e in chat]


def test_bad_logprobs_are_400_with_one_line(server: ServeServer, client: openai.OpenAI):
    cases = [
        ({"top_logprobs": 2}, "top_logprobs: needs logprobs set to true"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs: 21 is not allowed (a whole number from 0 to 20)"),
        ({"logprobs": True, "num_beams": 2}, "logprobs: not served with num_beams or mbr_samples"),
    ]
    for extra, line in cases:
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model=MODEL, messages=HI, extra_body=extra)  # type: ignore[arg-type]
        assert caught.value.status_code == 400 and caught.value.body["message"].startswith(line)  # type: ignore[index]
    with pytest.raises(ollama.ResponseError) as refused:
        ollama.Client(host=server.url).chat(model=MODEL, messages=HI, top_logprobs=3)
    assert refused.value.status_code == 400 and refused.value.error == "top_logprobs: needs logprobs set to true"
