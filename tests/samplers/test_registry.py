"""The sampler registry: which stages a chain runs, in which order, and when it needs token texts."""

from __future__ import annotations

import numpy as np
import pytest
from andon.samplers import SAMPLER_NAMES, build_chain, is_active, needs_vocab, resolve

DRY = {"dry_multiplier": 0.8}


def names(params) -> list[str]:
    return [stage.name for stage in build_chain(params, vocab=["a", "b", "\n"], seed=1).stages]


def test_the_default_chain_runs_only_what_is_on():
    # the defaults: top_k 40, top_p 0.9, temperature 0.8; every other sampler is off
    assert names({}) == ["top_k", "top_p", "temperature"]
    assert names({"top_k": 0, "top_p": 1.0}) == ["temperature"]


def test_the_chain_follows_the_samplers_order_and_logit_bias_runs_first():
    params = {"samplers": ["temperature", "min_p", "top_k"], "min_p": 0.1, "logit_bias": {"1": 2}}
    assert names(params) == ["logit_bias", "temperature", "min_p", "top_k"]


def test_mirostat_replaces_the_ordered_stages_as_in_llama_cpp():
    params = {**DRY, "mirostat": 2, "min_p": 0.1, "logit_bias": {"1": 2}}
    assert names(params) == ["logit_bias", "temperature", "mirostat"]


def test_every_orderable_sampler_runs_when_on():
    on = {
        "repeat_penalty": 1.1, **DRY, "top_n_sigma": 1.0, "top_k": 5, "typical_p": 0.9, "top_p": 0.9,
        "min_p": 0.05, "tfs_z": 0.9, "top_a": 0.1, "epsilon_cutoff": 0.01, "eta_cutoff": 0.01,
        "xtc_probability": 0.5, "smoothing_factor": 0.3, "adaptive_target": 0.5,
    }  # fmt: skip
    assert names(on) == list(SAMPLER_NAMES)
    assert all(is_active(name, resolve(on)) for name in SAMPLER_NAMES)


@pytest.mark.parametrize(
    ("params", "needed"),
    [
        ({}, False),
        (DRY, True),  # DRY reads which tokens hold its breakers
        ({**DRY, "dry_sequence_breakers": []}, False),
        ({**DRY, "dry_penalty_last_n": 0}, False),  # DRY is off
        ({**DRY, "samplers": ["top_k", "temperature"]}, False),  # DRY is not in the chain
        ({**DRY, "mirostat": 1}, False),  # mirostat's chain has no DRY
        ({"logit_bias": {"15": 5}}, False),  # a token id
        ({"logit_bias": {"hello": 5}}, True),  # text: tokenized with the model's vocabulary
        ({"logit_bias": {"hello": 5}, "mirostat": 2}, True),  # logit_bias runs under mirostat too
    ],
)
def test_needs_vocab_only_when_an_active_stage_reads_token_texts(params, needed):
    assert needs_vocab(params) is needed


def test_a_chain_built_without_texts_where_none_are_needed_works():
    params = {**DRY, "dry_sequence_breakers": [], "logit_bias": {"2": 3}}
    assert not needs_vocab(params)
    out = build_chain(params, seed=1)(np.array([1, 2, 1, 2, 1], np.intc), np.zeros(4, np.float32))
    assert np.isfinite(out).any()
