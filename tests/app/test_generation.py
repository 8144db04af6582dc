"""One reply: the stop filter, the text decoder, and the grammar's place in it (TokenConstraint)."""

from __future__ import annotations

import numpy as np
import pytest
from andon.app.engine.generation import Done, PromptStats, Reply, StopFilter, sample
from andon.app.engine.tokens import TextDecoder
from andon.presets import Parameters
from andon.samplers import build_chain

N_VOCAB = 500


class OnlyTokens:
    """A grammar in miniature: a fixed set of tokens, then (after `length` of them) only `ends`."""

    def __init__(self, allowed: set[int], length: int | None = None, ends: set[int] = frozenset()) -> None:
        self.allowed, self.length, self.ends = allowed, length, ends
        self.accepted: list[int] = []
        self.refused = 0

    def _now(self) -> set[int]:
        return self.ends if self.length is not None and len(self.accepted) >= self.length else self.allowed

    def allows(self, token: int) -> bool:
        ok = token in self._now()
        self.refused += not ok
        return ok

    def mask(self, logits):
        keep = np.fromiter(self._now(), dtype=np.intp)
        out = np.full_like(logits, -np.inf)
        out[keep] = logits[keep]
        return out

    def accept(self, token: int) -> None:
        self.accepted.append(token)


def test_stop_filter_holds_partial_matches():
    f = StopFilter(["</end>"])
    assert f.feed("hello </") == ("hello ", False)
    assert f.feed("en") == ("", False)
    assert f.feed("x") == ("</enx", False)
    assert f.feed(" ok </end> never") == (" ok ", True)


def test_text_decoder_holds_split_characters():
    d = TextDecoder()
    data = "東京😀".encode()
    shown = [d.feed(data[i : i + 1]) for i in range(len(data))]
    assert shown == ["", "", "東", "", "", "京", "", "", "", "😀"]
    assert d.feed("é".encode()[:1]) == "" and d.finish() == ""  # a cut-off character is dropped
    assert TextDecoder().feed(b"a\xffb") == "a\ufffdb"  # bytes that are no character at all


def _choice(params: Parameters, seed: int, constraint: OnlyTokens | None, ids, logits):
    chain = build_chain(params.sampling(), n_vocab=N_VOCAB, seed=seed)
    # choose() reads only the chain, the generator and the constraint: no model is needed
    reply = Reply(None, None, chain, params, seed, PromptStats(0, 0), constraint=constraint)  # type: ignore[arg-type]
    return reply.choose(ids, logits), chain, reply.rng


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_a_refused_token_is_chosen_again_as_if_the_grammar_had_masked_first(seed):
    """llama.cpp's common_sampler_sample: the chain picks, the grammar checks the pick, and on a
    refusal the chain runs again on the masked candidates. XTC's draw and the sampling draw
    advance once per token, so the token is the one masking first would give with those draws."""
    rng = np.random.default_rng(seed)
    logits = (rng.normal(size=N_VOCAB) * 3).astype(np.float32)
    ids = rng.integers(0, N_VOCAB, 12).astype(np.intc)
    params = Parameters.of({"temperature": 1.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0,
                            "xtc_probability": 0.5, "xtc_threshold": 0.02})  # fmt: skip
    free, _, _ = _choice(params, seed, None, ids, logits)
    allowed = {t for t in range(N_VOCAB) if t % 3 == 0 and t != free}
    constraint = OnlyTokens(allowed)
    token, chain, draws = _choice(params, seed, constraint, ids, logits)
    assert constraint.refused == 1 and token in allowed

    reference = build_chain(params.sampling(), n_vocab=N_VOCAB, seed=seed)
    reference_draws = np.random.default_rng([seed, 1])
    expected = sample(reference.candidates_after(ids, OnlyTokens(allowed).mask(logits)), reference_draws)
    assert token == expected
    assert chain.rng.bit_generator.state == reference.rng.bit_generator.state
    assert draws.bit_generator.state == reference_draws.bit_generator.state


def test_an_allowed_pick_costs_one_run_of_the_chain():
    rng = np.random.default_rng(9)
    logits = (rng.normal(size=N_VOCAB) * 3).astype(np.float32)
    ids = np.zeros(3, np.intc)
    params = Parameters.of({"temperature": 1.0, "xtc_probability": 0.5, "xtc_threshold": 0.02})
    free, free_chain, _ = _choice(params, 9, None, ids, logits)
    token, chain, _ = _choice(params, 9, OnlyTokens(set(range(N_VOCAB))), ids, logits)
    assert token == free and chain.rng.bit_generator.state == free_chain.rng.bit_generator.state


@pytest.mark.model
def test_a_constraint_shapes_the_whole_reply_and_ends_it(engine):
    digits = {t for t in range(engine.n_vocab) if engine.piece(t).strip(b" ").isdigit()}
    ends = {t for t in range(engine.n_vocab) if engine.is_end_of_turn(t)}
    constraint = OnlyTokens(digits, length=6, ends=ends)
    prompt = [{"role": "user", "content": "Write a short poem about the sea."}]
    events = list(engine.stream(prompt, Parameters.of({"temperature": 0.8, "seed": 3}), constraint=constraint))
    done = events[-1]
    assert isinstance(done, Done)
    assert done.text.replace(" ", "").isdigit()
    assert done.finish_reason == "stop" and done.usage.completion_tokens == 6
    assert constraint.accepted == done.tokens and constraint.refused > 0
