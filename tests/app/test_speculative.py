"""Speculative decoding (`draft`): more tokens per forward pass, the same replies.

The model tests check what a user relies on: a greedy reply is token for token the reply without a
draft (every built-in preset, n-gram and draft model); a seeded sampled reply is too (the acceptance
rule draws each token from the chain's distribution as plain decoding does, so XTC's draws,
mirostat's mu and the sampling generator advance once per token); over many seeds the first tokens
follow the chain's exact distribution (a chi-square test); stop strings, num_predict, end of turn
and cancellation end a reply where they end it without a draft, and no rejected draft stays in the
KV cache.
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator

import numpy as np
import pytest
from andon.app.engine.draft_costs import RECALIBRATE_STEPS, CostModel
from andon.app.engine.engine import PREFILL_BLOCK, Delta, Done
from andon.app.engine.speculative import DraftModelError, Speculator, lookup
from andon.presets import Parameters
from andon.presets.store import PresetStore
from andon.samplers import build_chain

from tests.sample_code import EXCERPT, rewrite

REWRITE = rewrite(EXCERPT)
BUILTIN = ("balanced", "code", "creative", "factual")


def run(engine, messages, params, cancelled=None) -> Done:
    deltas, done = [], None
    for event in engine.stream(messages, params, cancelled=cancelled):
        if isinstance(event, Delta):
            deltas.append(event.text)
        elif isinstance(event, Done):
            done = event
    assert done is not None and "".join(deltas) == done.text
    return done


def preset(name: str, **changes) -> Parameters:
    return Parameters.of(changes, base=PresetStore().load(name).parameters)


def cheap_batches() -> CostModel:
    """Costs as a GPU measures them: a batch of drafts costs about one pass."""
    costs = CostModel()
    costs.single(0.010)
    for _ in range(40):
        costs.batch(2, 0.011)
        costs.batch(17, 0.012)
    return costs


class FreeBatches(CostModel):
    """A machine where a batch costs one pass, whatever this one measures: every draft is
    verified, so each model test below exercises verification on any machine."""

    def __init__(self) -> None:
        super().__init__(single_s=0.010, calibrated=True)

    def single(self, seconds: float) -> None:
        pass

    def batch(self, n: int, seconds: float) -> None:
        pass

    def passes(self, n):
        return np.ones(np.shape(n))


def same_threads(llm) -> Iterator[None]:
    """Batches on as many threads as single tokens while a test runs: on a busy machine OpenMP's
    spinning makes a two-thread batch take seconds. The thread count changes no logit."""
    import llama_cpp

    params = llm.context_params
    llama_cpp.llama_set_n_threads(llm.ctx, params.n_threads, params.n_threads)
    yield
    llama_cpp.llama_set_n_threads(llm.ctx, params.n_threads, params.n_threads_batch)


@pytest.fixture
def quick(engine):
    yield from same_threads(engine.llm)


@pytest.fixture
def drafts_verified(engine, quick, monkeypatch):
    monkeypatch.setattr(engine.speculator, "costs", FreeBatches())
    return engine


@pytest.fixture
def self_draft(engine, quick, model_path):
    """The embedded model as its own draft model (the same vocabulary)."""
    drafter = engine.speculator.model_drafter(str(model_path))
    yield from same_threads(drafter.llm)


def gpu_present() -> bool:
    """Whether llama.cpp has a GPU here. On a CPU with flash attention (loading.py) a batch's logits
    equal one token's bit for bit; GPU kernels for batches and single tokens may round apart."""
    import ctypes

    from llama_cpp import llama_cpp as bindings

    by_type = bindings._lib.ggml_backend_dev_by_type
    by_type.argtypes, by_type.restype = [ctypes.c_int], ctypes.c_void_p
    return any(by_type(kind) for kind in (1, 2))  # GGML_BACKEND_DEVICE_TYPE_GPU, _IGPU


exact = pytest.mark.skipif(gpu_present(), reason="on a GPU, batch and single-token logits may round apart")


# --- prompt lookup and the cost model (no model) ---------------------------------------------------


def test_lookup_copies_what_followed_the_latest_longest_match():
    tokens = np.array([5, 1, 2, 3, 9, 9, 7, 1, 2, 3, 4, 8, 6, 2, 3], dtype=np.intc)
    # the last 2 tokens (2, 3) occur at 2 and 8; (6, 2, 3) never did: the latest 2-gram wins
    draft = lookup(tokens, 3)
    assert draft.tokens == [4, 8, 6] and draft.key == 2
    assert lookup(tokens, 1).tokens == [4]
    assert lookup(np.array([1, 2, 3], dtype=np.intc), 4).tokens == []  # nothing repeats: no draft
    assert lookup(tokens, 0).tokens == []


