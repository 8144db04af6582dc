"""DRY against llama.cpp's, with the embedded model's real vocabulary and tokenizer."""

from __future__ import annotations

import llama_cpp
import numpy as np
import pytest
from andon.samplers import Vocab, build_chain

from tests.samplers.native import NativeChain, distribution

pytestmark = pytest.mark.model  # the model's vocabulary and tokenizer

OFF = {"top_k": 0, "top_p": 1.0, "temperature": 1.0}
TEXT = (
    'The cat sat on the mat. The cat sat on the mat: the dog\n said "hello" * the cat sat on the '
    "mat and the cat sat on the"
)


@pytest.fixture(scope="module")
def model(model_path):
    llm = llama_cpp.Llama(str(model_path), vocab_only=True, verbose=False)
    vocab_ptr = llama_cpp.llama_model_get_vocab(llm.model)
    texts = []
    for token in range(llm.n_vocab()):
        buf = (llama_cpp.ctypes.c_char * 64)()
        n = llama_cpp.llama_token_to_piece(vocab_ptr, token, buf, 64, 0, True)
        texts.append(bytes(buf[:n]).decode("utf-8", "replace"))
    vocab = Vocab(texts, lambda s: llm.tokenize(s.encode(), add_bos=False, special=False))
    yield llm, vocab_ptr, vocab
    llm.close()


CASES = {
    "default": {"dry_multiplier": 0.8},
    "allowed_0": {"dry_multiplier": 0.8, "dry_allowed_length": 0},
    "long_window": {"dry_multiplier": 1.5, "dry_base": 1.1, "dry_allowed_length": 1, "dry_penalty_last_n": -1},
    "short_window": {"dry_multiplier": 2.0, "dry_penalty_last_n": 12},
    "multi_token_breaker": {"dry_multiplier": 0.8, "dry_sequence_breakers": ["the cat", "\n"]},
    "no_breakers": {"dry_multiplier": 0.8, "dry_sequence_breakers": []},
    "huge_base": {"dry_multiplier": 0.5, "dry_base": 40.0, "dry_allowed_length": 1},
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_dry_matches_llama_cpp(model, case):
    llm, vocab_ptr, vocab = model
    rng = np.random.default_rng(len(case))
    params = {**OFF, **CASES[case]}
    for text in (TEXT, TEXT * 3, "a b a b a b a b a b a b"):
        hist = np.array(llm.tokenize(text.encode(), add_bos=False), np.intc)
        logits = (rng.standard_normal(llm.n_vocab()) * 2).astype(np.float32)
        ours = build_chain(params, vocab=vocab, seed=1)(hist, logits)
        native = NativeChain(params, llm.n_vocab(), history_len=len(hist), vocab_ptr=vocab_ptr)
        native.accept(hist)
        theirs, _ = native.apply(logits)
        native.close()
        assert 0.5 * np.abs(distribution(ours) - distribution(theirs)).sum() <= 1e-4
        # the penalty really acted: some logits moved, and the same ones in both
        changed = ours != logits
        assert changed.any()
        assert np.array_equal(changed, theirs != logits)
        np.testing.assert_allclose(ours[changed], theirs[changed], rtol=1e-5)
