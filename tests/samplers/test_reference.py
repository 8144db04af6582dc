"""Samplers llama.cpp lacks, against their reference formulas with vectors worked by hand,
and the chain's interface as the parameter specs (andon.samplers.params) define it."""

from __future__ import annotations

import math

import numpy as np
import pytest
from andon.samplers import ParameterError, build_chain

OFF = {"top_k": 0, "top_p": 1.0, "temperature": 1.0}
NO_HISTORY = np.empty(0, np.intc)
# probabilities 0.5, 0.3, 0.15, 0.05 (the logits are their logs)
P4 = np.log(np.array([0.5, 0.3, 0.15, 0.05], np.float32))


def kept(params, logits=P4, history=NO_HISTORY) -> list[int]:
    out = build_chain({**OFF, **params}, seed=1)(history, logits)
    return [int(i) for i in np.flatnonzero(np.isfinite(out))]


def test_top_a_removes_below_a_times_pmax_squared():
    # threshold 0.5 * 0.5^2 = 0.125: 0.05 goes, 0.15 stays
    assert kept({"top_a": 0.5}) == [0, 1, 2]
    # threshold 1.0 * 0.25 = 0.25: only 0.5 and 0.3 stay
    assert kept({"top_a": 1.0}) == [0, 1]


def test_epsilon_cutoff_is_a_probability():
    assert kept({"epsilon_cutoff": 0.1}) == [0, 1, 2]
    assert kept({"epsilon_cutoff": 0.2}) == [0, 1]


def test_eta_cutoff_uses_the_entropy():
    # H = 1.14212 nats; eta 0.1: min(0.1, sqrt(0.1) e^-H = 0.1009) = 0.1 -> drop 0.05
    assert kept({"eta_cutoff": 0.1}) == [0, 1, 2]
    # eta 0.3: min(0.3, sqrt(0.3) e^-H = 0.1748) -> drop 0.15 and 0.05
    assert kept({"eta_cutoff": 0.3}) == [0, 1]


def test_tail_free_sampling_by_second_derivative():
    # sorted p: .5 .3 .15 .05 -> |d2| = .05 .05 -> normalised cdf .5 1.0
    # z 0.6: remove [F, .5>.6, 1>.6, T] = keep the first two; z 0.4: keep the first only
    assert kept({"tfs_z": 0.6}) == [0, 1]
    assert kept({"tfs_z": 0.4}) == [0]


def test_quadratic_smoothing_and_its_cubic_curve():
    logits = np.array([2.0, 1.0, 0.0], np.float32)
    out = build_chain({**OFF, "smoothing_factor": 0.5}, seed=1)(NO_HISTORY, logits)
    np.testing.assert_allclose(out, [2.0, 1.5, 0.0])  # -(0.5 d^2) + max
    out = build_chain({**OFF, "smoothing_factor": 0.5, "smoothing_curve": 2.0}, seed=1)(NO_HISTORY, logits)
    np.testing.assert_allclose(out, [2.0, 1.5, -1.0])  # k=.5, s=.5: -(.25 d^2) + .25 d^3 + max


def test_xtc_keeps_the_least_likely_of_the_tokens_above_threshold():
    assert kept({"xtc_probability": 1.0, "xtc_threshold": 0.1}) == [2, 3]
    # with min_keep 3 the cut would leave too few: nothing is removed
    assert kept({"xtc_probability": 1.0, "xtc_threshold": 0.1, "min_keep": 3}) == [0, 1, 2, 3]


def test_dry_penalises_the_token_that_would_continue_a_repeat():
    # "a b c a b": emitting c would repeat "a b c"; penalty = 1 * 2^(2 - 2) = 1
    history = np.array([0, 1, 2, 0, 1], np.intc)
    logits = np.zeros(5, np.float32)
    params = {**OFF, "dry_multiplier": 1.0, "dry_base": 2.0, "dry_allowed_length": 2}
    out = build_chain(params, seed=1)(history, logits)
    np.testing.assert_allclose(out, [0, 0, -1, 0, 0])
    # a longer repeat is penalised exponentially: "a b c d a b c" -> d at length 3: 2^(3-2) = 2
    history = np.array([0, 1, 2, 3, 0, 1, 2], np.intc)
    out = build_chain(params, seed=1)(history, logits)
    np.testing.assert_allclose(out, [0, 0, 0, -2, 0])