def test_a_long_match_counts_as_long():
    """The tokens before the n-gram that agree too put the draft in a longer match's bucket."""
    tokens = np.array([1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8], dtype=np.intc)
    draft = lookup(tokens, 4)
    assert draft.tokens == [0, 1, 2, 3] and draft.key == 8


def test_lookup_prefers_a_longer_match_over_a_later_one():
    tokens = np.array([1, 2, 3, 4, 10, 11, 0, 3, 4, 20, 0, 1, 2, 3, 4], dtype=np.intc)
    assert lookup(tokens, 2).tokens == [10, 11]  # (1, 2, 3, 4), not the later (3, 4) -> 20


def test_a_repeating_tail_drafts_its_own_continuation():
    tokens = np.array([7, 8, 7, 8, 7, 8], dtype=np.intc)
    assert lookup(tokens, 5).tokens == [7, 8]  # as far as the text goes


def test_cost_model_verifies_long_drafts_where_batches_are_cheap():
    gpu = cheap_batches()
    assert gpu.best_length(16, 0.9) == 16
    assert gpu.best_length(16, 0.3) > 0  # a poor draft still costs next to nothing there


def test_cost_model_skips_drafts_that_would_cost_more_than_they_give():
    cpu = CostModel()
    cpu.single(0.010)
    for _ in range(40):  # a batch of n tokens costs about (n + 1) / 2 single passes
        cpu.batch(2, 0.015)
        cpu.batch(17, 0.090)
    assert cpu.best_length(16, 0.3) == 0  # a draft that keeps failing: plain decoding
    assert cpu.best_length(16, 0.5) == 0
    assert cpu.best_length(16, 0.99) >= 12  # long drafts where they are nearly always right
    assert 0 < cpu.best_length(16, 0.9) < 16  # fewer where a long run is unlikely


# One llama_decode of n tokens, every position's logits, in single passes: the embedded model on 2
# CPU cores, one thread for single tokens and two for batches (benchmarks/batch_cost.py, medians).
MEASURED = {2: 1.18, 3: 1.49, 4: 1.80, 5: 2.26, 6: 2.62, 7: 2.92, 8: 3.04, 9: 3.56, 10: 3.88,
            11: 4.38, 12: 4.52, 13: 4.78, 14: 5.12, 15: 5.48, 16: 5.60, 17: 6.11}  # fmt: skip


def measured_costs() -> CostModel:
    costs = CostModel(single_s=0.013)
    costs.anchor({n: MEASURED[n] for n in (2, 9, 17)})
    return costs


@pytest.mark.parametrize("acceptance", [0.3, 0.6, 0.8, 0.9, 0.95, 0.99])
def test_the_draft_length_is_the_one_that_gives_the_most_tokens_per_pass(acceptance):
    """Against the reference: k drafts each right with probability a (given the ones before) give
    1 + a + ... + a^k tokens for a batch of k + 1; the best k on the measured curve, or 0 (plain
    decoding) where no k gives 5% more tokens per pass. The line fitted to three sizes does not
    follow the curve's steps (4 -> 5 tokens costs 0.46 passes, 7 -> 8 0.12): it may pick a
    neighbour of the best k, never one that gives more than 6% fewer tokens per pass."""
    costs = measured_costs()

    def rate(k: int) -> float:
        return 1.0 if k == 0 else sum(acceptance**j for j in range(k + 1)) / MEASURED[k + 1]

    best = max(range(17), key=rate)
    chosen = costs.best_length(16, acceptance)
    if rate(best) < 1.05:
        assert chosen == 0
    else:
        assert chosen > 0 and rate(chosen) >= 0.94 * rate(best)


def test_verifying_short_drafts_never_hides_that_long_ones_pay():
    """A model that has verified only drafts of one token has measured only batches of two: the
    calibrated curve keeps its slope, so a run of drafts that are nearly always right is verified
    at length again."""
    costs = measured_costs()
    for _ in range(500):
        costs.batch(2, 0.013 * MEASURED[2])
    assert costs.best_length(16, 0.98) >= 10
    assert costs.passes(np.array([17]))[0] == pytest.approx(MEASURED[17], rel=0.15)


