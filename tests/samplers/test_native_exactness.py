"""andon's chain against llama.cpp's own samplers, on the same logits and history.

Requirement: the same distribution (total variation <= 1e-4), and any token one keeps and the
other drops must sit at a cut-off where float32 rounding decides: a relative nudge of the logits
of at most 1e-4 flips andon's decision for it.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from andon.samplers import build_chain
from andon.samplers.params import DEFAULT_ORDER

from tests.samplers.native import NativeChain, distribution

V = 4096
OFF = {"top_k": 0, "top_p": 1.0, "temperature": 1.0}


def logits_kind(kind: str, rng: np.random.Generator, n: int = V) -> np.ndarray:
    if kind == "flat":
        x = rng.standard_normal(n)
    elif kind == "wide":
        x = rng.standard_normal(n) * 4
    elif kind == "peaked":  # one clear favourite, as real models give
        x = rng.standard_normal(n) * 2
        x[rng.integers(n)] += 9
    elif kind == "two_peaks":
        x = rng.standard_normal(n) * 2
        x[rng.choice(n, 2, replace=False)] += [7, 6.5]
    else:  # "zipf": a long tail like a language model's
        x = -1.1 * np.log(rng.permutation(np.arange(1, n + 1))) + rng.standard_normal(n) * 0.3
    return x.astype(np.float32)


def history(rng: np.random.Generator, repeating: bool) -> np.ndarray:
    h = rng.integers(0, V, 300)
    if repeating:
        h = np.concatenate([h, h[100:160], h[100:140], h[:20]])
    return h.astype(np.intc)


def flips_under_nudge(params, hist, logits, token) -> bool:
    """Whether andon's keep decision for `token` changes under a tiny perturbation of the logits."""
    base = np.isfinite(build_chain(params, seed=1)(hist, logits)[token])
    rng = np.random.default_rng(0)
    for scale in (1e-5, -1e-5, 1e-4, -1e-4):
        for jitter in range(3):
            noise = rng.standard_normal(logits.shape[0]) * 1e-5 * jitter
            nudged = (logits * (1 + scale + noise)).astype(np.float32)
            if np.isfinite(build_chain(params, seed=1)(hist, nudged)[token]) != base:
                return True
    return False


def assert_matches_native(params, logits, hist, vocab_ptr=None):
    ours = build_chain(params, seed=1)(hist, logits)
    native = NativeChain(params, logits.shape[0], history_len=len(hist), vocab_ptr=vocab_ptr)
    try:
        native.accept(hist)
        theirs, _ = native.apply(logits)
    finally:
        native.close()
    p, q = distribution(ours), distribution(theirs)
    tv = 0.5 * np.abs(p - q).sum()
    assert tv <= 1e-4, f"total variation {tv:.2e} for {params}"
    differ = np.flatnonzero((p > 0) != (q > 0))
    for token in differ:
        assert flips_under_nudge(params, hist, logits, token), (
            f"token {token} kept by {'andon' if p[token] > 0 else 'llama.cpp'} only, not at a cut-off"
        )


