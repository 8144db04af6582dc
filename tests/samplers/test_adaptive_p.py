"""Adaptive-p against llama.cpp's own sampler (llama_sampler_init_adaptive_p, through the bindings).

The same logits go through andon's chain and llama.cpp's, token after token: llama.cpp's sampler
picks a token and is told it was accepted, andon's chain sees it at the end of the context, so the
running average and the generator are carried across tokens on both sides. The token picked must be
the same at every step, and the logit it was drawn with (which reads the running average) the same.
"""

from __future__ import annotations

import llama_cpp
import numpy as np
import pytest
from andon.samplers import DEFAULT_ORDER, ParameterError, build_chain, resolve
from andon.samplers.std_random import discrete, mt19937_state

from tests.samplers.native import NativeChain

N_VOCAB = 2000
OFF = {"top_k": 0, "top_p": 1.0}  # andon's default truncation off: the candidates in vocabulary order
CHAINS = {
    "defaults": {},
    "min_p": {**OFF, "min_p": 0.05, "temperature": 1.0},
    "whole vocabulary": {**OFF, "temperature": 0.7},
    "top_n_sigma": {**OFF, "top_n_sigma": 1.5},
    "typical_p": {**OFF, "typical_p": 0.9},
    "penalties": {**OFF, "min_p": 0.02, "repeat_penalty": 1.3, "presence_penalty": 0.5, "repeat_last_n": 16},
    "greedy": {"temperature": 0.0},
    "top_k, bias, min_keep": {"top_k": 5, "top_p": 0.5, "min_keep": 3, "logit_bias": {5: 3.0}},
    "listed first": {**OFF, "min_p": 0.1, "samplers": ["adaptive_p", "min_p", "temperature"]},
}
SETTINGS = [(0.5, 0.9, 1), (0.1, 0.0, 42), (0.9, 0.99, 4_000_000_000), (0.0, 0.5, 7), (1.0, 0.3, 8)]


def _logits(rng: np.random.Generator, n: int = N_VOCAB) -> np.ndarray:
    return rng.normal(0, 3, n).astype(np.float32)


def _agree(ours: list, theirs: list, tolerance: float = 1e-6) -> None:
    """The same token at every step, drawn with the same logit to float32 rounding (numpy's exp
    and glibc's expf differ in the last place for about 1 value in 800)."""
    assert [t for t, _ in ours] == [t for t, _ in theirs]
    assert np.allclose([x for _, x in ours], [x for _, x in theirs], rtol=tolerance, atol=tolerance)


def _run(params: dict, seed: int, steps: int, n: int = N_VOCAB, data_seed: int = 0) -> tuple[list, list]:
    """[(token, logit)] picked by llama.cpp and by andon over `steps` tokens of the same logits."""
    rng = np.random.default_rng(data_seed)
    native = NativeChain(params, n, history_len=0, seed=seed)
    chain = build_chain(params, n_vocab=n, seed=seed)
    context = [1, 2, 3]
    native.accept(context)
    theirs, ours = [], []
    try:
        for _ in range(steps):
            logits = _logits(rng, n)
            out, picked = native.apply(logits)
            mine = chain.candidates_after(np.array(context, np.intc), logits)
            theirs.append((picked, float(out[picked])))
            ours.append((int(mine.ids[0]), float(mine.logits[0])))
            native.accept([picked])
            context.append(picked)
    finally:
        native.close()
    return theirs, ours


@pytest.mark.parametrize(("target", "decay", "seed"), SETTINGS)
@pytest.mark.parametrize("chain", list(CHAINS))
def test_the_same_tokens_as_llama_cpp_token_after_token(chain, target, decay, seed):
    params = {**CHAINS[chain], "adaptive_target": target, "adaptive_decay": decay}
    theirs, ours = _run(params, seed, steps=80)
    _agree(ours, theirs)


def test_the_same_tokens_over_a_large_vocabulary_and_a_long_run():
    params = {**OFF, "min_p": 0.01, "temperature": 1.2, "adaptive_target": 0.3, "adaptive_decay": 0.95}
    theirs, ours = _run(params, 1234, steps=300, n=32000, data_seed=5)
    _agree(ours, theirs)
    assert len({t for t, _ in ours}) > 250  # it did choose: not the same few tokens


def test_dynamic_temperature_leaves_the_order_llama_cpp_draws_in():
    """temp_ext with a range sorts the candidates in llama.cpp; the draw reads that order."""
    params = {**OFF, "dynatemp_range": 0.5, "min_p": 0.02, "adaptive_target": 0.4}
    theirs, ours = _run(params, 3, steps=80)
    _agree(ours, theirs, tolerance=1e-5)  # dynatemp's entropy is taken in double here


