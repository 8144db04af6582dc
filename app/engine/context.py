"""llama.cpp's context as andon uses it: the tokens evaluated so far, their keys and values in the
KV cache, and the logits after them. Not thread-safe: one reply or inspection at a time."""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from llama_cpp import Llama

PREFILL_BLOCK = 32  # prompt tokens are evaluated in blocks aligned to this (see KVContext.prefill)
CONTINUE_BLOCK = 128  # the tokens a conversation adds after a reply: a block each, between cancel checks


class PrefillCancelled(Exception):
    """The prompt's evaluation was asked to stop; the cache holds the blocks evaluated so far."""

    def __init__(self, tokens: int, evaluated: int) -> None:
        super().__init__(f"stopped after {evaluated} of {tokens} prompt tokens")
        self.tokens, self.evaluated = tokens, evaluated


class KVContext:
    def __init__(self, llm: Llama) -> None:
        import llama_cpp

        self._llama_cpp = llama_cpp
        self.llm = llm
        self.n_ctx: int = llm.n_ctx()
        self.n_vocab: int = llm.n_vocab()
        self.n_batch: int = llm.n_batch
        self._canonical = 0  # cached tokens evaluated in aligned blocks (a prompt, not a reply)
        self._batch: Any = None  # a llama_batch asking for every position's logits, made on first use
        self._views = LogitViews(self.n_vocab)

    @property
    def n_tokens(self) -> int:
        """How many tokens the cache holds."""
        return self.llm.n_tokens

    def ids(self) -> NDArray[np.intc]:
        """The tokens the cache holds, in order (a view; do not keep it)."""
        return self.llm.input_ids[: self.llm.n_tokens]

    def logits(self) -> NDArray[np.float32]:
        """The next-token logits after the last evaluated token (a view; do not keep it)."""
        return self._views.of(self._llama_cpp.llama_get_logits_ith(self.llm.ctx, -1))

    def prefill(self, tokens: Sequence[int], cancelled: Callable[[], bool] | None = None) -> int:
        """Make the cache hold `tokens`, reusing the cached prefix; returns how many were evaluated.

        llama.cpp's logits depend slightly on how a prompt is cut into batches, so a prompt is
        always evaluated in blocks that start at multiples of PREFILL_BLOCK: asked again (or in a
        new chat after another), the same prompt is computed the same way and greedy decoding
        repeats itself exactly. A conversation that continues past the cached prompt (the reply
        and a new message) evaluates only the tokens it adds, CONTINUE_BLOCK tokens at a time.

        `cancelled` is asked before each block: once true, PrefillCancelled, and the cache holds
        the blocks evaluated so far (a later prefill of the same prompt goes on from there).
        """
        same = reusable_prefix(self.ids(), tokens)
        aligned = same <= self._canonical
        block = max(1, min(PREFILL_BLOCK if aligned else CONTINUE_BLOCK, self.n_batch))
        if aligned:
            same = same // block * block
            self._canonical = same
        self.llm.n_tokens = same
        for start in range(same, len(tokens), block):
            if cancelled is not None and cancelled():
                raise PrefillCancelled(len(tokens), start - same)
            self.llm.eval(list(tokens[start : start + block]))
            if aligned:
                self._canonical = self.n_tokens
        return len(tokens) - same

    def warm_up(self) -> None:
        """One evaluation before the first prompt, then an empty cache: as llama.cpp's own programs
        warm up after loading (common_init_from_params), so the first pass's cost (the weights read
        in from the file, the compute set up) is the load's, not the user's first reply's."""
        bos = self.llm.token_bos()
        self.append([bos if bos >= 0 else 0])
        self.truncate(0)

    def append(self, tokens: Sequence[int]) -> None:
        """Evaluate `tokens` after the cached ones; `logits()` is then the next token's."""
        self.llm.eval(list(tokens))

    def append_all_logits(self, tokens: Sequence[int], threads: int | None = None) -> NDArray[np.float32]:
        """Evaluate `tokens` after the cached ones in one forward pass per batch, and return the
        next-token logits after each of them (a copy, one row per token); on `threads` threads
        instead of the context's batch threads where given (the logits are the same).

        This is how several drafted tokens are verified at once (speculative decoding): row i is
        the distribution the token after tokens[i] is chosen from; `truncate` then removes the
        positions of the drafts that were rejected.
        """
        self.truncate(self.n_tokens)  # anything past n_tokens is stale
        out = np.empty((len(tokens), self.n_vocab), np.float32)
        ctx, lib = self.llm.ctx, self._llama_cpp
        single, batch = lib.llama_n_threads(ctx), lib.llama_n_threads_batch(ctx)
        if threads:
            lib.llama_set_n_threads(ctx, single, threads)
        try:
            for start in range(0, len(tokens), self.n_batch):
                chunk = list(tokens[start : start + self.n_batch])
                self._decode_every_position(chunk)
                ptr = lib.llama_get_logits(ctx)
                out[start : start + len(chunk)] = np.ctypeslib.as_array(ptr, shape=(len(chunk), self.n_vocab))
        finally:
            if threads:
                lib.llama_set_n_threads(ctx, single, batch)
        return out

    def thread_counts(self) -> tuple[int, ...]:
        """The thread counts a batch may run on: the context's batch threads, and its single-token
        threads where fewer (on a machine busy with other work, fewer threads may be faster)."""
        single, batch = (
            self._llama_cpp.llama_n_threads(self.llm.ctx),
            self._llama_cpp.llama_n_threads_batch(self.llm.ctx),
        )
        return (batch, single) if single < batch else (batch,)

    def truncate(self, n: int) -> bool:
        """Keep only the first `n` cached tokens: later positions leave llama.cpp's KV cache.

        False when the model's memory cannot remove positions (recurrent models): the cache is
        then emptied, and the next prefill evaluates the whole prompt again.
        """
        memory = self._llama_cpp.llama_get_memory(self.llm.ctx)
        n = max(0, min(n, self.n_tokens))
        ok = bool(self._llama_cpp.llama_memory_seq_rm(memory, 0, n, -1))
        if not ok:
            self._llama_cpp.llama_memory_clear(memory, True)
            n = 0
        self.llm.n_tokens = n
        self._canonical = min(self._canonical, n)
        return ok

    def close(self) -> None:
        if self._batch is not None:
            self._llama_cpp.llama_batch_free(self._batch)
            self._batch = None

    def _decode_every_position(self, chunk: list[int]) -> None:
        if self._batch is None:
            self._batch = self._llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        batch, n_past = self._batch, self.n_tokens
        batch.n_tokens = len(chunk)
        for i, token in enumerate(chunk):
            batch.token[i] = token
            batch.pos[i] = n_past + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = True
        code = self._llama_cpp.llama_decode(self.llm.ctx, batch)
        if code != 0:
            raise RuntimeError(f"llama_decode returned {code}")
        self.llm.input_ids[n_past : n_past + len(chunk)] = chunk
        self.llm.n_tokens = n_past + len(chunk)


