"""The working set a chain passes from stage to stage.

It mirrors llama.cpp's `llama_token_data_array`: the token ids still in play, their logits, and
whether they are sorted by logit (descending). Truncation shrinks the set. llama.cpp's
top-n-sigma instead marks tokens with -inf and leaves them in the array; here they are dropped
and counted in `masked`, so the few things that see them in llama.cpp (XTC's size checks,
dynatemp's maximum entropy, top_k's min(k, size)) see the same total without carrying them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

NEG_INF = np.float32(-np.inf)


@dataclass(slots=True)
class Candidates:
    ids: NDArray[np.intc]
    logits: NDArray[np.float32]
    sorted: bool = False
    # True while `ids` is still 0..n_vocab-1 in order, so an id is its own position.
    identity: bool = False
    # -inf entries llama.cpp would still hold after top-n-sigma (probability 0, never sampled)
    masked: int = 0
    # True while `logits` is the chain's own copy that nothing else holds (no observer has seen
    # it): a stage may then change it in place (`writable_logits`) instead of copying the vocabulary
    owned: bool = False

    @property
    def size(self) -> int:
        return int(self.ids.shape[0])

    @property
    def total(self) -> int:
        """The size llama.cpp's array would have: these candidates and the masked ones."""
        return self.size + self.masked

    def take(self, index: NDArray[np.intp] | slice, *, sorted: bool, masked: int = 0) -> Candidates:
        return Candidates(self.ids[index], self.logits[index], sorted, masked=masked)

    def with_logits(self, logits: NDArray[np.float32], *, sorted: bool | None = None) -> Candidates:
        """The same candidates with new logits (from `writable_logits`: owned as these were)."""
        owned = self.owned and logits is self.logits
        return Candidates(self.ids, logits, self.sorted if sorted is None else sorted, self.identity, self.masked,
                          owned)  # fmt: skip

    def writable_logits(self) -> NDArray[np.float32]:
        """The logits to change: these, where the chain owns them (see `owned`), else a copy.
        The candidates given up this way are not used again (a stage returns `with_logits`)."""
        return self.logits if self.owned else self.logits.copy()

    def positions(self, token_ids: NDArray[np.intc]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """Where each of `token_ids` sits in this set: (index into token_ids, position)."""
        if self.identity:
            inside = np.flatnonzero(token_ids < self.size)
            return inside, token_ids[inside].astype(np.intp)
        order = np.argsort(self.ids, kind="stable")
        found = np.searchsorted(self.ids, token_ids, sorter=order)
        found = np.minimum(found, self.size - 1)
        pos = order[found]
        hit = np.flatnonzero(self.ids[pos] == token_ids)
        return hit, pos[hit]

    def probs(self) -> NDArray[np.float32]:
        """Softmax of the logits in the current order (llama.cpp's softmax_impl)."""
        return softmax(self.logits)

    def sort(self) -> Candidates:
        """All candidates by descending logit (llama.cpp sorts in place the same way)."""
        if self.sorted:
            return self
        order = descending(self.logits, self.size)
        return self.take(order, sorted=True)

    def keep_top(self, n: int) -> Candidates:
        """The n best; past these candidates, llama.cpp's masked -inf entries fill the count."""
        n = min(n, self.total)
        if n <= self.size:
            return self.top(n)
        return self.sort().take(slice(None), sorted=True, masked=n - self.size)

    def top(self, k: int) -> Candidates:
        """The k highest-logit candidates, sorted."""
        if self.sorted:
            return self.take(slice(0, k), sorted=True)
        return self.take(descending(self.logits, k), sorted=True)


def softmax(logits: NDArray[np.float32]) -> NDArray[np.float32]:
    if logits.size == 0:
        return logits.copy()
    top = logits.max()
    if not np.isfinite(top):
        # Every candidate is -inf: nothing to prefer, so all are equally likely.
        return np.full(logits.shape, 1.0 / logits.size, np.float32)
    e = np.exp(logits - top)
    return e / sequential_sum(e)


def sequential_sum(x: NDArray[np.float32]) -> np.float32:
    """A float32 sum added left to right, as llama.cpp's loops add (numpy's sum is pairwise)."""
    return np.cumsum(x, dtype=np.float32)[-1] if x.size else np.float32(0)


def descending(logits: NDArray[np.float32], k: int) -> NDArray[np.intp]:
    """Indices of the k largest logits, largest first, without sorting the whole array.

    For a large array and a small k a strided sample gives a threshold that at least k logits
    reach; only those few are partitioned. The result is exact: the threshold is checked, and
    the plain partition is the fallback.
    """
    n = logits.shape[0]
    k = min(k, n)
    if k <= 0:
        return np.empty(0, np.intp)
    if k == n:
        return np.argsort(-logits, kind="stable")
    pool: NDArray[np.intp] | None = None
    if n >= 8192 and k <= n // 64:
        sample = logits[::32]
        rank = min(sample.shape[0] - 1, 2 * (k // 32) + 4)
        cut = np.partition(sample, sample.shape[0] - 1 - rank)[sample.shape[0] - 1 - rank]
        hits = np.flatnonzero(logits >= cut)
        if hits.shape[0] >= k:
            pool = hits
    if pool is None:
        part = np.argpartition(logits, n - k)[n - k :]
    else:
        sub = logits[pool]
        part = pool[np.argpartition(sub, sub.shape[0] - k)[sub.shape[0] - k :]]
    return part[np.argsort(-logits[part], kind="stable")]


def keep_at_least(keep: NDArray[np.bool_], logits: NDArray[np.float32], min_keep: int) -> NDArray[np.bool_]:
    """Widen a keep-mask to the min_keep highest logits when it keeps fewer."""
    if int(keep.sum()) >= min_keep or keep.shape[0] <= min_keep:
        return keep if keep.shape[0] > min_keep else np.ones_like(keep)
    widened = keep.copy()
    widened[descending(logits, min_keep)] = True
    return widened