def test_costs_measured_on_a_busy_machine_are_measured_again():
    """Batches measured while other work held the cores would stop drafting for good: nothing
    verified, nothing measured. The curve is measured again after RECALIBRATE_STEPS passes."""
    costs = CostModel(single_s=0.013)
    costs.anchor({2: 30.0, 17: 300.0})  # two threads fighting other processes for the cores
    assert costs.best_length(16, 0.99) == 0 and not costs.due()
    for _ in range(RECALIBRATE_STEPS):
        costs.single(0.013)
    assert costs.due()


def test_batches_that_stall_in_a_row_measure_the_costs_again():
    """Two threads that other work keeps waiting for each other make every batch take many times
    its cost: two such batches in a row and the next draft measures the curve (and the threads)."""
    costs = measured_costs()
    costs.batch(17, 0.013 * MEASURED[17] * 10)  # one stall: not yet
    assert not costs.due()
    costs.batch(17, 0.013 * MEASURED[17])  # a normal batch: the count starts over
    costs.batch(17, 0.013 * MEASURED[17] * 10)
    assert not costs.due()
    costs.batch(9, 0.013 * MEASURED[9] * 10)
    assert costs.due()


def test_a_stall_of_a_busy_machine_barely_moves_the_costs():
    costs = cheap_batches()
    before = costs.passes(np.array([17]))[0]
    costs.batch(17, 5.0)  # one batch 400 times slower than usual
    assert costs.passes(np.array([17]))[0] < before + 2


# --- exactness on the embedded model ---------------------------------------------------------------


@pytest.mark.model
@exact
@pytest.mark.parametrize("name", BUILTIN)
def test_greedy_replies_are_the_same_with_an_ngram_draft(drafts_verified, name):
    engine = drafts_verified
    params = preset(name, temperature=0, num_predict=48, seed=1)  # creative's XTC draws even at temperature 0
    plain = run(engine, REWRITE, params)
    drafted = run(engine, REWRITE, Parameters.of({"draft": "ngram"}, base=params))
    assert drafted.tokens == plain.tokens and drafted.text == plain.text
    assert drafted.finish_reason == plain.finish_reason
    assert drafted.usage.drafted_tokens > 0 and drafted.usage.accepted_tokens > 0


@pytest.mark.model
@exact
def test_measuring_the_batch_costs_changes_nothing_in_the_reply(engine, quick, monkeypatch):
    """The first n-gram draft of an engine measures this machine's batch costs on its context
    (calibrate): the reply and the KV cache after it are those of a reply without a draft."""
    monkeypatch.setattr(engine.speculator, "costs", CostModel())
    params = preset("code", temperature=0, num_predict=40)
    plain, plain_cache = cache_after(engine, REWRITE, params)
    drafted, drafted_cache = cache_after(engine, REWRITE, Parameters.of({"draft": "ngram"}, base=params))
    costs = engine.speculator.costs
    assert costs.calibrated and costs.single_s is not None and 0 < costs.single_s < 1
    passes = costs.passes(np.array([2, 17]))
    assert 1 <= passes[0] < passes[1] < 40  # a batch of 17 costs more than one of 2
    assert drafted.tokens == plain.tokens and drafted_cache == plain_cache


@pytest.mark.model
def test_a_batch_on_fewer_threads_gives_the_same_logits(engine):
    """Verification may run on one thread where two wait for each other on a busy machine
    (CostModel.calibrate): the logits, so the replies, are the same on any thread count."""
    import llama_cpp

    context = engine.context
    llama_cpp.llama_set_n_threads(context.llm.ctx, 1, 2)
    try:
        assert context.thread_counts() == (2, 1)
        engine.prefill(engine.chat_tokens(REWRITE))
        base, tokens = context.n_tokens, context.ids()[-9:].tolist()
        two = context.append_all_logits(tokens)
        context.truncate(base)
        one = context.append_all_logits(tokens, threads=1)
        context.truncate(base)
        assert np.array_equal(one, two)
        assert llama_cpp.llama_n_threads_batch(context.llm.ctx) == 2  # the context's own setting is back
    finally:
        params = context.llm.context_params
        llama_cpp.llama_set_n_threads(context.llm.ctx, params.n_threads, params.n_threads_batch)


