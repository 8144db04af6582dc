"""Samplers that reshape the distribution without removing tokens (except greedy)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from andon.samplers.candidates import NEG_INF, Candidates
from andon.samplers.stage import Params, Stage, Step
from andon.samplers.vocab import Vocab


@dataclass
class Temperature(Stage):
    """llama.cpp's temp_ext: a fixed temperature, or an entropy-driven one when range > 0.

    Temperature 0 is greedy: the first candidate with the highest logit stays, the others become
    -inf (the set keeps its size, as in llama.cpp).
    """

    temperature: float
    dynatemp_range: float = 0.0
    dynatemp_exponent: float = 1.0
    name = "temperature"
    parameters = ("temperature", "dynatemp_range", "dynatemp_exponent")

    @classmethod
    def from_params(cls, p: Params, vocab: Vocab | None) -> Temperature:
        return cls(p["temperature"], p["dynatemp_range"], p["dynatemp_exponent"])

    # always active: temperature 1 is neutral, but greedy (0) is not

    def apply(self, c: Candidates, step: Step) -> Candidates:
        if self.temperature <= 0.0:
            return greedy(c)
        if self.dynatemp_range <= 0.0:
            return _scaled(c, self.temperature)
        if c.total <= 1:
            return c
        # sorted, as llama.cpp's temp_ext leaves them: adaptive-p's draw reads the order
        return _scaled(c.sort(), self._dynamic(c))

    def _dynamic(self, c: Candidates) -> float:
        low = max(0.0, self.temperature - self.dynatemp_range)
        high = self.temperature + self.dynatemp_range
        probs = c.probs().astype(np.float64)
        nz = probs[probs > 0]
        entropy = float(-(nz * np.log(nz)).sum())
        normalised = entropy / math.log(c.total)  # llama.cpp counts its -inf masked entries here
        return low + (high - low) * normalised**self.dynatemp_exponent


def _scaled(c: Candidates, t: float) -> Candidates:
    if t <= 0.0:
        return greedy(c)
    with np.errstate(over="ignore"):
        logits = c.logits / np.float32(t)
    if np.isposinf(logits).any():
        # a temperature so close to 0 that the logits overflow: that is greedy decoding
        return greedy(c)
    return c.with_logits(logits)


def greedy(c: Candidates) -> Candidates:
    if c.size == 0:
        return c
    best = int(np.argmax(c.logits))
    logits = np.full(c.size, NEG_INF, np.float32)
    logits[best] = c.logits[best]
    return c.with_logits(logits)


@dataclass
class Smoothing(Stage):
    """Quadratic (and cubic) sampling, text-generation-webui's QuadraticSamplingLogitsWarper."""

    factor: float
    curve: float = 1.0
    name = "smoothing"
    parameters = ("smoothing_factor", "smoothing_curve")

    @classmethod
    def from_params(cls, p: Params, vocab: Vocab | None) -> Smoothing:
        return cls(p["smoothing_factor"], p["smoothing_curve"])

    @classmethod
    def active(cls, p: Params) -> bool:
        return p["smoothing_factor"] > 0.0

    def apply(self, c: Candidates, step: Step) -> Candidates:
        if c.size == 0:
            return c
        finite = np.isfinite(c.logits)
        if not finite.any():
            return c
        top = float(c.logits[finite].max())
        diff = np.where(finite, c.logits, top).astype(np.float64) - top  # <= 0; float64: no overflow
        k = (3.0 - self.curve) / 2.0
        s = (self.curve - 1.0) / 2.0
        shaped = -(k * self.factor * diff**2) + top
        if s:  # the cubic term (smoothing_curve > 1); skipped at 0, where 0 * inf would be NaN
            shaped += s * self.factor * diff**3
        with np.errstate(over="ignore"):  # beyond float32's range is -inf: a token never chosen
            shaped = shaped.astype(np.float32)
        logits = np.where(finite, shaped, c.logits).astype(np.float32)
        # for curve <= 3 the transform is monotone, so a sorted set stays sorted
        return c.with_logits(logits, sorted=c.sorted and self.curve <= 3.0)
