"""Several replies at once on one loaded model: llama-server's slots, decoded together.

`Slots` holds `n` sequences of one `Sequences` context (app/engine/sequences.py) on the engine's
weights, each of at most num_ctx tokens (the cache holds n x num_ctx, as Ollama's
OLLAMA_NUM_PARALLEL does). A request takes the free slot whose tokens share the longest prefix
with its prompt (a chat client resending its conversation finds its own; ties: the one used least
recently), keeps that prefix and evaluates the rest. Each reply runs as it does alone (generation.py's
`Reply`, its own chain, random generator, grammar and decoder) on a `SlotContext`, which looks to it
like the chat's KVContext; only `append` differs: it hands the tokens to the batch and waits for
their logits. Whichever request finds every busy slot waiting (or has waited GATHER_S) decodes all
that wait in one `llama_decode`, one token of each reply and a block of any prompt, and wakes them:
no thread in between, so one request alone decodes as directly as on the chat's own context.

A reply that ends, is cancelled or whose client goes away leaves its slot at once (its tokens stay
cached for the next request that shares them). What needs the engine's own context (speculative
decoding, beams and MBR, the inspector, perplexity) runs `exclusive`ly: it waits until the slots'
replies have ended, and new ones wait for it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from andon.app.engine.context import PrefillCancelled, common_prefix, reusable_prefix
from andon.app.engine.sequences import Sequences
from numpy.typing import NDArray

if TYPE_CHECKING:
    from llama_cpp import Llama

GATHER_S = 0.02  # how long a ready reply waits for the others' next tokens before decoding without them
POLL_S = 0.05  # how often a waiting request asks whether its client is still there

Cancelled = Callable[[], bool]


class SlotWaitCancelled(Exception):
    """The client went away while its request waited for a slot."""


@dataclass
class _Slot:
    seq: int
    busy: bool = False
    used: float = 0.0  # time.monotonic() of its last release


@dataclass
class _Batch:
    """What waits to be decoded: tokens by sequence, and the logits (or error) of those decoded."""

    pending: dict[int, list[int]] = field(default_factory=dict)
    done: dict[int, NDArray[np.float32] | BaseException] = field(default_factory=dict)
    decoding: bool = False


class Slots:
    """`n` slots on `llm`'s weights, each of at most `n_ctx` tokens; `take` one, reply on its context."""

    def __init__(self, llm: Llama, n: int, n_ctx: int) -> None:
        self.seqs = Sequences(llm, n, n * n_ctx)
        self.n_ctx = n_ctx
        self._slots = [_Slot(i) for i in range(n)]
        self._cond = threading.Condition(threading.Lock())
        self._batch = _Batch()
        self._queue: list[object] = []  # requests waiting for a slot, first come first served
        self._readers = 0  # slots' replies running; `exclusive` waits for none
        self._writer = False  # an exclusive task runs or waits: no new reply starts meanwhile

    # --- taking and leaving a slot ------------------------------------------------------------------

    @contextlib.contextmanager
    def take(self, prompt: Sequence[int], cancelled: Cancelled | None = None) -> Iterator[SlotContext]:
        """A free slot's context for one reply (the free one sharing the longest prefix with `prompt`);
        waits for one, first come first served (SlotWaitCancelled if the client leaves first)."""
        slot = self._acquire(prompt, cancelled)
        try:
            yield SlotContext(self, slot.seq)
        finally:
            with self._cond:
                self._batch.pending.pop(slot.seq, None)
                self._batch.done.pop(slot.seq, None)
                slot.busy, slot.used = False, time.monotonic()
                self._readers -= 1
                self._cond.notify_all()

    def _acquire(self, prompt: Sequence[int], cancelled: Cancelled | None) -> _Slot:
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            try:
                while self._writer or self._queue[0] is not ticket or all(s.busy for s in self._slots):
                    if cancelled is not None and cancelled():
                        raise SlotWaitCancelled
                    self._cond.wait(POLL_S)
                slot = max((s for s in self._slots if not s.busy),
                           key=lambda s: (common_prefix(self.seqs.tokens[s.seq], prompt), -s.used))  # fmt: skip
                slot.busy = True
                self._readers += 1
                return slot
            finally:
                self._queue.remove(ticket)
                self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Run alone: wait until no slot's reply runs (new ones wait meanwhile)."""
        with self._cond:
            while self._writer:
                self._cond.wait(POLL_S)
            self._writer = True
            while self._readers:
                self._cond.wait(POLL_S)
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()

    def busy(self) -> int:
        with self._cond:
            return self._readers

    # --- the shared batch ---------------------------------------------------------------------------

    def evaluate(self, seq: int, tokens: Sequence[int], cancelled: Cancelled | None = None) -> NDArray[np.float32]:
        """Evaluate `tokens` after what sequence `seq` holds, in the next batches; the logits after
        the last. PrefillCancelled-free: `cancelled` withdraws what is not yet decoded
        (SequencesCancelled-like: the sequence keeps what was)."""
        b = self._batch
        with self._cond:
            b.pending[seq] = list(tokens)
            deadline = time.monotonic() + GATHER_S
            while seq not in b.done:
                if not b.decoding and (self._all_waiting() or time.monotonic() >= deadline):
                    self._decode()
                    continue
                if cancelled is not None and cancelled():
                    b.pending.pop(seq, None)
                    raise _Withdrawn
                self._cond.wait(max(0.0, min(POLL_S, deadline - time.monotonic())) or POLL_S)
            result = b.done.pop(seq)
        if isinstance(result, BaseException):
            raise result
        return result

    def _all_waiting(self) -> bool:
        return len(self._batch.pending) >= self._readers

    def _decode(self) -> None:
        """Decode what waits (called with the lock held; released while llama.cpp works): one token
        of each reply first, then prompts' blocks up to n_batch tokens in all."""
        b = self._batch
        room = self.seqs.n_batch
        parts: dict[int, list[int]] = {}
        for seq, tokens in sorted(b.pending.items(), key=lambda kv: len(kv[1])):
            if room <= 0:
                break
            parts[seq] = tokens[:room]
            room -= len(parts[seq])
        b.decoding = True
        self._cond.release()
        try:
            try:
                out: dict[int, NDArray[np.float32] | BaseException] = dict(self.seqs.evaluate(parts))
            except Exception as exc:  # a full cache: each reply in the batch hears of it
                out = {seq: exc for seq in parts}
        finally:
            self._cond.acquire()
            b.decoding = False
        for seq, part in parts.items():
            rest = b.pending.get(seq, [])[len(part) :]
            if rest and not isinstance(out.get(seq), BaseException):
                b.pending[seq] = rest
            else:
                b.pending.pop(seq, None)
                b.done[seq] = out[seq]
        self._cond.notify_all()

    def close(self) -> None:
        self.seqs.close()