@pytest.mark.model
@exact
def test_the_factual_preset_as_is_is_the_same_with_drafts(drafts_verified, self_draft, model_path):
    engine = drafts_verified
    params = preset("factual", num_predict=48)
    plain = run(engine, REWRITE, params)
    for draft in ("ngram", str(model_path)):
        drafted = run(engine, REWRITE, Parameters.of({"draft": draft}, base=params))
        assert drafted.tokens == plain.tokens, draft
        assert drafted.usage.accepted_tokens > 0


@pytest.mark.model
@exact
@pytest.mark.parametrize("name", BUILTIN)
def test_the_model_drafting_for_itself_is_always_right_at_temperature_zero(engine, self_draft, model_path, name):
    params = preset(name, temperature=0, num_predict=40, seed=1)
    plain = run(engine, REWRITE, params)
    drafted = run(engine, REWRITE, Parameters.of({"draft": str(model_path), "draft_p_min": 0.0}, base=params))
    assert drafted.tokens == plain.tokens
    u = drafted.usage
    assert u.drafted_tokens >= 20
    # the draft is the model's argmax; where nothing in the chain moves it (no penalty, DRY or
    # XTC), the chain's greedy choice is that argmax too: every drafted token is kept
    moved = params.repeat_penalty != 1.0 or params.dry_multiplier or params.xtc_probability
    if not moved and not params.presence_penalty and not params.frequency_penalty:
        assert u.accepted_tokens == u.drafted_tokens


MIROSTAT = Parameters.of({"mirostat": 2, "mirostat_tau": 4.0, "temperature": 0.9})


@pytest.mark.model
@exact
@pytest.mark.parametrize(
    "params", [preset(n) for n in ("balanced", "creative", "code")] + [MIROSTAT],
    ids=["balanced", "creative", "code", "mirostat"],
)  # fmt: skip
def test_a_seeded_sampled_reply_is_the_same_with_an_ngram_draft(drafts_verified, params):
    """Creative has XTC (a draw per token) and DRY; mirostat learns mu from each token taken: a
    state advanced for a rejected draft, or twice, would change the rest of the reply."""
    engine = drafts_verified
    params = Parameters.of({"seed": 7, "num_predict": 48}, base=params)
    plain = run(engine, REWRITE, params)
    drafted = run(engine, REWRITE, Parameters.of({"draft": "ngram"}, base=params))
    assert drafted.tokens == plain.tokens
    assert drafted.usage.drafted_tokens > 0


@pytest.mark.model
@exact
@pytest.mark.parametrize("sampling", [{"temperature": 0}, {"temperature": 0.8, "seed": 3}], ids=["greedy", "sampled"])
def test_a_draft_the_grammar_refuses_is_a_rejected_draft(drafts_verified, sampling):
    """The reply copies the object from the prompt, whose text goes on with " and nothing else":
    that draft is refused by the JSON grammar and the reply ends where it ends without a draft."""
    import json

    engine = drafts_verified
    ask = [{"role": "user", "content": 'Copy this: {"name": "Ada", "born": 1815} and nothing else, please.'}]
    params = Parameters.of({"format": "json", "num_predict": 60, **sampling})
    plain = run(engine, ask, params)
    drafted = run(engine, ask, Parameters.of({"draft": "ngram"}, base=params))
    assert drafted.tokens == plain.tokens and drafted.finish_reason == "stop"
    assert json.loads(drafted.text) == {"name": "Ada", "born": 1815}
    assert 0 < drafted.usage.accepted_tokens < drafted.usage.drafted_tokens


# --- the distribution over many seeds -------------------------------------------------------------

# The reply copies the prompt, so the first token is usually found in it and the next is drafted.
# Its 33 tokens are one past a prefill block: each reply re-evaluates only the last prompt token.
COPY = [
    {"role": "system", "content": "Repeat what you are told."},
    {"role": "user", "content": "Repeat:\nThe quick brown fox jumps over the lazy dog."},
]
PLAIN = Parameters.of({"temperature": 1.0, "top_k": 0, "top_p": 1.0, "min_p": 0.02, "repeat_penalty": 1.0})
# DRY sees the prompt: after "The quick" (the 2nd token drafted and kept) it penalises " brown"
# by 4, after "The" alone by 2 only; the penalties see the last 4 tokens, so the reply may still
# start by copying (and drafts happen). Both change the 3rd token's distribution with the 2nd.
PENALISED = Parameters.of(
    {"dry_multiplier": 2.0, "dry_base": 2.0, "dry_allowed_length": 1, "repeat_penalty": 1.3,
     "presence_penalty": 0.4, "frequency_penalty": 0.4, "repeat_last_n": 4}, base=PLAIN,
)  # fmt: skip
SEEDS = 300
ALPHA = 1e-4  # the chance that this test fails although the distributions are the same (per preset)


