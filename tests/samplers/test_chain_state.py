"""Chain.save_state / restore_state: running the chain again for one token advances nothing twice.

A grammar's fallback runs the chain a second time on masked logits for the same token. With the
state restored in between, mirostat's mu moves once per token by the paper's update and XTC draws
one number per token, exactly as if the first run had never happened.
"""

from __future__ import annotations

import math

import numpy as np
from andon.samplers import build_chain, softmax


def _logits(seed: int, n: int = 500) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 3, n).astype(np.float32)


def _masked(logits: np.ndarray, keep: np.ndarray) -> np.ndarray:
    out = np.full_like(logits, -np.inf)
    out[keep] = logits[keep]
    return out


def test_mirostat_mu_moves_once_per_token_when_the_chain_runs_twice():
    chain = build_chain({"mirostat": 2, "mirostat_tau": 5.0, "mirostat_eta": 0.1}, seed=1)
    stage = chain.stages[-1]
    context = [1, 2, 3]
    mu = 2 * 5.0  # llama.cpp starts mu at 2 * tau
    for step in range(6):
        logits = _logits(step)
        state = chain.save_state()
        chain.candidates_after(np.array(context, np.intc), logits)  # the first try, rejected
        chain.restore_state(state)
        allowed = np.arange(step, 500, 7)  # what a grammar would allow
        final = chain.candidates_after(np.array(context, np.intc), _masked(logits, allowed))
        p = softmax(final.logits)
        token = int(final.ids[int(np.argmax(p))])
        surprise = -math.log2(float(p.max()))
        context.append(token)
        # mirostat learns the chosen token's surprise on the next call: the reference update
        if step > 0:
            assert math.isclose(stage.mu, mu, rel_tol=1e-9)
        mu -= 0.1 * (surprise - 5.0)


def test_xtc_draws_one_number_per_token_when_the_chain_runs_twice():
    chain = build_chain({"xtc_probability": 0.5, "xtc_threshold": 0.1, "temperature": 1.0}, seed=7)
    reference = np.random.default_rng(7)
    for step in range(20):
        logits = _logits(100 + step)
        state = chain.save_state()
        chain.candidates_after(np.array([1], np.intc), logits)
        chain.restore_state(state)
        chain.candidates_after(np.array([1], np.intc), _masked(logits, np.arange(0, 500, 3)))
        reference.random()  # XTC's one draw for this token
        assert chain.rng.random() == reference.random()  # the next draw agrees: same position


def test_restore_gives_the_same_candidates_as_the_first_run():
    chain = build_chain({"xtc_probability": 0.5, "xtc_threshold": 0.05, "mirostat": 0}, seed=3)
    logits = _logits(5)
    for _ in range(10):
        state = chain.save_state()
        first = chain.candidates_after(np.array([4, 5], np.intc), logits)
        chain.restore_state(state)
        again = chain.candidates_after(np.array([4, 5], np.intc), logits)
        assert np.array_equal(np.sort(first.ids), np.sort(again.ids))