class _Withdrawn(Exception):
    """A request's tokens were taken back before they were decoded (its client went away)."""


class SlotContext:
    """One slot's sequence as a reply sees the chat's KVContext (context.py): the tokens it holds,
    the logits after them, `prefill` reusing the longest common prefix, `append` in the batch."""

    def __init__(self, slots: Slots, seq: int) -> None:
        self.slots, self.seq = slots, seq
        self.n_ctx = slots.n_ctx
        self._logits: NDArray[np.float32] = np.zeros(slots.seqs.n_vocab, np.float32)

    @property
    def n_tokens(self) -> int:
        return len(self.slots.seqs.tokens[self.seq])

    def ids(self) -> NDArray[np.intc]:
        return np.asarray(self.slots.seqs.tokens[self.seq], dtype=np.intc)

    def logits(self) -> NDArray[np.float32]:
        return self._logits

    def prefill(self, tokens: Sequence[int], cancelled: Cancelled | None = None) -> int:
        """Make the slot hold `tokens`, evaluating only what follows the prefix it already holds
        (the last token always, for its logits); how many were evaluated."""
        held = self.slots.seqs.tokens[self.seq]
        same = reusable_prefix(held, tokens)
        with self.slots._cond:  # no batch is decoding while cells leave the cache
            while self.slots._batch.decoding:
                self.slots._cond.wait(POLL_S)
            self.slots.seqs.keep(self.seq, same)
        try:
            self._logits = self.slots.evaluate(self.seq, tokens[same:], cancelled)
        except _Withdrawn:
            raise PrefillCancelled(len(tokens), self.n_tokens - same) from None
        return len(tokens) - same

    def append(self, tokens: Sequence[int]) -> None:
        self._logits = self.slots.evaluate(self.seq, tokens)

    def truncate(self, n: int) -> bool:
        with self.slots._cond:
            while self.slots._batch.decoding:
                self.slots._cond.wait(POLL_S)
            self.slots.seqs.keep(self.seq, n)
        return True