def chain_probs(engine, params, prompt, prefix) -> dict[int, float]:
    """The chain's distribution of the next token after prompt + prefix (no draft; plain passes)."""
    context = engine.context
    context.truncate(len(prompt) - 1)
    context.append([prompt[-1], *prefix])
    logits = np.array(context.logits(), dtype=np.float32)
    chain = build_chain(params.sampling(), vocab=engine.vocab_for(params), n_vocab=engine.n_vocab, seed=0)
    cands = chain.candidates_after(context.ids(), logits)
    finite = np.isfinite(cands.logits)
    weights = np.exp(cands.logits[finite] - cands.logits[finite].max(), dtype=np.float64)
    return dict(zip(cands.ids[finite].tolist(), (weights / weights.sum()).tolist(), strict=True))


def reference(engine, params, prompt, n: int) -> dict[tuple[int, ...], float]:
    """Exact probabilities of the 3-token beginnings expected at least once in n replies."""
    engine.prefill(prompt)
    found: dict[tuple[int, ...], float] = {(): 1.0}
    for _ in range(3):
        grown = {}
        for prefix, p in found.items():
            for token, q in chain_probs(engine, params, prompt, list(prefix)).items():
                if n * p * q >= 1:
                    grown[(*prefix, token)] = p * q
        found = grown
    return found


def chi_square_p(observed: Counter, expected: dict[tuple[int, ...], float], n: int) -> float:
    """Pearson's test of the observed beginnings against the exact probabilities: categories with
    an expected count of at least 5, the rest pooled; the p-value from the chi-square law."""
    cells = {seq: p * n for seq, p in expected.items() if p * n >= 5}
    pairs = [(observed[seq], e) for seq, e in cells.items()]
    other = n - sum(cells.values())
    if other >= 5:
        pairs.append((n - sum(o for o, _ in pairs), other))
    assert len(pairs) >= 3  # a distribution worth testing
    stat = sum((o - e) ** 2 / e for o, e in pairs)
    return _chi2_sf(stat, len(pairs) - 1)


def _chi2_sf(x: float, df: int) -> float:
    """P(X > x) for X ~ chi-square(df): the regularised upper incomplete gamma, by its series."""
    a, z = df / 2, x / 2
    term = total = 1.0 / a
    k = 0
    while term > 1e-15 * total and k < 10_000:
        k += 1
        term *= z / (a + k)
        total += term
    return max(0.0, 1.0 - math.exp(a * math.log(z) - z - math.lgamma(a)) * total) if z > 0 else 1.0


@pytest.mark.model
@exact
@pytest.mark.parametrize("params", [PLAIN, PENALISED], ids=["plain", "dry-and-penalties"])
def test_first_tokens_follow_the_chains_distribution_with_drafts(drafts_verified, params):
    """300 replies of 3 tokens with draft = "ngram", seeds 0..299: each reply's second token is
    a verified draft (or its replacement) and the third the bonus token after it, whenever the
    first token occurs in the prompt. Their counts are compared with the exact probabilities the
    chain gives without a draft. ALPHA = 1e-4 is the false-failure rate. Tried on broken rules: one
    that keeps every draft gives p = 4e-15 (plain), one whose chain misses the kept draft in its
    context p = 7e-13 (DRY and penalties); the correct rule gave p = 0.39 and 0.16."""
    engine = drafts_verified
    prompt = engine.chat_tokens(COPY)
    assert len(prompt) % PREFILL_BLOCK == 1
    params = Parameters.of({"num_predict": 3}, base=params)
    expected = reference(engine, params, prompt, SEEDS)
    observed: Counter = Counter()
    verified = 0
    for seed in range(SEEDS):
        done = run(engine, COPY, Parameters.of({"draft": "ngram", "seed": seed}, base=params))
        observed[tuple(done.tokens[:3])] += 1
        verified += done.usage.drafted_tokens > 0
    assert verified >= SEEDS // 2  # the test is about drafted tokens: most replies had one
    assert chi_square_p(observed, expected, SEEDS) > ALPHA


