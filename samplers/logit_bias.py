"""logit_bias: added to the logits before any other sampler; -inf (false) bans a token."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from andon.samplers.candidates import Candidates
from andon.samplers.errors import ParameterError
from andon.samplers.stage import Params, Stage, Step
from andon.samplers.vocab import Vocab


@dataclass
class LogitBias(Stage):
    token_ids: np.ndarray
    biases: np.ndarray
    name = "logit_bias"
    parameters = ("logit_bias",)

    @classmethod
    def from_params(cls, p: Params, vocab: Vocab | None) -> LogitBias:
        return cls.build(p["logit_bias"], vocab)

    @classmethod
    def active(cls, p: Params) -> bool:
        return bool(p["logit_bias"])

    @classmethod
    def needs_vocab(cls, p: Params) -> bool:
        return any(isinstance(key, str) for key in p["logit_bias"])  # keyed by text: tokenized

    @classmethod
    def build(cls, bias: Mapping[int | str, float], vocab: Vocab | None) -> LogitBias:
        ids: list[int] = []
        values: list[float] = []
        for key, value in bias.items():
            if isinstance(key, str):
                if vocab is None:
                    raise ParameterError(f"logit_bias: {key!r} is text, which needs the model's vocabulary")
                tokens = vocab.tokenize(key)
                if not tokens:
                    raise ParameterError(f"logit_bias: {key!r} is no token of this model")
            else:
                tokens = [key]
            # text spanning several tokens biases each of them, as llama-server does
            ids.extend(tokens)
            values.extend([value] * len(tokens))
        return cls(np.array(ids, np.intc), np.array(values, np.float32))

    def __post_init__(self) -> None:
        # each token once: one indexed add does what llama.cpp's loop does (else np.add.at, in order)
        self._once = bool(np.unique(self.token_ids).shape[0] == self.token_ids.shape[0])

    def apply(self, c: Candidates, step: Step) -> Candidates:
        if self.token_ids.size == 0:
            return c
        if c.identity and self._once and int(self.token_ids.max()) < c.size:
            logits = c.writable_logits()
            logits[self.token_ids] += self.biases
            return c.with_logits(logits, sorted=False)
        which, pos = c.positions(self.token_ids)
        if pos.size == 0:
            return c
        logits = c.writable_logits()
        np.add.at(logits, pos, self.biases[which])
        return c.with_logits(logits, sorted=False)


def check_token_ids(bias: Mapping[int | str, float], n_vocab: int) -> None:
    """Refuse a token id this vocabulary does not have, naming it and the ids there are."""
    for key in bias:
        if isinstance(key, int) and not 0 <= key < n_vocab:
            raise ParameterError(
                f"logit_bias: token id {key} is not in this model's vocabulary (token ids are 0 to {n_vocab - 1})"
            )
