"""Log-probabilities of a reply's tokens, in the shape of OpenAI's `logprobs.content`.

For each token the reply keeps: `logprob`, the model's log-probability of it (log_softmax of
llama.cpp's logits, before the sampler chain: what OpenAI's API and llama-server report),
`chain_logprob`, its log-probability in the distribution the chain left and the token was drawn
from (-inf where a constraint had to take a token the chain removed), its `bytes`, and
`top_logprobs`: the K likeliest tokens before the chain, each {token, logprob, bytes}.
"""

from __future__ import annotations

import bisect
import math
from typing import Any

import numpy as np
from andon.app.engine.tokens import TokenTexts
from andon.samplers import Candidates
from numpy.typing import NDArray

MAX_TOP = 20  # OpenAI's top_logprobs allows 0..20


def log_softmax(logits: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
    """log(softmax(logits)) in float64; -inf logits stay -inf."""
    x = np.asarray(logits, dtype=np.float64)
    top = np.max(x)
    return x - (top + np.log(np.sum(np.exp(x - top))))


class LogprobRecorder:
    """What `Reply.choose` saw for the token being chosen, kept as an entry once the reply takes it."""

    def __init__(self, texts: TokenTexts, top: int) -> None:
        if not 0 <= top <= MAX_TOP:
            raise ValueError(f"logprobs {top}: must be 0 to {MAX_TOP} (the alternatives shown per token)")
        self.texts, self.top = texts, top
        self.entries: list[dict[str, Any]] = []
        self._at: list[int] = []  # each entry's position in the reply (think_budget's tokens have none)
        self._kept = 0  # the reply's tokens so far
        self._model: NDArray[np.float64] | None = None
        self._chain: dict[int, float] = {}

    def seen(self, logits: NDArray[np.float32], chosen_from: Candidates) -> None:
        """The logits before the chain and the candidates the token is drawn from."""
        self._model = log_softmax(logits)
        finite = np.isfinite(chosen_from.logits)
        chain = log_softmax(chosen_from.logits[finite]) if finite.any() else np.zeros(0)
        self._chain = dict(zip(chosen_from.ids[finite].tolist(), chain.tolist(), strict=True))

    def keep(self, token: int) -> None:
        """The reply took `token`: its entry, from what was seen last."""
        self._kept += 1
        if self._model is None:
            return  # a token written for the model (think_budget's closing text), not chosen
        model, self._model = self._model, None
        best = np.argpartition(-model, self.top)[: self.top] if self.top else np.zeros(0, dtype=np.intp)
        best = best[np.argsort(-model[best], kind="stable")]
        self.entries.append({
            **self._token(token, float(model[token])),
            "chain_logprob": _finite(self._chain.get(token, -math.inf)),
            "top_logprobs": [self._token(int(t), float(model[t])) for t in best],
        })  # fmt: skip
        self._at.append(self._kept - 1)

    def cut(self, n: int) -> None:
        """Keep the entries of the reply's first `n` tokens (a reply rewound by banned_strings)."""
        kept = self.before(n)
        del self.entries[kept:], self._at[kept:]
        self._kept = n

    def before(self, n: int) -> int:
        """How many entries the reply's first `n` tokens have."""
        return bisect.bisect_left(self._at, n)

    def _token(self, token: int, logprob: float) -> dict[str, Any]:
        piece = self.texts.piece(token)
        return {"token": piece.decode("utf-8", "replace"), "logprob": _finite(logprob), "bytes": list(piece)}


def _finite(x: float) -> float:
    """JSON has no -inf: OpenAI's floor for an impossible token."""
    return x if math.isfinite(x) else -9999.0