def test_chi_square_p_values():
    assert _chi2_sf(3.841, 1) == pytest.approx(0.05, abs=2e-4)  # the textbook critical values
    assert _chi2_sf(18.307, 10) == pytest.approx(0.05, abs=2e-4)
    assert _chi2_sf(29.588, 10) == pytest.approx(0.001, abs=2e-5)


# --- how a reply ends ------------------------------------------------------------------------------

GREEDY = Parameters.of({"temperature": 0})


def cache_after(engine, messages, params) -> tuple[Done, list[int]]:
    done = run(engine, messages, params)
    return done, engine.context_ids().tolist()


@pytest.mark.model
@exact
def test_a_stop_string_inside_an_accepted_run_ends_the_reply_there(drafts_verified):
    engine = drafts_verified
    full = run(engine, REWRITE, Parameters.of({"num_predict": 64}, base=GREEDY))
    stop = "c = {}"  # copied from the prompt, deep inside the reply
    assert stop in full.text
    params = Parameters.of({"num_predict": 64, "stop": [stop]}, base=GREEDY)
    plain, plain_cache = cache_after(engine, REWRITE, params)
    drafted, drafted_cache = cache_after(engine, REWRITE, Parameters.of({"draft": "ngram"}, base=params))
    assert drafted.text == plain.text == full.text[: full.text.index(stop)]
    assert drafted.finish_reason == "stop" and drafted.usage.accepted_tokens > 0
    assert drafted_cache == plain_cache  # no draft after the stop left in the KV cache


@pytest.mark.model
@exact
@pytest.mark.parametrize("limit", [1, 2, 9, 23])
def test_num_predict_is_never_exceeded(drafts_verified, limit):
    engine = drafts_verified
    params = Parameters.of({"num_predict": limit}, base=GREEDY)
    plain, plain_cache = cache_after(engine, REWRITE, params)
    drafted, drafted_cache = cache_after(engine, REWRITE, Parameters.of({"draft": "ngram"}, base=params))
    assert drafted.usage.completion_tokens == limit == len(drafted.tokens)
    assert drafted.tokens == plain.tokens and drafted.finish_reason == "length"
    assert drafted_cache == plain_cache


@pytest.mark.model
@exact
def test_end_of_turn_inside_an_accepted_run_ends_the_reply(drafts_verified):
    """The earlier answer, then <|im_end|>, is drafted in one run: the reply ends at the end of turn."""
    engine = drafts_verified
    ask = {"role": "user", "content": "Say exactly: I like green apples."}
    first = run(engine, [ask], GREEDY)
    assert first.finish_reason == "stop"
    again = [ask, {"role": "assistant", "content": first.text}, ask]
    plain, plain_cache = cache_after(engine, again, GREEDY)
    drafted, drafted_cache = cache_after(engine, again, Parameters.of({"draft": "ngram"}, base=GREEDY))
    assert drafted.tokens == plain.tokens and drafted.finish_reason == plain.finish_reason == "stop"
    assert drafted.usage.accepted_tokens >= len(drafted.tokens)  # the reply and its end, all drafted
    assert drafted_cache == plain_cache


@pytest.mark.model
@exact
def test_cancellation_stops_between_tokens_as_without_a_draft(drafts_verified):
    engine = drafts_verified

    prompt = len(engine.chat_tokens(REWRITE))

    def after(n):
        calls = {"n": 0}

        def cancelled():  # asked between tokens; the prompt's evaluation asks too, between its blocks
            if engine.context.n_tokens < prompt:
                return False
            calls["n"] += 1
            return calls["n"] > n

        return cancelled

    params = Parameters.of({"num_predict": 64}, base=GREEDY)
    plain = run(engine, REWRITE, params, cancelled=after(20))
    plain_cache = engine.context_ids().tolist()
    drafted = run(engine, REWRITE, Parameters.of({"draft": "ngram"}, base=params), cancelled=after(20))
    assert drafted.finish_reason == plain.finish_reason == "cancelled"
    assert drafted.tokens == plain.tokens and len(drafted.tokens) == 20
    assert drafted.usage.accepted_tokens > 0
    assert engine.context_ids().tolist() == plain_cache


# --- draft models ----------------------------------------------------------------------------------


def gemma_path():
    from andon.app.models.catalog import find_model
    from andon.app.models.files import ModelPathError

    try:
        return find_model("gemma-3-270m-q4_k_m").load_path()
    except ModelPathError:
        return None


