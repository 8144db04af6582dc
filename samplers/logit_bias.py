"""logit_bias: added to the logits before any other sampler; -inf (false) bans a token."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from andon.samplers.candidates import Candidates
from andon.samplers.params import ParameterError
from andon.samplers.stage import Stage, Step
from andon.samplers.vocab import Vocab


@dataclass
class LogitBias(Stage):
    token_ids: np.ndarray
    biases: np.ndarray
    name = "logit_bias"

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
                if vocab is not None and key >= vocab.size:
                    raise ParameterError(f"logit_bias: token id {key} is not allowed (must be < {vocab.size})")
                tokens = [key]
            # text spanning several tokens biases each of them, as llama-server does
            ids.extend(tokens)
            values.extend([value] * len(tokens))
        return cls(np.array(ids, np.intc), np.array(values, np.float32))

    def apply(self, c: Candidates, step: Step) -> Candidates:
        if self.token_ids.size == 0:
            return c
        which, pos = c.positions(self.token_ids)
        if pos.size == 0:
            return c
        logits = c.logits.copy()
        np.add.at(logits, pos, self.biases[which])
        return c.with_logits(logits, sorted=False)