SINGLE = {
    "top_k": {**OFF, "top_k": 40},
    "top_k_large": {**OFF, "top_k": 300},
    "top_p": {**OFF, "top_p": 0.9},
    "top_p_small": {**OFF, "top_p": 0.3},
    "top_p_min_keep": {**OFF, "top_p": 0.2, "min_keep": 5},
    "min_p": {**OFF, "min_p": 0.05},
    "min_p_min_keep": {**OFF, "min_p": 0.9, "min_keep": 3},
    "typical_p": {**OFF, "typical_p": 0.8},
    "typical_p_min_keep": {**OFF, "typical_p": 0.1, "min_keep": 4},
    "top_n_sigma": {**OFF, "top_n_sigma": 1.0},
    "top_n_sigma_wide": {**OFF, "top_n_sigma": 3.0},
    "xtc": {**OFF, "xtc_probability": 1.0, "xtc_threshold": 0.05},
    "xtc_high_threshold": {**OFF, "xtc_probability": 1.0, "xtc_threshold": 0.2},
    "temperature": {**OFF, "temperature": 0.7},
    "greedy": {**OFF, "temperature": 0.0},
    "dynatemp": {**OFF, "temperature": 0.9, "dynatemp_range": 0.6, "dynatemp_exponent": 1.5},
    "penalties": {**OFF, "repeat_penalty": 1.3, "presence_penalty": 0.5, "frequency_penalty": 0.2},
    "penalties_whole_context": {**OFF, "repeat_penalty": 1.2, "repeat_last_n": -1},
    "logit_bias": {**OFF, "logit_bias": {3: 5.0, 17: -2.5, 99: False}},
    "default_order": {},
    "mixed": {
        "top_k": 100, "top_p": 0.8, "min_p": 0.02, "top_n_sigma": 2.5,
        "temperature": 1.4, "repeat_penalty": 1.15, "presence_penalty": 0.1,
    },
    "mixed_typical": {
        "top_k": 100, "top_p": 0.8, "min_p": 0.02, "typical_p": 0.95,
        "temperature": 1.4, "repeat_penalty": 1.15, "frequency_penalty": 0.1,
    },
    "temperature_first": {"samplers": ["temperature", "top_k", "top_p", "min_p"], "temperature": 1.6, "min_p": 0.1},
    "reordered": {
        "samplers": ["min_p", "penalties", "top_p", "temperature", "top_k", "typical_p"],
        "min_p": 0.01, "top_p": 0.9, "top_k": 50, "typical_p": 0.9, "repeat_penalty": 1.3, "temperature": 0.8,
    },
}  # fmt: skip
KINDS = ["flat", "wide", "peaked", "two_peaks", "zipf"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", sorted(SINGLE))
def test_matches_llama_cpp(case, kind):
    rng = np.random.default_rng(zlib.crc32(f"{case}-{kind}".encode()))
    for repeating in (False, True):
        assert_matches_native(SINGLE[case], logits_kind(kind, rng), history(rng, repeating))


def test_random_orders_match_llama_cpp():
    """Mixed chains in random orders of every sampler llama.cpp has."""
    rng = np.random.default_rng(7)
    native_names = ["penalties", "top_n_sigma", "top_k", "typical_p", "top_p", "min_p", "xtc", "temperature"]
    for trial in range(30):
        order = list(rng.permutation(native_names))
        params = {
            "samplers": order, "top_k": int(rng.integers(5, 400)), "top_p": float(rng.uniform(0.5, 1.0)),
            "min_p": float(rng.uniform(0, 0.2)), "typical_p": float(rng.uniform(0.5, 1.0)),
            "top_n_sigma": float(rng.uniform(0.5, 3)), "temperature": float(rng.uniform(0.3, 2)),
            "repeat_penalty": float(rng.uniform(1, 1.5)), "xtc_probability": 1.0,
            "xtc_threshold": float(rng.uniform(0.01, 0.3)),
        }  # fmt: skip
        if order.index("top_n_sigma") < order.index("typical_p"):
            params["typical_p"] = 1.0  # llama.cpp's typical is NaN after -inf masks: see test below
        kind = KINDS[trial % len(KINDS)]
        assert_matches_native(params, logits_kind(kind, rng), history(rng, trial % 2 == 0))


def test_default_order_is_llama_cpps():
    assert [s for s in DEFAULT_ORDER if s in {"penalties", "dry", "top_n_sigma", "top_k", "typical_p", "top_p",
                                               "min_p", "xtc", "temperature"}] == [
        "penalties", "dry", "top_n_sigma", "top_k", "typical_p", "top_p", "min_p", "xtc", "temperature"]  # fmt: skip


@pytest.mark.parametrize("version", [1, 2])
def test_mirostat_follows_llama_cpp_over_many_steps(version):
    """Mirostat's mu evolves with the chosen tokens; both must truncate alike at every step."""
    rng = np.random.default_rng(version)
    params = {"mirostat": version, "mirostat_tau": 3.0, "mirostat_eta": 0.2, "temperature": 0.9}
    ours = build_chain(params, seed=1)
    native = NativeChain(params, V, history_len=0)
    hist = list(history(rng, False)[:10])
    try:
        for step in range(40):
            logits = logits_kind(KINDS[step % len(KINDS)], rng)
            p = distribution(ours(np.array(hist, np.intc), logits))
            theirs, chosen = native.apply(logits)
            q = distribution(theirs)
            assert 0.5 * np.abs(p - q).sum() <= 1e-4, f"step {step}"
            hist.append(chosen)  # andon learns the choice from the context on the next call
    finally:
        native.close()


def test_typical_after_masked_tokens_uses_the_finite_candidates():
    """The one deliberate deviation: top-n-sigma masks tokens with -inf without removing them, and
    llama.cpp's typical then computes -p*log(p) = NaN for them and sorts by NaN scores (an
    unspecified order). andon computes the typical set over the candidates that are left, as the
    paper defines it: the result equals typical sampling on those candidates alone."""
    rng = np.random.default_rng(3)
    logits = logits_kind("zipf", rng)
    masked = {**OFF, "samplers": ["top_n_sigma", "typical_p"], "top_n_sigma": 2.0, "typical_p": 0.7}
    out = build_chain(masked, seed=1)(np.empty(0, np.intc), logits)
    survivors = np.isfinite(build_chain({**OFF, "top_n_sigma": 2.0}, seed=1)(np.empty(0, np.intc), logits))
    alone = np.full_like(logits, -np.inf)
    alone[survivors] = logits[survivors]
    reference = build_chain({**OFF, "typical_p": 0.7}, seed=1)(np.empty(0, np.intc), alone)
    assert np.array_equal(np.isfinite(out), np.isfinite(reference))
    assert np.isfinite(out).sum() < survivors.sum()  # typical did remove something
