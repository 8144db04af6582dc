"""Truncation samplers: each removes unlikely tokens and keeps at least `min_keep`.

Where llama.cpp has the sampler (src/llama-sampler.cpp) the code follows it step by step, down to
which set the probabilities are normalised over and whether the result is sorted. The others follow
text-generation-webui and Hugging Face: top-a and tail free sampling as text-generation-webui
defines them, epsilon and eta cutoffs as arXiv 2210.15191 does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from andon.samplers.candidates import Candidates, descending, keep_at_least, sequential_sum, softmax
from andon.samplers.stage import Params, Stage, Step
from andon.samplers.vocab import Vocab

# llama.cpp's top_p sorts the best 256 first and the rest only when those are not enough.
_TOP_P_FIRST_PASS = 256


@dataclass
class TopK(Stage):
    k: int
    min_keep: int = 1
    name = "top_k"
    parameters = ("top_k",)

    @classmethod
    def from_params(cls, p: Params, vocab: Vocab | None) -> TopK:
        return cls(p["top_k"], p["min_keep"])

    @classmethod
    def active(cls, p: Params) -> bool:
        return p["top_k"] > 0

    def apply(self, c: Candidates, step: Step) -> Candidates:
        return c.keep_top(max(self.k, self.min_keep))


@dataclass
class TopP(Stage):
    p: float
    min_keep: int = 1
    name = "top_p"
    parameters = ("top_p",)

    @classmethod
    def from_params(cls, p: Params, vocab: Vocab | None) -> TopP:
        return cls(p["top_p"], p["min_keep"])

    @classmethod
    def active(cls, p: Params) -> bool:
        return p["top_p"] < 1.0

    def apply(self, c: Candidates, step: Step) -> Candidates:
        p = np.float32(self.p)
        probs = c.probs()  # normalised over every candidate, before sorting, as llama.cpp does
        if c.sorted:  # after top_k: the running sum in this order, the first place it reaches p
            cum = np.cumsum(probs, dtype=np.float32)
            last = max(int(np.searchsorted(cum, p, side="left")) + 1, self.min_keep)
            if last > c.size:  # never reached: llama.cpp keeps everything, its masked entries too
                return c.take(slice(None), sorted=True, masked=c.masked)
            return c.take(slice(0, last), sorted=True)
        width = min(_TOP_P_FIRST_PASS, c.size)
        while True:
            order = descending(c.logits, width)
            cum = np.cumsum(probs[order], dtype=np.float32)
            reached = (cum >= p) & (np.arange(1, width + 1) >= self.min_keep)
            if reached.any():
                last = int(np.argmax(reached)) + 1
                break
            if width == c.size:
                # never reached: llama.cpp keeps everything, its masked entries too
                return c.take(order, sorted=True, masked=c.masked)
            width = min(width * 16, c.size)
        return c.take(order[:last], sorted=True)


@dataclass
class MinP(Stage):
    p: float
    min_keep: int = 1
    name = "min_p"
    parameters = ("min_p",)

    @classmethod
    def from_params(cls, p: Params, vocab: Vocab | None) -> MinP:
        return cls(p["min_p"], p["min_keep"])

    @classmethod
    def active(cls, p: Params) -> bool:
        return p["min_p"] > 0.0

    def apply(self, c: Candidates, step: Step) -> Candidates:
        if c.size == 0:
            return c
        # log space, as llama.cpp: keep l >= l_max + ln(p)
        cut = np.float32(c.logits.max()) + np.float32(math.log(self.p))
        keep = np.flatnonzero(c.logits >= cut)
        if keep.shape[0] >= max(self.min_keep, 1):
            return c.take(keep, sorted=c.sorted)
        return c.keep_top(self.min_keep)


@dataclass
class Typical(Stage):
    p: float
    min_keep: int = 1
    name = "typical_p"
    parameters = ("typical_p",)

    @classmethod
    def from_params(cls, p: Params, vocab: Vocab | None) -> Typical:
        return cls(p["typical_p"], p["min_keep"])

    @classmethod
    def active(cls, p: Params) -> bool:
        return p["typical_p"] < 1.0

    def apply(self, c: Candidates, step: Step) -> Candidates:
        c = c.sort()
        probs = c.probs()
        with np.errstate(divide="ignore", invalid="ignore"):
            logp = np.log(probs)
            entropy = -sequential_sum(np.where(probs > 0, probs * logp, np.float32(0)).astype(np.float32))
            shifted = np.abs(-logp - entropy)
        order = np.argsort(shifted, kind="stable")
        cum = np.cumsum(probs[order], dtype=np.float32)
        ok = (cum > np.float32(self.p)) & (np.arange(c.size) >= self.min_keep - 1)
        last = int(np.argmax(ok)) + 1 if ok.any() else c.size
        return c.take(order[:last], sorted=False)


@dataclass
class TopNSigma(Stage):
    n: float
    min_keep: int = 1
    name = "top_n_sigma"
    parameters = ("top_n_sigma",)

    @classmethod
    def from_params(cls, p: Params, vocab: Vocab | None) -> TopNSigma:
        return cls(p["top_n_sigma"], p["min_keep"])

    @classmethod
    def active(cls, p: Params) -> bool:
        return p["top_n_sigma"] > 0.0

    def apply(self, c: Candidates, step: Step) -> Candidates:
        if c.size <= 1:
            return c
        finite = c.logits if np.isfinite(c.logits.min()) else c.logits[np.isfinite(c.logits)]
        if finite.size == 0:
            return c
        top = np.float32(finite.max())
        mean = np.float32(finite.sum(dtype=np.float32) / np.float32(finite.size))
        centred = finite - mean
        with np.errstate(over="ignore", invalid="ignore"):
            # population sigma in float, as llama.cpp: a DRY penalty near FLT_MAX overflows it to
            # inf there too, and then nothing is removed
            sigma = math.sqrt(float(np.dot(centred, centred)) / finite.size)
        keep = c.logits >= top - np.float32(self.n * sigma)
        keep = keep_at_least(keep, c.logits, self.min_keep)
        index = np.flatnonzero(keep)
        if index.size == c.size:
            return c
        # llama.cpp sets the others to -inf and keeps them in its array: count them as masked
        return c.take(index, sorted=c.sorted, masked=c.masked + c.size - index.size)


@dataclass
class Xtc(Stage):
    probability: float
    threshold: float
    min_keep: int = 1
    name = "xtc"
    parameters = ("xtc_probability", "xtc_threshold")

    @classmethod
    def from_params(cls, p: Params, vocab: Vocab | None) -> Xtc:
        return cls(p["xtc_probability"], p["xtc_threshold"], p["min_keep"])

    @classmethod
    def active(cls, p: Params) -> bool:
        # above 0.5 no two tokens can both reach the threshold: XTC never acts
        return p["xtc_probability"] > 0.0 and p["xtc_threshold"] <= 0.5

    def apply(self, c: Candidates, step: Step) -> Candidates:
        if c.total < 2:
            return c
        if step.rng.random() > self.probability:
            return c
        # llama.cpp sorts everything and walks the leading run of tokens with p >= threshold;
        # that run is exactly the set above the threshold (at most 1/threshold tokens), so only
        # those few are sorted here
        probs = c.probs()
        # a token of probability 0 (a -inf logit) is never "above" the threshold; llama.cpp's
        # threshold 0 would count it and could leave nothing but -inf to sample from
        above = np.flatnonzero((probs >= np.float32(self.threshold)) & (probs > 0))
        if above.size < 2 or c.total - (above.size - 1) < self.min_keep:
            return c
        least = above[np.argmin(c.logits[above])]  # the least likely of them stays
        keep = np.ones(c.size, bool)
        keep[above] = False
        keep[least] = True
        return c.take(np.flatnonzero(keep), sorted=c.sorted, masked=c.masked)


@dataclass
class TailFree(Stage):
    z: float
    min_keep: int = 1
    name = "tfs_z"
    parameters = ("tfs_z",)

    @classmethod
    def from_params(cls, p: Params, vocab: Vocab | None) -> TailFree:
        return cls(p["tfs_z"], p["min_keep"])

    @classmethod
    def active(cls, p: Params) -> bool:
        return p["tfs_z"] < 1.0

    def apply(self, c: Candidates, step: Step) -> Candidates:
        if c.size < 3:
            return c
        c = c.sort()
        d2 = np.abs(np.diff(c.probs(), 2))
        total = d2.sum()
        if not total > 0:
            return c
        cdf = np.cumsum(d2 / total)
        remove = np.concatenate(([False], cdf > self.z, [True]))
        remove[: self.min_keep] = False
        return c.take(np.flatnonzero(~remove), sorted=True)


@dataclass
class _ProbabilityFloor(Stage):
    """Removes tokens whose probability is under a floor computed from the distribution."""

    value: float
    min_keep: int = 1

    @classmethod
    def from_params(cls, p: Params, vocab: Vocab | None) -> _ProbabilityFloor:
        return cls(p[cls.name], p["min_keep"])

    @classmethod
    def active(cls, p: Params) -> bool:
        return p[cls.name] > 0.0

    def floor(self, probs: np.ndarray) -> float:
        raise NotImplementedError

    def apply(self, c: Candidates, step: Step) -> Candidates:
        if c.size == 0:
            return c
        probs = softmax(c.logits)
        keep = keep_at_least(probs >= self.floor(probs), c.logits, self.min_keep)
        return c.take(np.flatnonzero(keep), sorted=c.sorted)


class TopA(_ProbabilityFloor):
    name = "top_a"
    parameters = ("top_a",)

    def floor(self, probs: np.ndarray) -> float:
        top = float(probs.max())
        return self.value * top * top


class EpsilonCutoff(_ProbabilityFloor):
    name = "epsilon_cutoff"
    parameters = ("epsilon_cutoff",)

    def floor(self, probs: np.ndarray) -> float:
        return self.value


class EtaCutoff(_ProbabilityFloor):
    name = "eta_cutoff"
    parameters = ("eta_cutoff",)

    def floor(self, probs: np.ndarray) -> float:
        nz = probs[probs > 0].astype(np.float64)
        entropy = float(-(nz * np.log(nz)).sum())
        return min(self.value, math.sqrt(self.value) * math.exp(-entropy))


__all__ = [
    "EpsilonCutoff",
    "EtaCutoff",
    "MinP",
    "TailFree",
    "TopA",
    "TopK",
    "TopNSigma",
    "TopP",
    "Typical",
    "Xtc",
    "descending",
]
