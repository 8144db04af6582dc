"""A text's perplexity under the loaded model, computed as llama.cpp's `llama-perplexity` does.

tools/perplexity/perplexity.cpp, `perplexity()`: the text is tokenized with the model's special
tokens (BOS where the model adds one); it is cut into `n_chunk = len(tokens) // n_ctx` chunks of
`n_ctx` tokens (the rest is left out; at least two chunks' worth is required); each chunk is
evaluated in a fresh context, its first token replaced by BOS where the model adds one; only the
second half of each chunk is scored: the logits at positions first = n_ctx/2 .. n_ctx-2 predict
tokens first+1 .. n_ctx-1 (n_ctx - 1 - n_ctx/2 tokens per chunk). The perplexity is
exp(mean negative log-likelihood) over every scored token; `running` holds the value after each
chunk, as llama-perplexity prints `[1]..., [2]...`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from andon.app.engine.logprobs import log_softmax
from andon.app.engine.sequences import Sequences
from numpy.typing import NDArray

if TYPE_CHECKING:
    from llama_cpp import Llama

DEFAULT_CTX = 512  # llama-perplexity's default --ctx-size
MIN_CTX = 4


class PerplexityError(ValueError):
    """The text or the context size cannot give a perplexity (one line for the user)."""


@dataclass
class Perplexity:
    perplexity: float
    n_ctx: int
    chunks: int
    tokens: int  # of the text, BOS included where the model adds one
    scored: int  # tokens whose probability counts
    running: list[float] = field(default_factory=list)  # after each chunk

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def needed(tokens: int, n_ctx: int) -> str | None:
    """Why `tokens` tokens cannot be scored with chunks of `n_ctx` (None if they can)."""
    if n_ctx < MIN_CTX:
        return f"--ctx {n_ctx}: must be at least {MIN_CTX}"
    if tokens < 2 * n_ctx:
        return (f"the text has {tokens} tokens: a context of {n_ctx} needs at least {2 * n_ctx} "
                "(two chunks, as llama-perplexity requires); give a longer text or a smaller --ctx")  # fmt: skip
    return None


class _Chunk(Sequences):
    """One sequence whose every position's logits are kept."""

    def all_logits(self, tokens: Sequence[int]) -> NDArray[np.float32]:
        self.drop(0)
        rows: list[NDArray[np.float32]] = []
        for start in range(0, len(tokens), self.n_batch):
            part = tokens[start : start + self.n_batch]
            self._decode([(0, t, True) for t in part])
            rows.extend(self._row(i) for i in range(len(part)))
        return np.stack(rows)


def perplexity(llm: Llama, tokens: Sequence[int], n_ctx: int, bos: int | None,
               cancelled: Callable[[], bool] | None = None) -> Perplexity:  # fmt: skip
    """llama-perplexity's figure for `tokens` (tokenized as it does); `bos`: the model's BOS where it
    adds one, put at each chunk's start. PerplexityError where the text is too short."""
    if (why := needed(len(tokens), n_ctx)) is not None:
        raise PerplexityError(why)
    n_chunk, first = len(tokens) // n_ctx, n_ctx // 2
    nll, count, running = 0.0, 0, []
    context = _Chunk(llm, 1, n_ctx)
    try:
        for i in range(n_chunk):
            if cancelled is not None and cancelled():
                break
            chunk = list(tokens[i * n_ctx : (i + 1) * n_ctx])
            if bos is not None:
                chunk[0] = bos
            logits = context.all_logits(chunk)
            for j in range(first, n_ctx - 1):
                nll -= float(log_softmax(logits[j])[chunk[j + 1]])
            count += n_ctx - 1 - first
            running.append(math.exp(nll / count))
    finally:
        context.close()
    if not count:
        raise PerplexityError("stopped before the first chunk was scored")
    return Perplexity(running[-1], n_ctx, len(running), len(tokens), count, running)