class LogitViews:
    """numpy views of llama.cpp's logit rows, by address: making a view (np.ctypeslib.as_array)
    costs tens of microseconds a token; llama.cpp keeps its output buffer where it is between
    evaluations, so the view of an address is made once."""

    def __init__(self, n_vocab: int) -> None:
        self.n_vocab = n_vocab
        self._views: dict[int, NDArray[np.float32]] = {}

    def of(self, ptr: Any) -> NDArray[np.float32]:
        address = ctypes.cast(ptr, ctypes.c_void_p).value or 0
        view = self._views.get(address)
        if view is None:
            if len(self._views) >= 64:  # the buffer moved (more outputs asked for): forget old ones
                self._views.clear()
            view = self._views[address] = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))
        return view


Tokens = Sequence[int] | NDArray[np.intc]


def common_prefix(a: Tokens, b: Tokens) -> int:
    """How many tokens `a` and `b` share from the start."""
    n = min(len(a), len(b))
    if not n:
        return 0
    diff = np.flatnonzero(np.asarray(a[:n]) != np.asarray(b[:n]))
    return int(diff[0]) if diff.size else n


def reusable_prefix(held: Tokens, tokens: Tokens) -> int:
    """How many of a cache's `held` tokens a prefill of `tokens` keeps: their common prefix, but
    never the last of `tokens` (it is evaluated again for the logits after it)."""
    return min(common_prefix(held, tokens), len(tokens) - 1)
