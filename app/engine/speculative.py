"""Speculative decoding: several tokens per forward pass, the chain's distribution unchanged.

A drafter guesses the next tokens: `NgramDrafter` copies what followed the latest earlier occurrence
of the last few tokens (prompt lookup, llama.cpp's ngram-simple idea), `ModelDrafter` asks a small
model with the same vocabulary, greedily, while its top probability stays at draft_p_min or more
(llama.cpp's draft-simple). The model then evaluates [last token, d1..dk] in one batch with logits
for every position, and `Speculation.step` walks the positions in order.

The acceptance rule. Both drafters are deterministic (a draft is a function of the context), so the
draft distribution q is a point mass on the drafted token d. Speculative sampling's rule (accept d with
probability min(1, p(d)/q(d)) = p(d), else draw from max(0, p - q) normalised = p without d) is then
exactly: draw t from p as plain decoding does, keep d if t == d, else t is the replacement and the
step ends. p is the chain's distribution at that position, computed by `Reply.choose` from the
context with every token taken before it (penalties, DRY, a grammar, mirostat's mu all see them), so
every stateful stage and the sampling generator advance once per token taken, as without a draft.
Temperature 0 keeps d iff it is the chain's argmax. If every draft is kept, the last row gives one
more token. The positions after the last token taken leave llama.cpp's KV cache (`truncate`).

With flash attention on (loading.py), a token's logits are the same alone or in a batch, so a seed
gives the same reply with or without a draft; without it they would agree only in distribution.

Cost: draft_costs.py measures what a batch costs and how often drafts are right; a gated drafter's
draft (n-gram) is verified only as far as it is expected to pay.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from andon.app.engine.context import KVContext
from andon.app.engine.draft_cache import DraftCache
from andon.app.engine.draft_costs import MATCH_BUCKETS, Acceptance, CostModel
from andon.app.engine.loading import ModelLoadError, ModelOptions, load_llama
from andon.app.engine.tokens import TokenTexts
from andon.presets.parameters import Parameters
from numpy.typing import NDArray

if TYPE_CHECKING:
    from andon.app.engine.generation import Reply
    from andon.app.models.sources import ModelEntry

NGRAM_SIZES = (4, 3, 2, 1)  # n-gram lengths looked up, longest first


class DraftModelError(ModelLoadError, ValueError):
    """The draft model cannot be used (not found, not a GGUF, not loadable, another vocabulary): one
    line. A ValueError too: where a value is set (`/set parameter`, the panel) it is a refused value."""


@dataclass(frozen=True)
class Draft:
    tokens: list[int]
    key: int = 0  # which acceptance estimate it updates: a bucket of match length; 0 for a draft model


NO_DRAFT = Draft([])


def lookup(tokens: NDArray[np.intc], limit: int, sizes: tuple[int, ...] = NGRAM_SIZES) -> Draft:
    """Prompt lookup: the tokens that followed the latest earlier occurrence of the last n tokens,
    for the longest n in `sizes` that occurs, at most `limit` of them."""
    size = tokens.shape[0]
    if limit <= 0:
        return NO_DRAFT
    for n in sizes:
        starts = size - n  # an occurrence starting at j < starts has a token after it
        if starts <= 0:
            continue
        hit = tokens[:starts] == tokens[size - n]
        for i in range(1, n):
            hit &= tokens[i : starts + i] == tokens[size - n + i]
        found = np.flatnonzero(hit)
        if found.size:
            start = int(found[-1])
            return Draft(tokens[start + n : start + n + limit].tolist(), _bucket(n + _agreeing(tokens, start, starts)))
    return NO_DRAFT


def _agreeing(tokens: NDArray[np.intc], a: int, b: int, most: int = MATCH_BUCKETS[-1]) -> int:
    """How many tokens before positions a and b (a < b) are the same, up to `most`."""
    n = min(a, most)
    differ = np.flatnonzero(tokens[a - n : a][::-1] != tokens[b - n : b][::-1])
    return int(differ[0]) if differ.size else n


def _bucket(length: int) -> int:
    """The acceptance estimate a match of this length updates: the largest bucket <= length."""
    return max(b for b in MATCH_BUCKETS if b <= length)


class NgramDrafter:
    """Drafts copied from earlier text of the context: no second model."""

    gated = True  # verified only where worth it (see CostModel)

    def draft(self, history: NDArray[np.intc], limit: int) -> Draft:
        return lookup(history, limit)

    def close(self) -> None:
        pass


class ModelDrafter:
    """A small model with the target's vocabulary drafts greedily, in its own KV-cached context."""

    gated = False  # a draft model drafts where it is confident (draft_p_min), as llama.cpp's

    def __init__(self, name: str, options: ModelOptions) -> None:
        self.name = name
        self.llm = load_llama(options)
        self.texts = TokenTexts(self.llm)
        self.context = KVContext(self.llm)
        self.p_min = 0.75

    def check_vocabulary(self, target: TokenTexts, model_name: str) -> None:
        """DraftModelError unless every token id means the same text in both models."""
        mine, theirs = self.texts, target
        if mine.n_vocab != theirs.n_vocab:
            raise DraftModelError(
                f"draft model {self.name}: its vocabulary has {mine.n_vocab} tokens and {model_name}'s has "
                f"{theirs.n_vocab}; a draft model must have the same vocabulary as the model"
            )
        for token in range(mine.n_vocab):
            if mine.piece(token, special=True) != theirs.piece(token, special=True):
                raise DraftModelError(
                    f"draft model {self.name}: token {token} is {mine.token_text(token)!r} there and "
                    f"{theirs.token_text(token)!r} in {model_name}; a draft model must have the same "
                    "vocabulary as the model"
                )

    def draft(self, history: NDArray[np.intc], limit: int) -> Draft:
        if limit <= 0 or history.shape[0] > self.context.n_ctx - limit:
            return NO_DRAFT
        self.context.prefill(history.tolist())
        out: list[int] = []
        while len(out) < limit:
            logits = self.context.logits().astype(np.float64)
            token = int(np.argmax(logits))
            top = 1.0 / float(np.exp(logits - logits[token]).sum())
            if top < self.p_min:
                break
            out.append(token)
            if len(out) == limit or self.texts.is_end_of_turn(token):
                break
            self.context.append([token])
        return Draft(out, 0)

    def close(self) -> None:
        self.context.close()
        self.llm.close()


