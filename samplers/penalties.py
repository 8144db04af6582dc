"""Samplers that look at the context: repetition penalties and DRY.

Both read the whole context the chain is given (prompt and reply), limited to their window, the
way llama.cpp's samplers see every token accepted into them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from andon.samplers.candidates import Candidates
from andon.samplers.stage import Params, Stage, Step
from andon.samplers.vocab import Vocab
from numpy.typing import NDArray


def window(input_ids: NDArray[np.intc], last_n: int) -> NDArray[np.intc]:
    """The last `last_n` tokens; -1 is the whole context, 0 is none."""
    if last_n == 0:
        return input_ids[:0]
    if last_n < 0:
        return input_ids
    return input_ids[-last_n:]


def _adjust(c: Candidates, token_ids: NDArray[np.intc], fn) -> Candidates:
    """Apply `fn(logits_of_those_tokens, index_into_token_ids)` to the listed tokens present."""
    which, pos = c.positions(token_ids)
    if pos.size == 0:
        return c
    logits = c.writable_logits()
    logits[pos] = fn(logits[pos], which)
    return c.with_logits(logits, sorted=False)


@dataclass
class Penalties(Stage):
    last_n: int
    repeat: float
    frequency: float
    presence: float
    name = "penalties"
    parameters = ("repeat_last_n", "repeat_penalty", "presence_penalty", "frequency_penalty")

    @classmethod
    def from_params(cls, p: Params, vocab: Vocab | None) -> Penalties:
        return cls(p["repeat_last_n"], p["repeat_penalty"], p["frequency_penalty"], p["presence_penalty"])

    @classmethod
    def active(cls, p: Params) -> bool:
        return p["repeat_last_n"] != 0 and (
            p["repeat_penalty"] != 1.0 or p["frequency_penalty"] != 0.0 or p["presence_penalty"] != 0.0
        )

    def apply(self, c: Candidates, step: Step) -> Candidates:
        seen = window(step.input_ids, self.last_n)
        if seen.size == 0:
            return c
        r, f, pr = np.float32(self.repeat), np.float32(self.frequency), np.float32(self.presence)
        if c.identity and not f and not pr:
            # repeat_penalty alone (Ollama's and the presets' usual case): each token seen is
            # penalised once, from its own logit; a token seen twice is read twice from the same
            # value and written the same result twice, so no np.unique is needed
            logits = c.writable_logits()
            v = logits[seen]
            logits[seen] = np.where(v <= 0, v * r, v / r)
            return c.with_logits(logits, sorted=False)
        tokens, counts = np.unique(seen, return_counts=True)

        def penalise(logits: NDArray[np.float32], which: NDArray[np.intp]) -> NDArray[np.float32]:
            out = np.where(logits <= 0, logits * r, logits / r).astype(np.float32)
            return out - (counts[which].astype(np.float32) * f + pr)

        return _adjust(c, tokens.astype(np.intc), penalise)


@dataclass
class Dry(Stage):
    """DRY ("Don't Repeat Yourself"), as llama.cpp ported it from KoboldCpp.

    A token that would extend a sequence already seen in the window by `allowed_length` or more
    tokens is penalised by multiplier * base^(length - allowed_length). Sequence breakers cap how
    far back a match may reach, and a token that is itself a breaker is never penalised.
    """

    multiplier: float
    base: float
    allowed_length: int
    last_n: int
    breakers: Sequence[str] = ()
    vocab: Vocab | None = None
    name = "dry"
    parameters = ("dry_multiplier", "dry_base", "dry_allowed_length", "dry_penalty_last_n", "dry_sequence_breakers")
    # head token -> tails (token sequences that must precede it, newest first is reversed below)
    _heads: dict[int, list[tuple[int, ...]]] = field(default_factory=dict, init=False, repr=False)
    _single: NDArray[np.intc] = field(default_factory=lambda: np.empty(0, np.intc), init=False, repr=False)
    _is_head: NDArray[np.bool_] | None = field(default=None, init=False, repr=False)

    @classmethod
    def from_params(cls, p: Params, vocab: Vocab | None) -> Dry:
        return cls(
            p["dry_multiplier"],
            p["dry_base"],
            p["dry_allowed_length"],
            p["dry_penalty_last_n"],
            tuple(p["dry_sequence_breakers"]),
            vocab,
        )

    @classmethod
    def active(cls, p: Params) -> bool:
        return p["dry_multiplier"] != 0.0 and p["dry_penalty_last_n"] != 0

    @classmethod
    def needs_vocab(cls, p: Params) -> bool:
        # the breakers are text: which tokens hold them is read from the token texts
        return bool(p["dry_sequence_breakers"])

    def __post_init__(self) -> None:
        if self.vocab is None:
            return
        self._heads = self.vocab.breaker_sequences(self.breakers)
        self._single = np.array(sorted(t for t, tails in self._heads.items() if () in tails), dtype=np.intc)
        self._is_head = np.zeros(self.vocab.size, bool)
        self._is_head[list(self._heads)] = True

    def apply(self, c: Candidates, step: Step) -> Candidates:
        last = window(step.input_ids, self.last_n)
        n = last.shape[0]
        if n <= self.allowed_length:
            return c
        limit = self._repeat_limit(last)
        if limit < self.allowed_length:
            return c
        tokens, lengths = self._continuations(last, limit)
        if tokens.size == 0:
            return c
        if self._single.size:
            keep = ~np.isin(tokens, self._single)
            tokens, lengths = tokens[keep], lengths[keep]
        exponent = lengths - self.allowed_length
        if self.base > 1.000001:
            exponent = np.minimum(exponent, _max_exponent(self.base))
        penalty = (self.multiplier * np.power(self.base, exponent.astype(np.float64))).astype(np.float32)

        def subtract(logits: NDArray[np.float32], which: NDArray[np.intp]) -> NDArray[np.float32]:
            return (logits - penalty[which]).astype(np.float32)

        return _adjust(c, tokens, subtract)

    def _repeat_limit(self, last: NDArray[np.intc]) -> int:
        """How far back from the end a match may reach before it meets a sequence breaker."""
        n = last.shape[0]
        if self._is_head is None:
            return n
        inside = last[last < self._is_head.shape[0]]
        if inside.size != n:
            inside = np.where(last < self._is_head.shape[0], last, 0)
        heads = np.flatnonzero(self._is_head[inside])
        for pos in heads[::-1]:  # newest first; most windows have few breakers
            i = n - 1 - int(pos)  # distance from the end, as llama.cpp's rat(i)
            longest = -1
            for tail in self._heads[int(last[pos])]:
                # a tail is the rest of the breaker, in the tokens that follow the head
                if longest < len(tail) <= i and all(tail[o] == last[pos + o + 1] for o in range(len(tail))):
                    longest = len(tail)
            if longest >= 0:
                return i - longest
        return n

    def _continuations(self, last: NDArray[np.intc], limit: int) -> tuple[NDArray[np.intc], NDArray[np.int64]]:
        """For each token that would extend a repeat, the longest such repeat (vectorised).

        `length[j]` is how many tokens ending at position j match the tokens ending at the end of
        the window (capped at `limit`); the token after position j would continue that repeat.
        """
        n = last.shape[0]
        cap = min(limit, self._useful_length(n))
        cand = np.flatnonzero(last[: n - 1] == last[n - 1])
        lengths = np.zeros(n - 1, np.int64)
        k = 0
        # a few vectorised steps over all candidates; most matches end within them
        while cand.size > 8 and k < cap:
            k += 1
            lengths[cand] = k
            prev = cand - k
            ok = prev >= 0
            cand, prev = cand[ok], prev[ok]
            cand = cand[last[prev] == last[n - 1 - k]]
        # the few long matches left: one slice comparison each
        backwards = last[::-1]
        for j in cand.tolist():
            span = min(j + 1, cap)
            earlier = last[j - span + 1 : j + 1][::-1]
            differ = np.flatnonzero(earlier != backwards[:span])
            lengths[j] = int(differ[0]) if differ.size else span
        # with allowed_length 0, llama.cpp counts zero-length repeats too: every position
        hit = np.flatnonzero(lengths >= self.allowed_length)
        if hit.size == 0:
            return np.empty(0, np.intc), np.empty(0, np.int64)
        follow = last[hit + 1].astype(np.intc)
        order = np.lexsort((-lengths[hit], follow))
        follow, best = follow[order], lengths[hit][order]
        first = np.ones(follow.shape[0], bool)
        first[1:] = follow[1:] != follow[:-1]
        return follow[first], best[first]

    def _useful_length(self, n: int) -> int:
        """Past this length the penalty no longer grows (llama.cpp clamps the exponent)."""
        if self.base > 1.000001:
            return self.allowed_length + _max_exponent(self.base) + 1
        if self.base == 1.0:
            return max(self.allowed_length, 1)
        return n


def _max_exponent(base: float) -> int:
    # llama.cpp keeps base^exponent inside float range: FLOAT_MAX_LOG / ln(base)
    return int(np.float32(88.7228391) / np.float32(math.log(base)))
