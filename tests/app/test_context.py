"""The KV-cached context: several tokens verified in one pass, rejected positions removed."""

from __future__ import annotations

import numpy as np
import pytest
from andon.samplers import softmax

pytestmark = pytest.mark.model

JAPAN = [{"role": "user", "content": "What is the capital of Japan?"}]


def total_variation(a, b) -> float:
    return 0.5 * float(np.abs(softmax(a) - softmax(b)).sum())


def _kv_positions(engine) -> int:
    """How many positions llama.cpp's KV cache holds for the sequence (its own count)."""
    import llama_cpp

    memory = llama_cpp.llama_get_memory(engine.llm.ctx)
    return llama_cpp.llama_memory_seq_pos_max(memory, 0) + 1


def test_drafted_tokens_get_the_logits_of_each_position_in_one_pass(engine):
    prompt = engine.chat_tokens(JAPAN)
    draft = engine.tokenize("The capital of Japan is Tokyo.", special=False)
    engine.prefill(prompt)
    rows = engine.context.append_all_logits(draft)
    assert rows.shape == (len(draft), engine.n_vocab)
    assert engine.context.n_tokens == len(prompt) + len(draft) == _kv_positions(engine)
    engine.llm.reset()
    engine.prefill(prompt)
    for i, token in enumerate(draft):  # the same distributions, one token at a time
        engine.context.append([token])
        one = np.array(engine.logits())
        assert int(np.argmax(one)) == int(np.argmax(rows[i]))
        assert total_variation(one, rows[i]) < 0.05  # batches are computed a little differently


def test_truncate_removes_rejected_positions_from_the_kv_cache(engine):
    prompt = engine.chat_tokens(JAPAN)
    draft = engine.tokenize("The capital of Japan is Kyoto, not Osaka.", special=False)
    engine.prefill(prompt)
    engine.context.append_all_logits(draft)
    keep = len(prompt) + 5
    assert engine.context.truncate(keep)
    assert engine.context.n_tokens == keep == _kv_positions(engine)
    assert engine.context.ids().tolist() == prompt + draft[:5]
    other = engine.tokenize(" Tokyo", special=False)
    engine.context.append(other)
    after = np.array(engine.logits())
    engine.llm.reset()  # the same tokens evaluated from an empty cache
    engine.prefill(prompt + draft[:5] + other)
    fresh = np.array(engine.logits())
    assert int(np.argmax(after)) == int(np.argmax(fresh))
    assert total_variation(after, fresh) < 0.05


def test_a_prompt_evaluation_stopped_keeps_its_blocks_and_goes_on_from_there(engine):
    """Stop asked during a long prompt: it ends between blocks, the cache holds the blocks
    evaluated, and the same prompt asked again evaluates only the rest, to the same logits."""
    from andon.app.engine.context import PREFILL_BLOCK, PrefillCancelled

    tokens = engine.tokenize("The quick brown fox jumps over the lazy dog. " * 40)
    engine.context.truncate(0)
    asked = {"n": 0}

    def cancelled():
        asked["n"] += 1
        return asked["n"] > 3

    with pytest.raises(PrefillCancelled) as stop:
        engine.context.prefill(tokens, cancelled)
    assert stop.value.evaluated == engine.context.n_tokens == 3 * PREFILL_BLOCK
    assert engine.context.ids().tolist() == tokens[: 3 * PREFILL_BLOCK]
    assert engine.context.prefill(tokens) == len(tokens) - 3 * PREFILL_BLOCK
    resumed = np.array(engine.context.logits())
    engine.context.truncate(0)
    assert engine.context.prefill(tokens) == len(tokens)
    assert np.array_equal(resumed, engine.context.logits())


def test_the_warm_up_after_loading_leaves_an_empty_cache(model_path):
    """A new engine has evaluated once (llama.cpp's warm-up) and emptied its cache: the first
    prompt is evaluated whole from position 0, and greedy decoding writes what it writes after a
    cache emptied by hand."""
    import llama_cpp
    from andon.app.engine.engine import Engine, ModelOptions

    engine = Engine(ModelOptions(model_path, num_ctx=512))
    try:
        memory = llama_cpp.llama_get_memory(engine.llm.ctx)
        assert engine.context.n_tokens == 0 and llama_cpp.llama_memory_seq_pos_max(memory, 0) == -1
        tokens = engine.chat_tokens([{"role": "user", "content": "Name a colour."}])
        assert engine.prefill(tokens) == len(tokens)
        first = int(np.argmax(engine.logits()))
        engine.context.truncate(0)
        engine.prefill(tokens)
        assert int(np.argmax(engine.logits())) == first
    finally:
        engine.close()