@pytest.mark.model
def test_a_draft_model_with_another_vocabulary_is_refused(engine, quick):
    path = gemma_path()
    if path is None:
        pytest.skip("the packaged Gemma 3 270M (another vocabulary) is not installed")
    speculator = Speculator(engine.options, engine.texts, engine.model_name, engine.n_ctx)
    with pytest.raises(DraftModelError, match="same vocabulary") as info:
        speculator.for_reply(Parameters.of({"draft": str(path)}))
    assert "262144" in str(info.value) and "49152" in str(info.value) and "\n" not in str(info.value)
    assert speculator._model is None  # nothing kept loaded
    proc = andon("ask", "hi", "--set", f"draft={path}", "--set", "num_predict=4")
    assert proc.returncode == 2 and not proc.stdout
    assert proc.stderr.startswith("andon: draft model ") and proc.stderr.count("\n") == 1


def andon(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "andon", *args], capture_output=True, text=True, timeout=600)


def test_an_unknown_draft_model_is_one_line_before_anything_loads():
    proc = andon("ask", "hi", "--set", "draft=no-such-model")
    assert proc.returncode == 2
    assert proc.stderr.startswith("andon: draft: unknown model 'no-such-model'")
    assert proc.stderr.count("\n") == 1 and not proc.stdout


@pytest.mark.model
def test_ask_json_reports_the_acceptance():
    import json

    proc = andon("ask", "Repeat: one two three four five six", "--json",
                 "--set", "draft=ngram", "--set", "temperature=0", "--set", "num_predict=12")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    usage = json.loads(proc.stdout)["usage"]
    assert 0 <= usage["accepted_tokens"] <= usage["drafted_tokens"]
    assert usage["completion_tokens"] == 12 or json.loads(proc.stdout)["finish_reason"] == "stop"


# --- what the user sees -----------------------------------------------------------------------------


async def test_the_status_bar_and_timings_show_the_drafts_accepted(tmp_path):
    """The fake engine drafts every token of a 6-token reply and keeps 5 when `draft` is set."""
    from andon.app.tui.widgets.message_box import StatusBar

    from tests.app.test_tui import SIZE, make_app, notices, send

    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "no draft yet")
        assert "draft" not in str(app.query_one(StatusBar).render())
        await send(pilot, "/set parameter draft ngram")
        await send(pilot, "/set verbose")
        await send(pilot, "now with one")
        assert "42.0 tok/s │ draft 5/6 accepted │ context" in str(app.query_one(StatusBar).render())
        assert "draft: 5 of 6 drafted tokens accepted" in notices(app)[-1]
        await pilot.press("ctrl+n")  # another chat: not this one's drafts
        await pilot.pause()
        assert "draft" not in str(app.query_one(StatusBar).render())


async def test_a_draft_model_that_cannot_be_used_is_refused_when_it_is_set(tmp_path):
    """/set parameter and the parameter panel check `draft` at once, not at the next reply: an
    unknown name (with the closest ones) or a file that is not a GGUF is one line, nothing changes."""
    from andon.app.tui.widgets.chat_view import ChatView

    from tests.app.test_tui import SIZE, make_app, notices, send

    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_text("just text\n")
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "/set parameter draft smollm2")
        assert notices(app)[-1].startswith("error: draft: unknown model 'smollm2'; closest: SmolLM2-135M-Instruct.Q4_1")
        await send(pilot, f"/set parameter draft {not_gguf}")
        assert notices(app)[-1] == f"error: draft: not a GGUF model file: {not_gguf} (it does not start with " + (
            "the GGUF signature; llama.cpp needs a .gguf file)"
        )
        said: list[str] = []
        app.notify = lambda message, **kwargs: said.append(message)  # the panel's refusal is a notification
        app.query_one(ChatView).set_parameter("draft", str(tmp_path))
        assert said == [f"draft: model path is a folder, not a file: {tmp_path} (give the path of a .gguf file)"]
        assert app.session.params.draft == "" and "draft" not in app.session.changes
        await send(pilot, "/set parameter draft ngram")
        assert app.session.params.draft == "ngram"


def test_a_preset_with_an_unknown_draft_model_is_not_saved(tmp_path):
    proc = andon("presets", "save", "fast", "--set", "draft=no-such-model")
    assert proc.returncode == 2 and proc.stderr.startswith("andon: draft: unknown model 'no-such-model'")
    assert proc.stderr.count("\n") == 1 and "saved" not in proc.stdout
