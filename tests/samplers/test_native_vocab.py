"""andon's chain against llama.cpp's samplers at the embedded model's vocabulary size, 49,152.

At this size the top-k selection takes its fast path (a strided sample sets a threshold, only the
tokens above it are partitioned), which the 4,096-token cases of test_native_exactness never
reach. The same requirement holds: the same distribution, and any token one keeps and the other
drops sits at a cut-off where float32 rounding decides. The last test uses the model's own logits.
"""

from __future__ import annotations

import zlib

import llama_cpp
import numpy as np
import pytest
from andon.samplers.candidates import descending

from tests.samplers.test_native_exactness import KINDS, OFF, assert_matches_native, logits_kind

V = 49_152

CASES = {
    "top_k": {**OFF, "top_k": 40},
    "top_k_300": {**OFF, "top_k": 300},
    "top_k_at_fast_path_limit": {**OFF, "top_k": V // 64},
    "top_k_past_fast_path": {**OFF, "top_k": V // 64 + 1},
    "top_p": {**OFF, "top_p": 0.9},
    "top_p_wide": {**OFF, "top_p": 0.99},
    "min_p_min_keep": {**OFF, "min_p": 0.9, "min_keep": 20},
    "top_n_sigma": {**OFF, "top_n_sigma": 0.5},  # llama.cpp's top-n-sigma has no min_keep
    "typical_p": {**OFF, "typical_p": 0.8},
    "xtc": {**OFF, "xtc_probability": 1.0, "xtc_threshold": 0.05},
    "default_order": {},
    "balanced_like": {"top_k": 40, "top_p": 0.9, "min_p": 0.05, "temperature": 0.7, "repeat_penalty": 1.1},
    "creative_like": {"top_k": 0, "top_p": 1.0, "top_n_sigma": 1.0, "temperature": 1.5, "xtc_probability": 1.0},
}


def history(rng: np.random.Generator) -> np.ndarray:
    h = rng.integers(0, V, 400)
    return np.concatenate([h, h[50:120]]).astype(np.intc)


def hidden_from_the_sample(rng: np.random.Generator) -> np.ndarray:
    """The best 200 tokens all sit between the strided sample's positions (never at i % 32 == 0)."""
    x = rng.standard_normal(V).astype(np.float32)
    x[np.arange(200) * 32 + 17] += np.float32(6) + rng.random(200).astype(np.float32)
    return x


@pytest.mark.parametrize("kind", [*KINDS, "hidden"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_llama_cpp_at_49152_tokens(case, kind):
    rng = np.random.default_rng(zlib.crc32(f"{case}-{kind}-49k".encode()))
    logits = hidden_from_the_sample(rng) if kind == "hidden" else logits_kind(kind, rng, V)
    assert_matches_native(CASES[case], logits, history(rng))


@pytest.mark.parametrize("k", [1, 40, 200, 768, 769, 5000])
def test_fast_top_k_selection_is_a_full_sorts_prefix(k):
    """The k best, best first, as a full sort gives them (equal logits may come in any order)."""
    rng = np.random.default_rng(k)
    for logits in (logits_kind("zipf", rng, V), hidden_from_the_sample(rng)):
        fast, full = descending(logits, k), np.argsort(-logits, kind="stable")[:k]
        assert np.array_equal(logits[fast], logits[full])
        above = logits[full[-1]]
        assert set(fast[logits[fast] > above]) == set(full[logits[full] > above])


@pytest.fixture(scope="module")
def model_logits(model_path):
    """The embedded model's next-token logits after a few prompts, and each prompt's tokens."""
    llm = llama_cpp.Llama(str(model_path), n_ctx=512, n_batch=512, verbose=False)
    try:
        out = []
        for prompt in ("The capital of Japan is", "Once upon a time, a dragon", "def fibonacci(n):\n    "):
            tokens = llm.tokenize(prompt.encode(), add_bos=False)
            llm.reset()
            llm.eval(tokens)
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),))
            out.append((logits.astype(np.float32), np.array(tokens, np.intc)))
        assert out[0][0].shape == (V,) and all(np.ptp(x) > 10 for x, _ in out)  # real, spread-out logits
        yield out
    finally:
        llm.close()


@pytest.mark.model
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_llama_cpp_on_the_models_own_logits(model_logits, case):
    for logits, tokens in model_logits:
        assert_matches_native(CASES[case], logits, tokens)