def test_a_higher_target_picks_likelier_tokens():
    """What a user sets it for: the picks' probability follows the target (where the model's
    distribution can reach it), and the running average is the one the stage reports."""
    means = {}
    for target in (0.1, 0.2, 0.6):
        rng = np.random.default_rng(11)
        chain = build_chain({**OFF, "min_p": 0.01, "adaptive_target": target, "adaptive_decay": 0.9}, seed=9)
        context, picked_p = [0], []
        for _ in range(400):
            logits = rng.normal(0, 4.0, 300).astype(np.float32)
            token = int(chain.candidates_after(np.array(context, np.intc), logits).ids[0])
            p = np.exp(logits.astype(np.float64) - logits.max())
            picked_p.append(p[token] / p.sum())
            context.append(token)
        means[target] = float(np.mean(picked_p))
    assert means[0.1] < means[0.2] < means[0.6]
    assert abs(means[0.2] - 0.2) < 0.1 and abs(means[0.6] - 0.6) < 0.15


def test_a_second_run_for_the_same_token_advances_nothing_twice():
    """A grammar's fallback runs the chain again from the saved state (Chain.save_state): the
    average and the generator move once per token, as llama.cpp's one run on the masked logits."""
    params = {**OFF, "min_p": 0.02, "adaptive_target": 0.4, "adaptive_decay": 0.8}
    rng = np.random.default_rng(2)
    native = NativeChain(params, N_VOCAB, history_len=0, seed=77)
    chain = build_chain(params, n_vocab=N_VOCAB, seed=77)
    context = [5]
    native.accept(context)
    for step in range(60):
        logits = _logits(rng)
        masked = np.full_like(logits, -np.inf)
        masked[step % 5 :: 5] = logits[step % 5 :: 5]  # what a grammar would allow
        state = chain.save_state()
        chain.candidates_after(np.array(context, np.intc), logits)  # the first try, refused
        chain.restore_state(state)
        mine = chain.candidates_after(np.array(context, np.intc), masked)
        _, picked = native.apply(masked)
        assert int(mine.ids[0]) == picked
        native.accept([picked])
        context.append(picked)
    native.close()


def test_reset_starts_over_as_llama_cpps_reset():
    params = {**OFF, "min_p": 0.05, "adaptive_target": 0.5}
    rng = np.random.default_rng(4)
    native = NativeChain(params, N_VOCAB, history_len=0, seed=21)
    chain = build_chain(params, n_vocab=N_VOCAB, seed=21)
    for _ in range(2):
        context = [1]
        for _step in range(25):
            logits = _logits(rng)
            _, picked = native.apply(logits)
            assert int(chain.candidates_after(np.array(context, np.intc), logits).ids[0]) == picked
            native.accept([picked])
            context.append(picked)
        llama_cpp.llama_sampler_reset(native.chain)
        chain.reset()
    native.close()


def test_where_it_runs():
    """Last, in place of the engine's draw; off below 0, when `samplers` leaves it out, under mirostat."""
    on = {"adaptive_target": 0.5, "min_p": 0.05}
    assert DEFAULT_ORDER[-1] == "adaptive_p" and resolve({})["adaptive_target"] == -1.0
    assert [s.name for s in build_chain(on).stages][-2:] == ["temperature", "adaptive_p"]
    assert "adaptive_p" not in [s.name for s in build_chain({}).stages]
    assert "adaptive_p" not in [s.name for s in build_chain({**on, "samplers": ["min_p", "temperature"]}).stages]
    assert [s.name for s in build_chain({**on, "mirostat": 2}).stages] == ["temperature", "mirostat"]
    picked = build_chain(on, seed=1).candidates_after(np.array([0], np.intc), _logits(np.random.default_rng(0)))
    assert picked.size == 1  # the engine's own draw has nothing left to choose


def test_its_ranges_are_llama_servers():
    with pytest.raises(ParameterError, match=r"adaptive_target: 1.5 is not allowed \(must be a number <= 1\)"):
        resolve({"adaptive_target": 1.5})
    with pytest.raises(
        ParameterError,
        match=r"adaptive_decay: 1(.0)? is not allowed \(must be a number >= 0"
        r" and <= 0\.99",
    ):
        resolve({"adaptive_decay": 1.0})
    assert resolve({"adaptive_target": -3, "adaptive_decay": 0.99})["adaptive_target"] == -3


def test_std_mt19937_and_discrete_distribution_reference_values():
    """The C++ standard's check value for mt19937, and libstdc++'s draw on hand-computed cases."""
    generator = np.random.MT19937()
    generator.state = mt19937_state(5489)
    assert generator.random_raw(10000)[-1] == 4123659995  # [rand.predef]: the 10000th output
    generator.state = mt19937_state(5489)
    a, b = generator.random_raw(2)
    u = (float(a) + float(b) * 2.0**32) / 2.0**64  # generate_canonical<double, 53>: two outputs
    weights = np.array([0.25, 0.25, 0.5], np.float32)
    expected = int(np.searchsorted([0.25, 0.5, 1.0], u, side="left"))
    index, state = discrete(weights, mt19937_state(5489))
    assert index == expected and state["state"]["pos"] == 2  # two 32-bit draws taken
    start = mt19937_state(5489)
    index, after = discrete(weights[:1], start, draws=False)  # one entry: nothing drawn
    assert index == 0 and after is start