def test_repetition_penalties_follow_the_formula():
    logits = np.array([1.0, -1.0, 2.0, 0.5], np.float32)
    history = np.array([0, 1, 1, 3, 3, 3], np.intc)
    params = {**OFF, "repeat_penalty": 2.0, "presence_penalty": 0.5, "frequency_penalty": 0.25}
    out = build_chain(params, seed=1)(history, logits)
    # token 0: 1/2 - (1*.25 + .5); token 1: -1*2 - (2*.25 + .5); token 2 unseen; token 3: .5/2 - (3*.25+.5)
    np.testing.assert_allclose(out, [-0.25, -3.0, 2.0, -1.0])
    # the window: only the last 2 tokens (3, 3) count
    out = build_chain({**params, "repeat_last_n": 2}, seed=1)(history, logits)
    np.testing.assert_allclose(out, [1.0, -1.0, 2.0, 0.25 - (2 * 0.25 + 0.5)])


def test_min_keep_holds_for_every_truncation_sampler():
    for params in (
        {"top_a": 1.0},
        {"epsilon_cutoff": 0.9},
        {"eta_cutoff": 0.9},
        {"tfs_z": 0.01},
        {"min_p": 1.0},
        {"top_p": 0.0},
        {"typical_p": 0.01},
        {"top_k": 1},
        {"top_n_sigma": 0.01},
    ):
        assert len(kept({**params, "min_keep": 3})) >= 3, params  # fmt: skip


def test_temperature_divides_and_zero_is_greedy():
    logits = np.array([1.0, 3.0, 2.0, 3.0], np.float32)
    out = build_chain({**OFF, "temperature": 0.5}, seed=1)(NO_HISTORY, logits)
    np.testing.assert_allclose(out, logits / 0.5)
    out = build_chain({**OFF, "temperature": 0.0}, seed=1)(NO_HISTORY, logits)
    assert np.flatnonzero(np.isfinite(out)).tolist() == [1]  # exactly one: the first maximum


def test_logit_bias_by_id_and_by_text_and_false_bans():
    vocab = ["a", "b", "hello", "c"]
    logits = np.zeros(4, np.float32)
    out = build_chain({**OFF, "logit_bias": {"hello": 2.0, 0: False, "3": -1.0}}, vocab=vocab, seed=1)(
        NO_HISTORY, logits
    )
    assert out[0] == -np.inf and out[2] == 2.0 and out[3] == -1.0 and out[1] == 0.0


def test_unknown_names_and_bad_values_raise_value_error_naming_them():
    with pytest.raises(ValueError, match="temprature"):
        build_chain({"temprature": 1.0})
    with pytest.raises(ValueError, match=r"top_p: 1.5 is not allowed \(must be a number >= 0 and <= 1\)"):
        build_chain({"top_p": 1.5})
    with pytest.raises(ParameterError, match="samplers"):
        build_chain({"samplers": ["top_k", "nucleus"]})


def test_input_is_never_modified_and_output_is_float32():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal(1000).astype(np.float32)
    before = logits.copy()
    history = rng.integers(0, 1000, 100).astype(np.intc)
    out = build_chain({"repeat_penalty": 1.3, "dry_multiplier": 1.0, "xtc_probability": 1.0}, seed=2)(history, logits)
    assert np.array_equal(logits, before)
    assert out.dtype == np.float32 and out.shape == logits.shape


def test_mirostat_learns_the_sampled_token_from_the_context():
    rng = np.random.default_rng(1)
    logits = (rng.standard_normal(500) * 3).astype(np.float32)
    chain = build_chain({"mirostat": 2, "mirostat_tau": 2.0, "mirostat_eta": 0.5}, seed=1)
    stage = chain.stages[-1]
    history = np.array([1, 2, 3], np.intc)
    out = chain(history, logits)
    assert stage.mu == 4.0  # starts at 2 * tau
    chosen = int(np.argmax(out))
    p = np.exp(out[np.isfinite(out)] - out.max())
    p_chosen = 1.0 / p.sum()
    chain(np.append(history, chosen).astype(np.intc), logits)
    assert stage.mu == pytest.approx(4.0 - 0.5 * (-math.log2(p_chosen) - 2.0), rel=1e-5)
    chain.reset()
    assert stage.mu == 4.0


def test_xtc_generator_is_seeded_and_reset_starts_over():
    logits = P4
    params = {**OFF, "xtc_probability": 0.5, "xtc_threshold": 0.1}

    def decisions(chain):
        return [bool(np.isfinite(chain(NO_HISTORY, logits)[0])) for _ in range(40)]

    a = build_chain(params, seed=11)
    first = decisions(a)
    assert first == decisions(build_chain(params, seed=11))
    assert True in first and False in first  # it acts about half the time
    a.reset()
    assert decisions(a) == first