Drafter = NgramDrafter | ModelDrafter


class Speculation:
    """Speculative decoding for one reply: `step` replaces Reply.decode_step's single token."""

    def __init__(
        self, drafter: Drafter, params: Parameters, costs: CostModel, acceptance: Acceptance | None = None
    ) -> None:
        self.drafter, self.costs = drafter, costs
        self.draft_max: int = params.draft_max
        self.draft_min: int = params.draft_min
        self.length = max(1, min(8, self.draft_max))  # the draft model's current draft length
        self.acceptance = acceptance if acceptance is not None else Acceptance()
        self.drafted = 0  # drafted tokens verified
        self.accepted = 0  # of them, kept in the reply

    def step(self, reply: Reply, pending: int | None) -> Iterator[int]:
        """The tokens of one forward pass, each yielded before the next is chosen (so `take`, a
        grammar's accept and the reply's end come between). On return the cache holds the reply up
        to, not including, the last token yielded."""
        context = reply.context
        if pending is None:  # the first token: the prompt's logits are there
            yield reply.choose(context.ids(), context.logits())
            return
        history = np.append(context.ids(), np.intc(pending)).astype(np.intc, copy=False)
        draft = self.drafter.draft(history, self._room(reply))
        if draft.tokens and self.drafter.gated and self.costs.due():
            self._calibrate(reply, pending)
        k = self._verify_length(draft)
        if k == 0:
            yield self._plain(reply, pending, draft)
        else:
            yield from self._verify(reply, pending, Draft(draft.tokens[:k], draft.key))

    def _room(self, reply: Reply) -> int:
        """The most drafts this step may verify: draft_max, num_predict, and the context, whose
        last position stays free (the reply ends "length" where the cache is full, as without)."""
        room = min(self.draft_max, reply.context.n_ctx - reply.context.n_tokens - 2)
        if reply.params.num_predict > 0:
            room = min(room, reply.params.num_predict - len(reply.tokens) - 1)
        if not self.drafter.gated:
            room = min(room, self.length)
        return max(0, room)

    def _calibrate(self, reply: Reply, pending: int) -> None:
        """Measure this machine's batch costs (CostModel.due says when), where the context has room."""
        context = reply.context
        most = max(3, min(self.draft_max + 1, MATCH_BUCKETS[-1] // 2 + 1))
        if most <= min(context.n_tokens, context.n_ctx - context.n_tokens - 1):
            self.costs.calibrate(context, pending, most)

    def _verify_length(self, draft: Draft) -> int:
        n = len(draft.tokens)
        if n == 0 or n < self.draft_min:
            return 0
        if not self.drafter.gated:
            return n
        if self.costs.single_s is None:
            return 0  # one plain pass first: batches are measured against it
        rate = self.acceptance.rate(draft.key)
        k = self.costs.best_length(n, rate)
        if k == 0:
            self.costs.decline(rate)
        return k if k >= self.draft_min else 0

    def _plain(self, reply: Reply, pending: int, draft: Draft) -> int:
        started = time.perf_counter()
        reply.context.append([pending])
        logits = reply.context.logits()
        self.costs.single(time.perf_counter() - started)
        token = reply.choose(reply.context.ids(), logits)
        if draft.tokens and self.drafter.gated:  # what the draft would have given, for free
            self.acceptance.observe(draft.key, token == draft.tokens[0])
        return token

    def _verify(self, reply: Reply, pending: int, draft: Draft) -> Iterator[int]:
        context, k = reply.context, len(draft.tokens)
        base = context.n_tokens
        started = time.perf_counter()
        rows = context.append_all_logits([pending, *draft.tokens], self.costs.threads)
        self.costs.batch(k + 1, time.perf_counter() - started)
        self.drafted += k
        ids = context.ids()
        kept = base + 1  # the cache the reply has: through the last token before the one taken
        right = 0
        try:
            for j in range(k + 1):
                if j and reply.cancelled is not None and reply.cancelled():
                    return  # asked between tokens, as plain decoding asks
                token = reply.choose(ids[: base + j + 1], rows[j])
                matched = j < k and token == draft.tokens[j]
                if j < k and self.drafter.gated:
                    self.acceptance.observe(draft.key, matched)
                go_on = matched and not reply.texts.is_end_of_turn(token)
                kept = base + j + 1
                if not go_on and context.n_tokens > kept:
                    context.truncate(kept)  # the rejected drafts leave the KV cache
                right += matched
                self.accepted += matched
                yield token
                if not go_on:
                    return
        finally:
            if context.n_tokens > kept:  # the reply ended inside the accepted run
                context.truncate(kept)
            self._adapt(right, k)

    def _adapt(self, right: int, drafted: int) -> None:
        """The draft model's length: doubled after a fully kept draft, cut to what was kept + 1."""
        if right == drafted:
            self.length = min(max(1, self.draft_max), self.length * 2)
        else:
            self.length = max(1, right + 1)


class Speculator:
    """Speculative decoding for an engine: builds each reply's `Speculation` from `draft`, keeps the
    draft model loaded between replies and the cost measurements of this machine."""

    def __init__(self, options: ModelOptions, texts: TokenTexts, model_name: str, n_ctx: int) -> None:
        self.options, self.texts, self.model_name, self.n_ctx = options, texts, model_name, n_ctx
        self.costs = CostModel()
        self.acceptance = Acceptance()  # of n-gram drafts, per match length: kept from reply to reply
        self._cache: DraftCache | None = None  # what earlier processes measured (read at the first draft)
        self._model: tuple[Path, ModelDrafter] | None = None

    def remember(self) -> None:
        """Keep what this engine measured for the next process (after a reply with a draft)."""
        if self._cache is not None:
            self._cache.save(self.costs, self.acceptance)

    def _recall(self) -> None:
        """The costs and acceptance an earlier process measured on this model and machine, once."""
        if self._cache is None:
            self._cache = DraftCache.for_model(self.options)
            if (kept := self._cache.load()) is not None:
                self.costs, self.acceptance = kept

    def for_reply(self, params: Parameters) -> Speculation | None:
        """None when `draft` is off; DraftModelError (one line) for a draft model that cannot be used."""
        spec: str = params.draft.strip()
        if not spec:
            return None
        if spec == "ngram":
            self._recall()
            return Speculation(NgramDrafter(), params, self.costs, self.acceptance)
        drafter = self.model_drafter(spec)
        drafter.p_min = params.draft_p_min
        return Speculation(drafter, params, self.costs)

    def model_drafter(self, spec: str) -> ModelDrafter:
        path = draft_model_path(spec)
        if self._model is not None and self._model[0] == path:
            return self._model[1]
        self.close()
        options = replace(self.options, path=path, num_ctx=self.n_ctx, rpc=())  # the draft model runs here
        try:
            drafter = ModelDrafter(spec, options)
        except ModelLoadError as exc:
            raise DraftModelError(f"draft model {spec}: {exc}") from None
        try:
            drafter.check_vocabulary(self.texts, self.model_name)
        except DraftModelError:
            drafter.close()
            raise
        self._model = (path, drafter)
        return drafter

    def close(self) -> None:
        if self._model is not None:
            self._model[1].close()
            self._model = None


def draft_model_path(spec: str) -> Path:
    """The file a `draft` model name or path means (as --model takes it); DraftModelError if none."""
    return _draft_entry(spec).load_path()


def check_draft(params: Parameters) -> None:
    """Refuse a draft model that cannot be found, or a file that is not a GGUF model, where `draft`
    is set and before any model loads (DraftModelError: one line, with the closest names)."""
    from andon.app.models.files import ModelPathError, check_gguf

    spec: str = params.draft.strip()
    if spec and spec != "ngram":
        entry = _draft_entry(spec)
        if entry.prepare is None:  # a packaged model's file is made from its chunks when it loads
            try:
                check_gguf(entry.path)
            except ModelPathError as exc:
                raise DraftModelError(f"draft: {exc}") from None


def _draft_entry(spec: str) -> ModelEntry:
    from andon.app.models.catalog import find_model
    from andon.app.models.files import ModelPathError

    try:
        return find_model(spec)
    except ModelPathError as exc:
        raise DraftModelError(f"draft: {exc}") from None
