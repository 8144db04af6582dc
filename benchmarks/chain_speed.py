"""Cost per token of the sampler chain on random logits with a 4,096-token history.

For each built-in preset's settings and for every sampler on at once, at vocabulary sizes 49,152
and 262,144. Targets on a 2-core machine: presets <= 0.5 ms (49k) and <= 2 ms (262k); every
sampler on, at most three times that.

    python benchmarks/chain_speed.py [--repeat 200]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from andon.presets.store import PresetStore
from andon.samplers import build_chain

EVERYTHING = {
    "repeat_penalty": 1.1, "presence_penalty": 0.2, "frequency_penalty": 0.1, "repeat_last_n": -1,
    "dry_multiplier": 0.8, "dry_penalty_last_n": -1, "top_n_sigma": 2.0, "top_k": 200, "typical_p": 0.95,
    "top_p": 0.95, "min_p": 0.02, "tfs_z": 0.98, "top_a": 0.1, "epsilon_cutoff": 0.0003, "eta_cutoff": 0.0003,
    "xtc_probability": 0.5, "xtc_threshold": 0.1, "smoothing_factor": 0.3, "dynatemp_range": 0.3,
    "temperature": 1.0,
}  # fmt: skip
TARGETS = {49152: 0.5, 262144: 2.0}


def model_like_logits(rng: np.random.Generator, n: int) -> np.ndarray:
    """A long tail with a few strong candidates, like a language model's next-token logits."""
    x = rng.standard_normal(n).astype(np.float32) * 2.0
    x[rng.choice(n, 5, replace=False)] += rng.uniform(6, 12, 5).astype(np.float32)
    return x


def per_token_ms(params: dict, n_vocab: int, repeat: int) -> float:
    rng = np.random.default_rng(0)
    vocab = [f"t{i}" for i in range(n_vocab)]  # DRY's breakers need token texts
    chain = build_chain(params, vocab=vocab, seed=1)
    history = rng.integers(0, n_vocab, 4096).astype(np.intc)
    history[-200:] = history[1000:1200]  # a repeat for DRY and the penalties to find
    logits = [model_like_logits(rng, n_vocab) for _ in range(8)]
    for x in logits:
        chain(history, x)
    t = time.perf_counter()
    for i in range(repeat):
        chain(history, logits[i % 8])
    return (time.perf_counter() - t) / repeat * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=200)
    args = ap.parse_args()
    store = PresetStore()
    rows = [(name, store.load(name).parameters.sampling()) for name in store.builtin_names()]
    rows.append(("every sampler on", EVERYTHING))
    print(f"{'settings':<18} {'49,152 (ms)':>12} {'262,144 (ms)':>13}")
    for name, params in rows:
        figures = []
        for n in (49152, 262144):
            ms = per_token_ms(params, n, args.repeat)
            limit = TARGETS[n] * (3 if name == "every sampler on" else 1)
            figures.append(f"{ms:8.3f} {'ok ' if ms <= limit else 'SLOW'}")
        print(f"{name:<18} {figures[0]:>12} {figures[1]:>13}")
    print("targets: presets <= 0.5 ms / 2 ms; every sampler on <= 1.5 ms / 6 ms")


if __name__ == "__main__":
    main()
