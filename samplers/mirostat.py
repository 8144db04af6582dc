"""Mirostat 1 and 2 (arXiv 2007.14966), as llama.cpp implements them.

llama.cpp's mirostat picks the token itself and updates mu at once. Here the chain only shapes the
distribution; the engine samples. The stage remembers the distribution it returned and, on the
next call, reads which token was chosen from `input_ids` and updates mu with its surprise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from andon.samplers.candidates import Candidates
from andon.samplers.stage import Params, Stage, Step
from andon.samplers.vocab import Vocab
from numpy.typing import NDArray

_M = 100  # llama.cpp's number of tokens used to estimate s_hat


@dataclass
class Mirostat(Stage):
    version: int
    tau: float
    eta: float
    min_keep: int = 1
    name = "mirostat"
    parameters = ("mirostat", "mirostat_tau", "mirostat_eta")
    mu: float = field(init=False)
    _last: tuple[int, NDArray[np.intc], NDArray[np.float32]] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.reset()

    @classmethod
    def from_params(cls, p: Params, vocab: Vocab | None) -> Mirostat:
        return cls(p["mirostat"], p["mirostat_tau"], p["mirostat_eta"], p["min_keep"])

    @classmethod
    def active(cls, p: Params) -> bool:
        return p["mirostat"] != 0

    def reset(self) -> None:
        self.mu = 2.0 * self.tau
        self._last = None

    def apply(self, c: Candidates, step: Step) -> Candidates:
        self._learn(step.input_ids)
        c = c.sort()
        keep = self._v1_size(c, step.n_vocab) if self.version == 1 else self._v2_size(c)
        c = c.take(slice(0, max(keep, min(self.min_keep, c.size), 1)), sorted=True)
        self._last = (step.input_ids.shape[0], c.ids, c.probs())
        return c

    def _v2_size(self, c: Candidates) -> int:
        with np.errstate(divide="ignore"):
            surprise = -np.log2(c.probs())
        over = surprise > np.float32(self.mu)
        return int(np.argmax(over)) if over.any() else c.size

    def _v1_size(self, c: Candidates, n_vocab: int) -> int:
        p = c.probs()
        m = min(_M - 1, c.size - 1)
        if m <= 0:
            return 1
        i = np.arange(m, dtype=np.float32)
        t = np.log((i + 2) / (i + 1))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            b = np.log(p[:m] / p[1 : m + 1])  # a tiny p overflows the ratio, as in llama.cpp's float
        s_hat = float(np.sum(t * b, dtype=np.float32) / np.sum(t * t, dtype=np.float32))
        eps = s_hat - 1.0
        try:
            k = ((eps * 2.0**self.mu) / (1.0 - n_vocab ** (-eps))) ** (1.0 / s_hat)
        except (ZeroDivisionError, OverflowError):
            k = float(c.size)
        if isinstance(k, complex) or not math.isfinite(k):
            k = float(c.size) if not isinstance(k, complex) and k > 0 else 1.0
        return max(min(int(k), c.size), 1)

    def _learn(self, input_ids: NDArray[np.intc]) -> None:
        """Update mu with the surprise of the token chosen after the last call."""
        if self._last is None:
            return
        length, ids, probs = self._last
        self._last = None
        if input_ids.shape[0] <= length:
            return  # the context did not grow: a new conversation, nothing to learn
        hit = np.flatnonzero(ids == input_ids[length])
        if hit.size:
            surprise = -math.log2(float(probs[hit[0]]))
            self.mu -= self.eta * (surprise - self.tau)
