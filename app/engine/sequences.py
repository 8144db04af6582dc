"""Several sequences decoded together: beams, MBR samples, a sweep's cells, a server's clients.

A llama.cpp context of its own on the loaded model's weights (the weights are shared; only the KV
cache and the compute buffers are new), made with room for `n_seq` sequences in one unified KV
cache. A prompt is evaluated once and copied to the other sequences (`llama_memory_seq_cp` shares its
cells: no second evaluation, no second copy of its keys and values); then one `llama_decode` per step
takes one token of every live sequence, so k sequences cost one batch of k tokens a step (on 2 CPU
cores a batch of 4 costs 2-2.4 single passes, of 8 3.3-4.0, from one day to the next:
benchmarks/batch_cost.py), not k passes. `adopt` copies a chat's cached prompt in, so only what
the chat's cache lacks is evaluated; the chat's own context (KVContext) is only read.

Logits of a batch differ from a single sequence's in the last bits (llama.cpp sums in another
order), so a reference to compare with must be computed from these same logits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from andon.app.engine.context import LogitViews, reusable_prefix
from numpy.typing import NDArray

if TYPE_CHECKING:
    from llama_cpp import Llama


class SequencesError(RuntimeError):
    """llama.cpp could not make the context or decode a batch (out of memory, a full cache)."""


class SequencesCancelled(Exception):
    """A fill was asked to stop between batches."""


class Sequences:
    """Up to `n_seq` sequences (ids 0..n_seq-1) of at most `n_ctx` tokens in all, on `llm`'s weights."""

    def __init__(self, llm: Llama, n_seq: int, n_ctx: int) -> None:
        import llama_cpp

        if n_seq < 1:
            raise ValueError(f"n_seq must be >= 1 (got {n_seq})")
        self._lib = llama_cpp
        self.n_seq = n_seq
        self.n_vocab: int = llm.n_vocab()
        # the chat context's settings (threads, flash attention, cache types), with room for n_seq
        params = llama_cpp.llama_context_params.from_buffer_copy(llm.context_params)
        params.n_ctx = max(n_ctx, 16)
        params.n_seq_max = n_seq
        params.kv_unified = True  # one cache: a copied prompt's cells are shared, not repeated
        params.n_batch = max(int(llm.context_params.n_batch), n_seq)
        params.n_ubatch = params.n_batch
        params.embeddings = False
        self.n_ctx = int(params.n_ctx)
        self.n_batch = min(int(params.n_batch), self.n_ctx)  # llama.cpp's own clamp
        self._ctx = llama_cpp.llama_init_from_model(llm.model, params)
        if not self._ctx:
            raise SequencesError(f"could not make a context of {self.n_ctx} tokens for {n_seq} sequences")
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self._batch: Any = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        self.tokens: list[list[int]] = [[] for _ in range(n_seq)]  # what each sequence holds, in order
        self._views = LogitViews(self.n_vocab)

    def fill(self, seq: int, tokens: Sequence[int], cancelled: Callable[[], bool] | None = None) -> NDArray[np.float32]:
        """Evaluate `tokens` after what sequence `seq` holds, n_batch at a time; the next-token logits
        after the last (a copy). `cancelled` is asked before each batch (KeyboardInterrupt-free stop:
        the sequence then holds the batches evaluated)."""
        if not tokens:
            raise ValueError("fill needs at least one token")
        if len(self.tokens[seq]) + len(tokens) > self.n_ctx:  # llama.cpp would abort, not return an error
            raise SequencesError(f"{len(self.tokens[seq]) + len(tokens)} tokens do not fit in {self.n_ctx}")
        for start in range(0, len(tokens), self.n_batch):
            if cancelled is not None and cancelled():
                raise SequencesCancelled()
            chunk = tokens[start : start + self.n_batch]
            last = start + len(chunk) == len(tokens)
            self._decode([(seq, t, last and i == len(chunk) - 1) for i, t in enumerate(chunk)])
        return self._last_logits()

    def prefill(
        self, seq: int, tokens: Sequence[int], cancelled: Callable[[], bool] | None = None
    ) -> NDArray[np.float32]:
        """Make sequence `seq` hold `tokens`, keeping the longest prefix it already holds and
        evaluating the rest (the last token always, for its logits): the next-token logits."""
        same = reusable_prefix(self.tokens[seq], tokens)
        self.keep(seq, same)
        return self.fill(seq, tokens[same:], cancelled)

    def adopt(self, seq: int, ctx: Any, held: Sequence[int], keep: int) -> int:
        """Copy what sequence 0 of another context on the same weights holds (`held`, its tokens:
        the chat's KV cache) into sequence `seq`, then keep its first `keep` tokens; how many it
        holds then (0 where the copy could not be made: the caller evaluates them instead).

        llama.cpp's llama_state_seq_get_data/set_data copy the keys and values as they are, so a
        chat's cached conversation is not evaluated again for its beams or samples."""
        import ctypes

        self.drop(seq)
        keep = min(keep, len(held))
        if keep <= 0 or len(held) > self.n_ctx:
            return 0
        size = self._lib.llama_state_seq_get_size(ctx, 0)
        buffer = (ctypes.c_uint8 * size)()
        got = self._lib.llama_state_seq_get_data(ctx, buffer, size, 0)
        if not got or not self._lib.llama_state_seq_set_data(self._ctx, buffer, got, seq):
            self._lib.llama_memory_seq_rm(self._memory, seq, -1, -1)
            return 0
        self.tokens[seq] = list(held)
        if not self._lib.llama_memory_seq_rm(self._memory, seq, keep, -1):  # a recurrent model's state
            self._lib.llama_memory_seq_rm(self._memory, seq, -1, -1)
            self.tokens[seq] = []
            return 0
        del self.tokens[seq][keep:]
        return keep

    def fork(self, src: int, dsts: Iterable[int]) -> None:
        """Make each of `dsts` hold what `src` holds (its cells shared, nothing evaluated again)."""
        for dst in dsts:
            if dst == src:
                continue
            self._lib.llama_memory_seq_rm(self._memory, dst, -1, -1)
            self._lib.llama_memory_seq_cp(self._memory, src, dst, -1, -1)
            self.tokens[dst] = list(self.tokens[src])

    def keep(self, seq: int, n: int) -> None:
        """Keep only the first `n` tokens of sequence `seq`."""
        n = max(0, min(n, len(self.tokens[seq])))
        self._lib.llama_memory_seq_rm(self._memory, seq, n, -1)
        del self.tokens[seq][n:]

    def drop(self, seq: int) -> None:
        """Empty sequence `seq` (its cells return to the cache)."""
        self.keep(seq, 0)

    def step(self, next_tokens: Mapping[int, int]) -> dict[int, NDArray[np.float32]]:
        """One token for each sequence named, decoded in one batch: the next-token logits after each
        (copies, by sequence). At most n_batch sequences a step."""
        order = list(next_tokens.items())
        if not order:
            return {}
        if len(order) > self.n_batch or any(len(self.tokens[seq]) >= self.n_ctx for seq, _ in order):
            raise SequencesError(f"a step past the context's {self.n_ctx} tokens or {self.n_batch} sequences")
        self._decode([(seq, token, True) for seq, token in order])
        return {seq: self._row(i) for i, (seq, _) in enumerate(order)}

    def evaluate(self, parts: Mapping[int, Sequence[int]]) -> dict[int, NDArray[np.float32]]:
        """Tokens of several sequences in one batch (a server's slots: one token of each reply and a
        block of a new prompt): the next-token logits after each sequence's last token (copies). At
        most n_batch tokens in all."""
        items = [(seq, t, i == len(tokens) - 1) for seq, tokens in parts.items() for i, t in enumerate(tokens)]
        if not items:
            return {}
        if len(items) > self.n_batch or any(len(self.tokens[s]) + len(t) > self.n_ctx for s, t in parts.items()):
            raise SequencesError(f"a batch past the context's {self.n_ctx} tokens or {self.n_batch} tokens")
        self._decode(items)
        return {items[i][0]: self._row(i) for i in range(len(items)) if items[i][2]}

    def close(self) -> None:
        """Return the context's memory (the model's weights stay with their owner)."""
        if self._batch is not None:
            self._lib.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx:
            self._lib.llama_free(self._ctx)
            self._ctx = None

    def __enter__(self) -> Sequences:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _decode(self, items: list[tuple[int, int, bool]]) -> None:
        """Decode (sequence, token, wants logits) in one batch, each token at its sequence's next position."""
        batch = self._batch
        batch.n_tokens = len(items)
        for i, (seq, token, wants) in enumerate(items):
            batch.token[i] = token
            batch.pos[i] = len(self.tokens[seq])
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = wants
            self.tokens[seq].append(token)
        code = self._lib.llama_decode(self._ctx, batch)
        if code != 0:
            for seq, _, _ in reversed(items):
                self.tokens[seq].pop()
            raise SequencesError(
                f"llama_decode returned {code}"
                + (" (the cache is full: fewer sequences or tokens)" if code == 1 else "")
            )

    def _last_logits(self) -> NDArray[np.float32]:
        return self._row(-1)

    def _row(self, i: int) -> NDArray[np.float32]:
        """A copy of the logits after the batch's i-th token (-1: the last that asked for them)."""
        ptr = self._lib.llama_get_logits_ith(self._ctx, i)
        return self._views.of(ptr).copy()
