"""Adaptive-p (ggml-org/llama.cpp#17927), as llama.cpp's `llama_sampler_init_adaptive_p` does it.

It picks the token itself, as llama.cpp's sampler does: from the candidates' probabilities p it
builds logits that peak where p is near an adapted target and fall off away from it, and draws
from their softmax with its own std::mt19937 (std_random). The adapted target is
2 * target - (running average of the original p of the tokens it picked), so a run of likely
picks lowers the next target and a run of unlikely ones raises it; the average decays by `decay`
per token (it remembers about 1 / (1 - decay) tokens) and starts as if every earlier pick had had
p = target. Every step is float32, in llama.cpp's order, and the candidates are taken in the order
they come, as llama.cpp takes its array: the draw depends on that order.

Here the chain hands the engine a distribution; this stage hands it only the token it picked, so
the engine's draw has nothing left to choose. Like mirostat it learns on the next call: llama.cpp
updates the average when the token is accepted, here when the token it picked is the one after
the context it saw. Its state is plain values replaced on each call (Chain.save_state keeps it).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import numpy as np
from andon.samplers.candidates import Candidates, sequential_sum
from andon.samplers.stage import Params, Stage, Step
from andon.samplers.std_random import MtState, discrete, mt19937_state
from andon.samplers.vocab import Vocab
from numpy.typing import NDArray

_F = np.float32
# llama.cpp's constants of the transform (DISTRIBUTION_WIDTH, PEAK_LOGIT_VALUE, SHARPNESS)
_INV_WIDTH = _F(1.0) / _F(0.3)
_PEAK = _F(5.0)
_SHARPNESS = _F(10.0)


@dataclass
class AdaptiveP(Stage):
    target: float
    decay: float
    seed: int | None = None  # None: a fresh random seed, as llama.cpp's LLAMA_DEFAULT_SEED
    name = "adaptive_p"
    parameters = ("adaptive_target", "adaptive_decay")
    weighted_sum: np.float32 = field(init=False)
    total_weight: np.float32 = field(init=False)
    _rng: MtState = field(init=False)
    # (context length, token picked, its probability before the transform), until learnt
    _pending: tuple[int, int, np.float32] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.reset()

    @classmethod
    def from_params(cls, p: Params, vocab: Vocab | None) -> AdaptiveP:
        seed = p["seed"]
        return cls(p["adaptive_target"], p["adaptive_decay"], None if seed is None or seed < 0 else seed)

    @classmethod
    def active(cls, p: Params) -> bool:
        return bool(p["adaptive_target"] >= 0.0)

    def reset(self) -> None:
        """llama.cpp's reset: the average as if every pick had been the target, the generator reseeded."""
        decay = _F(self.decay)
        self.weighted_sum = _F(self.target) / (_F(1.0) - decay)
        self.total_weight = _F(1.0) / (_F(1.0) - decay)
        self._pending = None
        self._rng = mt19937_state(secrets.randbits(32) if self.seed is None else self.seed)

    def apply(self, c: Candidates, step: Step) -> Candidates:
        self._learn(step.input_ids)
        p = softmax(c.logits)
        logits = self.transformed(c.logits, p)
        index, self._rng = discrete(softmax(logits), self._rng, draws=c.total >= 2)
        self._pending = (step.input_ids.shape[0], int(c.ids[index]), p[index])
        picked = c.take(np.array([index], np.intp), sorted=True)
        return picked.with_logits(logits[index : index + 1])

    def transformed(self, logits: NDArray[np.float32], p: NDArray[np.float32]) -> NDArray[np.float32]:
        """The logits it draws from: peak 5 where p is the adapted target; -inf stays -inf."""
        target = _F(min(max(self.target, 0.0), 1.0))
        adapted = np.clip(_F(2.0) * target - self.weighted_sum / self.total_weight, _F(0.0), _F(1.0))
        distance = np.abs((p - adapted) * _INV_WIDTH)
        shaped = _PEAK - _SHARPNESS * distance * distance / (_F(1.0) + distance)
        return np.where(logits == -np.inf, logits, shaped).astype(np.float32)

    def _learn(self, input_ids: NDArray[np.intc]) -> None:
        """llama.cpp's accept: the average takes in the picked token's p if it is the one that came."""
        if self._pending is None:
            return
        length, token, p = self._pending
        self._pending = None
        if input_ids.shape[0] > length and int(input_ids[length]) == token:
            decay = _F(self.decay)
            self.weighted_sum = p + decay * self.weighted_sum
            self.total_weight = _F(1.0) + decay * self.total_weight


def softmax(logits: NDArray[np.float32]) -> NDArray[np.float32]:
    """llama.cpp's softmax_impl in its order: expf(l - max), a float32 sum left to right, divided.

    exp is taken in double and rounded: glibc's expf is (almost always) that rounding, where
    numpy's float32 exp is one unit in the last place off for about 4 in 10 values.
    """
    e = np.exp((logits - logits.max()).astype(np.float64)).astype(np.float32)
    return e / sequential_sum(e)
