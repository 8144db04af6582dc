"""Several sequences of one prompt decoded together (app/engine/sequences.py): what beams, MBR
samples and a sweep's cells stand on. Compared with the chat's own single-sequence context."""

from __future__ import annotations

import numpy as np
import pytest
from andon.app.engine.sequences import Sequences, SequencesError

pytestmark = pytest.mark.model

PROMPT = [{"role": "user", "content": "Name three colours."}]


def greedy_in_the_chat_context(engine, tokens: list[int], n: int) -> list[int]:
    engine.context.truncate(0)
    engine.context.prefill(tokens)
    out = []
    for _ in range(n):
        out.append(int(np.argmax(engine.logits())))
        engine.context.append([out[-1]])
    return out


def test_forked_sequences_each_write_what_one_sequence_writes(engine):
    """A prompt evaluated once and copied to 4 sequences, then decoded 4 tokens a batch: each
    sequence's greedy reply is the chat context's greedy reply (a user would see the same text)."""
    tokens = engine.chat_tokens(PROMPT)
    expected = greedy_in_the_chat_context(engine, tokens, 16)
    with Sequences(engine.llm, 4, 512) as seqs:
        logits = seqs.fill(0, tokens)
        seqs.fork(0, [1, 2, 3])
        assert all(seqs.tokens[s] == tokens for s in range(4))
        next_tokens = {s: int(np.argmax(logits)) for s in range(4)}
        written: dict[int, list[int]] = {s: [] for s in range(4)}
        for _ in range(16):
            for s, t in next_tokens.items():
                written[s].append(t)
            rows = seqs.step(next_tokens)
            next_tokens = {s: int(np.argmax(r)) for s, r in rows.items()}
    assert all(w == expected for w in written.values())


def test_sequences_stay_apart_and_keep_truncates(engine):
    """Different tokens in two sequences give each its own continuation; `keep` takes a sequence
    back to a shorter prefix, and its next logits are those of that prefix again."""
    tokens = engine.chat_tokens(PROMPT)
    with Sequences(engine.llm, 2, 512) as seqs:
        first = seqs.fill(0, tokens)
        seqs.fork(0, [1])
        top2 = np.argsort(first)[::-1][:2]
        rows = seqs.step({0: int(top2[0]), 1: int(top2[1])})
        assert not np.allclose(rows[0], rows[1])
        alone = seqs.step({0: 42})[0]
        seqs.keep(0, len(tokens) + 1)
        again = seqs.step({0: 42})[0]
        np.testing.assert_allclose(again, alone, atol=1e-3)
        assert seqs.tokens[1] == [*tokens, int(top2[1])]


def test_a_full_cache_is_an_error_not_a_crash(engine):
    with Sequences(engine.llm, 2, 32) as seqs, pytest.raises(SequencesError):
        seqs.fill(0, list(range(100, 140)))
