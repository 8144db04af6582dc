"""End-to-end on the embedded SmolLM2 model: what a user of `andon ask` and the app relies on."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from andon.app.engine.engine import ContextFullError, Delta, Done, ReplyNotice
from andon.presets import Parameters
from andon.samplers import build_chain

pytestmark = pytest.mark.model  # every test here loads the embedded model

GREEDY = Parameters.of({"temperature": 0})
JAPAN = [{"role": "user", "content": "What is the capital of Japan?"}]


def run(engine, messages, params, cancelled=None):
    deltas, notices, done = [], [], None
    for event in engine.stream(messages, params, cancelled=cancelled):
        if isinstance(event, Delta):
            deltas.append(event.text)
        elif isinstance(event, ReplyNotice):
            notices.append(event.text)
        else:
            done = event
    assert isinstance(done, Done)
    return deltas, notices, done


def test_capital_of_japan_at_temperature_zero_is_tokyo(engine):
    deltas, _, done = run(engine, JAPAN, GREEDY)
    assert "Tokyo" in done.text
    assert "".join(deltas) == done.text
    assert done.finish_reason == "stop"


def test_greedy_is_the_same_every_time(engine):
    texts = {run(engine, JAPAN, GREEDY)[2].text for _ in range(3)}
    assert len(texts) == 1


def test_usage_figures(engine):
    _, _, done = run(engine, JAPAN, GREEDY)
    u = done.usage
    assert u.prompt_tokens == len(engine.chat_tokens(JAPAN))
    assert u.completion_tokens == len(done.tokens) > 0
    assert 0 < u.ttft_s < 30
    assert u.tokens_per_second > 0


def test_num_predict_stops_with_length(engine):
    params = Parameters.of({"temperature": 0.8, "num_predict": 7, "seed": 1})
    _, _, done = run(engine, [{"role": "user", "content": "Write a long story about a dragon."}], params)
    assert done.finish_reason == "length"
    assert done.usage.completion_tokens == 7


def test_stop_string_is_never_shown_even_split_across_tokens(engine):
    base = run(engine, JAPAN, GREEDY)[2].text
    assert "Tokyo" in base
    # "kyo" starts inside a token ("Tok" + "yo" or similar): held back, never shown
    for stop in ("Tokyo", "kyo", "of Japan is"):
        deltas, _, done = run(engine, JAPAN, Parameters.of({"temperature": 0, "stop": [stop]}))
        shown = "".join(deltas)
        assert stop not in shown
        assert shown == done.text == base[: base.index(stop)]
        assert done.finish_reason == "stop"


def test_cancellation_between_tokens_keeps_the_partial_reply(engine):
    """Asked once five tokens are written (the prompt's evaluation asks too, between its blocks)."""

    def cancelled():  # the cache holds the prompt and every token written but the last
        return engine.context.n_tokens >= prompt + 4

    prompt = len(engine.chat_tokens([{"role": "user", "content": "Tell me about dragons."}]))

    params = Parameters.of({"temperature": 0.7, "seed": 3})
    deltas, _, done = run(engine, [{"role": "user", "content": "Tell me about dragons."}], params, cancelled)
    assert done.finish_reason == "cancelled"
    assert done.usage.completion_tokens == 5
    assert done.text == "".join(deltas) and done.text


def test_multi_turn_reuses_the_kv_cache(engine):
    _, _, first = run(engine, JAPAN, GREEDY)
    follow = [*JAPAN, {"role": "assistant", "content": first.text}, {"role": "user", "content": "And France?"}]
    _, _, second = run(engine, follow, GREEDY)
    assert second.usage.prompt_tokens > first.usage.prompt_tokens
    # only the new turn's tokens are evaluated, not the whole history again
    assert second.usage.prompt_eval_tokens < second.usage.prompt_tokens - first.usage.prompt_tokens + 10


def test_outgrown_history_drops_oldest_turns_but_never_the_system_prompt(model_path):
    from andon.app.engine.engine import Engine, ModelOptions

    small = Engine(ModelOptions(model_path, num_ctx=256))
    try:
        system = {"role": "system", "content": "You are terse."}
        history = [system]
        for i in range(12):
            history += [
                {"role": "user", "content": f"Question number {i} about the weather today?"},
                {"role": "assistant", "content": f"Answer number {i}: it is sunny and warm outside."},
            ]
        history.append({"role": "user", "content": "What is the capital of Japan?"})
        params = Parameters.of({"temperature": 0, "num_predict": 16})
        msgs, tokens, dropped = small.fit(history, 16)
        assert dropped > 0 and msgs[0] == system and msgs[-1] == history[-1]
        assert len(tokens) + 16 <= 256
        _, notices, done = run(small, history, params)
        assert done.text
        assert notices and "dropped" in notices[0] and "num_ctx" in notices[0]
        _, notices, _ = run(small, history, params)
        assert notices == []  # the same drop is told once, not under every reply
        with pytest.raises(ContextFullError, match="num_ctx"):
            small.fit([system, {"role": "user", "content": "word " * 400}], 16)
    finally:
        small.close()


def test_the_chain_plugs_into_llama_cpp_python_as_a_logits_processor(engine):
    """llama-cpp-python's own create_completion, steered only by andon's chain."""
    from llama_cpp import LogitsProcessorList

    prompt = engine.format_chat(JAPAN)
    plain = engine.llm.create_completion(prompt, max_tokens=8, temperature=0)["choices"][0]["text"]
    first = engine.tokenize(plain, special=False)[0]
    # ban the token greedy decoding would start with; temperature 0 leaves one token per step
    chain = build_chain({"temperature": 0, "logit_bias": {first: False}})
    steered = engine.llm.create_completion(
        prompt, max_tokens=8, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0,
        logits_processor=LogitsProcessorList([chain]),
    )["choices"][0]["text"]  # fmt: skip
    assert steered and steered != plain
    assert engine.tokenize(steered, special=False)[0] != first
    # andon's engine with the same parameters writes the same text
    engine.llm.reset()
    params = Parameters.of({"temperature": 0, "logit_bias": {str(first): False}, "num_predict": 8})
    assert run(engine, JAPAN, params)[2].text.startswith(steered.strip()[:10])


def test_seeded_sampling_is_reproducible(engine):
    params = Parameters.of({"temperature": 1.0, "seed": 42, "num_predict": 20})
    story = [{"role": "user", "content": "Write a story about a dragon."}]
    a, b = run(engine, story, params)[2], run(engine, story, params)[2]
    assert a.text == b.text and a.seed == b.seed == 42


def test_logits_view_is_the_models_next_token_distribution(engine):
    engine.prefill(engine.chat_tokens(JAPAN))
    logits = np.array(engine.logits())
    assert logits.shape == (engine.n_vocab,) and np.isfinite(logits).all()


def test_streams_whole_utf8_characters_only(engine):
    """Byte-level tokens can split a character; no delta may carry half of one."""
    prompt = [{"role": "user", "content": "Write the word Tokyo in Japanese: 東京. Then write café, naïve and 😀."}]
    for seed in (4, 7):  # replies in Japanese that num_predict cuts in the middle of a character
        deltas, _, done = run(engine, prompt, Parameters.of({"temperature": 0.9, "seed": seed, "num_predict": 60}))
        assert all("\ufffd" not in d for d in deltas)
        assert any(ord(ch) > 0x3000 for ch in done.text)  # the reply did use multi-byte characters


def test_same_prompt_gives_bit_identical_logits_whatever_the_cache_held(engine):
    """Greedy replies repeat exactly: a prompt is always evaluated in the same aligned blocks."""
    japan = engine.chat_tokens(JAPAN)
    other = engine.chat_tokens([{"role": "user", "content": "Name three colours of the rainbow, please."}])
    engine.prefill(japan)
    first = np.array(engine.logits())
    run(engine, [{"role": "user", "content": "Write a haiku."}], Parameters.of({"num_predict": 12, "seed": 2}))
    engine.prefill(other)
    engine.prefill(japan)
    assert np.array_equal(np.array(engine.logits()), first)
    engine.prefill(japan)  # asked again right away: only the last block is evaluated again
    assert np.array_equal(np.array(engine.logits()), first)


def test_deltas_carry_a_live_token_count(engine):
    params = Parameters.of({"temperature": 0.8, "seed": 5, "num_predict": 30})
    events = [e for e in engine.stream([{"role": "user", "content": "Tell me about cats."}], params)]
    deltas = [e for e in events if isinstance(e, Delta)]
    counts = [d.completion_tokens for d in deltas]
    assert counts == sorted(counts) and counts[-1] <= events[-1].usage.completion_tokens
    assert deltas[-1].seconds > 0


def test_a_model_without_a_chat_template_says_so_once_and_continues_plainly(model_path):
    from andon.app.engine.engine import Engine, ModelOptions
    from andon.app.engine.prompt import ChatPrompt, PromptFitter

    base = Engine(ModelOptions(model_path, num_ctx=512))
    try:
        base.prompt = ChatPrompt(None, base.texts, base.model_name)  # as a file without a template loads
        base.fitter = PromptFitter(base.prompt, base.n_ctx)
        params = Parameters.of({"temperature": 0, "num_predict": 8})
        _, notices, done = run(base, JAPAN, params)
        assert notices == [f"{base.model_name} has no chat template: the conversation is given to it as a "
                           "plain transcript to continue"]  # fmt: skip
        assert base.format_chat(JAPAN) == "User: What is the capital of Japan?\nAssistant:"
        assert done.text and done.usage.prompt_tokens == len(base.chat_tokens(JAPAN))
        assert run(base, JAPAN, params)[1] == []  # said once
        # the model writing the user's next turn ends its reply there, as a chat template's end of turn would
        scripted = Parameters.of({"temperature": 0, "grammar": 'root ::= "Tokyo.\\nUser: and Peru?"'})
        _, _, done = run(base, JAPAN, scripted)
        assert (done.text, done.finish_reason) == ("Tokyo.", "stop")
    finally:
        base.close()


def test_a_long_chat_keeps_the_kv_cache_useful_after_dropping_old_turns(model_path):
    """Once the chat outgrows num_ctx, a drop frees half of the context at once and the turns after
    it start their prompt where the cached one starts: they evaluate only what they add (the reply
    before them and the new message), not the whole prompt again."""
    from andon.app.engine.engine import Engine, ModelOptions

    small = Engine(ModelOptions(model_path, num_ctx=512))
    try:
        system = {"role": "system", "content": "You are a helpful assistant."}
        history = [system]
        params = Parameters.of({"temperature": 0.7, "seed": 1, "num_predict": 16})
        turns = []
        for i in range(30):
            history.append({"role": "user", "content": f"Tell me one short fact about the number {i}, please."})
            _, _, done = run(small, history, params)
            turns.append((done.usage.prompt_tokens, done.usage.prompt_eval_tokens, done.dropped_turns))
            history.append({"role": "assistant", "content": done.text})
        first_drop = next(i for i, (_, _, dropped) in enumerate(turns) if dropped)
        assert first_drop < 15
        kept, cheap = 0, 0
        for (before, _, dropped_before), (prompt, evaluated, dropped) in pairwise(turns[first_drop:]):
            assert prompt + 16 <= 512 and evaluated <= prompt
            if dropped == dropped_before:  # the same first message as the turn before
                kept += 1
                cheap += evaluated <= prompt - before + 2  # what it adds (and the reply's last token)
            else:  # a drop: the kept prompt is about half of what the context can hold
                assert prompt <= (512 - 16) // 2 + 64
        assert kept >= 2 * (len(turns) - first_drop - 1) // 3  # most turns keep the cache
        assert cheap == kept
        msgs, _, _ = small.fit(history, 16)
        assert msgs[0] == system
    finally:
        small.close()
