"""Minimum Bayes risk (MBR) decoding: draw mbr_samples replies with the preset's own chain, keep the
one with the highest mean utility (chrF or BLEU, sacrebleu) against the others. The same draw gives
`Engine.stream(samples=N)` its N replies (a sweep's cell): every sample, in seed order, unscored.

The samples are sequences of one `Sequences` context: the prompt is evaluated once and shared, and
one batch a step decodes the last token of every sample still going. Sample i has a chain and a
draw of its own, seeded seed + i (each seed is reported with its candidate, so a sample can be
drawn again alone with that seed); a grammar constrains each sample as it does a reply.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from andon.app.engine.beams import open_sequences, reply_text, room
from andon.app.engine.generation import (
    CancelCheck,
    Delta,
    Done,
    Event,
    FinishReason,
    PromptStats,
    TokenConstraint,
    Usage,
    sample,
)
from andon.app.engine.sequences import Sequences, SequencesCancelled
from andon.presets.parameters import Parameters
from andon.samplers import Chain, build_chain
from numpy.typing import NDArray

if TYPE_CHECKING:
    from andon.app.engine.engine import Engine


def utility(name: str) -> Callable[[str, str], float]:
    """sacrebleu's sentence-level chrF or BLEU of a hypothesis against one reference (0-100)."""
    from sacrebleu.metrics import BLEU, CHRF

    metric = CHRF() if name == "chrf" else BLEU(effective_order=True)
    return lambda hyp, ref: float(metric.sentence_score(hyp, [ref]).score)


def mbr_scores(texts: Sequence[str], name: str) -> list[float]:
    """Each text's mean utility against every other text (the MBR expected utility)."""
    score = utility(name)
    n = len(texts)
    if n < 2:
        return [0.0] * n
    return [sum(score(texts[i], texts[j]) for j in range(n) if j != i) / (n - 1) for i in range(n)]


def draws_as_replies(params: Parameters) -> bool:
    """Whether samples drawn together write what replies one by one would (the draw runs the chain
    and a grammar, not banned_strings' rewinds, think_budget, beams or MBR's own choice)."""
    return not params.banned_strings and params.think_budget < 0 and params.num_beams <= 1 and params.mbr_samples <= 0


@dataclass
class Sample:
    """One sample being drawn: its sequence, seed, chain, draw, grammar and tokens."""

    seq: int
    seed: int
    chain: Chain
    rng: np.random.Generator
    constraint: TokenConstraint | None
    tokens: list[int] = field(default_factory=list)
    finish: str | None = None

    def choose(self, ids: Sequence[int], logits: NDArray[np.float32]) -> int | None:
        """The next token by the chain (one the grammar allows); None where the grammar allows none."""
        input_ids = np.asarray(ids, dtype=np.intc)
        if self.constraint is not None:
            logits = self.constraint.mask(np.array(logits, dtype=np.float32))
            if not np.isfinite(logits).any():
                return None
        token = sample(self.chain.candidates_after(input_ids, logits), self.rng)
        if self.constraint is not None and not np.isfinite(logits[token]):
            token = int(np.argmax(logits))
        return token


class MBRDraw:
    """`count` replies of one prompt (default mbr_samples), drawn together; `steps()` yields after
    each batch."""

    def __init__(self, engine: Engine, sequences: Sequences, prompt: Sequence[int], params: Parameters,
                 seed: int, max_tokens: int, cancelled: CancelCheck | None = None,
                 count: int | None = None) -> None:  # fmt: skip
        self.engine, self.seqs, self.prompt = engine, sequences, list(prompt)
        self.max_tokens, self.cancelled = max_tokens, cancelled
        vocab = engine.vocab_for(params)
        self.samples = [
            Sample(
                i,
                seed + i,
                build_chain(params.sampling(), vocab=vocab, n_vocab=engine.n_vocab, seed=seed + i),
                np.random.default_rng([seed + i, 1]),
                engine.constraint_for(params),
            )
            for i in range(params.mbr_samples if count is None else count)
        ]
        self.was_cancelled = False

    def steps(self) -> Iterator[int]:
        """Draw every sample to its end; after each step, the most tokens a sample holds."""
        try:
            first = self.seqs.prefill(0, self.prompt, self.cancelled)
        except SequencesCancelled:  # stopped before the first step: no sample has a token
            self.was_cancelled = True
            return
        self.seqs.fork(0, [s.seq for s in self.samples])
        logits = {s.seq: first for s in self.samples}
        for length in range(1, self.max_tokens + 1):
            if self.cancelled is not None and self.cancelled():
                self.was_cancelled = True
                return
            going = {s.seq: t for s in self.samples if s.finish is None and (t := self._take(s, logits[s.seq]))}
            if not going or length == self.max_tokens:
                break
            logits = self.seqs.step(going)
            yield length
        for s in self.samples:
            s.finish = s.finish or "length"

    def _take(self, s: Sample, logits: NDArray[np.float32]) -> int | None:
        """Choose sample `s`'s next token; the token to decode, or None where it ended."""
        token = s.choose([*self.prompt, *s.tokens], logits)
        if token is None:
            s.finish = "grammar"
            return None
        if self.engine.is_end_of_turn(token):
            s.finish = "stop"
            return None
        s.tokens.append(token)
        if s.constraint is not None:
            s.constraint.accept(token)
        return token


def _drawn(engine: Engine, prompt: Sequence[int], params: Parameters, seed: int, count: int,
           cancelled: CancelCheck | None) -> Generator[Event, None, tuple[MBRDraw, float]]:  # fmt: skip
    """Draw `count` samples in one Sequences context, an empty Delta per step (progress); returns
    the draw and when its first step ended (0.0: none did)."""
    limit = room(engine, params, prompt)
    with open_sequences(engine, count, prompt, limit) as seqs:
        draw = MBRDraw(engine, seqs, prompt, params, seed, limit, cancelled, count)
        first = 0.0
        for length in draw.steps():
            first = first or time.perf_counter()
            yield Delta("", length, time.perf_counter() - first)
    return draw, first


def mbr_events(engine: Engine, prompt: Sequence[int], params: Parameters, seed: int, stats: PromptStats,
               cancelled: CancelCheck | None, started: float) -> Iterator[Event]:  # fmt: skip
    """A reply by MBR: an empty Delta per step (progress), the chosen reply, then Done with every
    sample (its text, seed and mean utility; best first) as candidates."""
    draw, first = yield from _drawn(engine, prompt, params, seed, params.mbr_samples, cancelled)
    rows = _rows(engine, draw.samples, params)
    scores = mbr_scores([r["text"] for r in rows], params.mbr_utility)
    candidates = sorted(({**r, "score": s} for r, s in zip(rows, scores, strict=True)), key=lambda r: -r["score"])
    yield from _ending(candidates, draw, stats, started, first)


def sample_events(engine: Engine, prompt: Sequence[int], params: Parameters, seed: int, stats: PromptStats,
                  cancelled: CancelCheck | None, started: float, count: int) -> Iterator[Event]:  # fmt: skip
    """`count` replies of one prompt drawn together (Engine.stream's `samples`), sample i seeded
    seed + i: an empty Delta per step (progress), sample 0's text, then Done with every sample (text,
    seed, tokens, finish_reason) in seed order as candidates. Stopped: "cancelled", the samples as
    far as they got."""
    draw, first = yield from _drawn(engine, prompt, params, seed, count, cancelled)
    yield from _ending(_rows(engine, draw.samples, params), draw, stats, started, first)


def _ending(candidates: list[dict[str, Any]], draw: MBRDraw, stats: PromptStats,
            started: float, first: float) -> Iterator[Event]:  # fmt: skip
    """The first candidate's text as a Delta, then Done with the candidates and every sample's
    tokens counted in the rate."""
    best = candidates[0]
    finish: FinishReason = "cancelled" if draw.was_cancelled else best["finish_reason"]
    if best["text"]:
        yield Delta(best["text"], len(best["tokens"]), time.perf_counter() - (first or started))
    n, end = sum(len(c["tokens"]) for c in candidates), time.perf_counter()
    usage = Usage(prompt_tokens=stats.tokens, prompt_eval_tokens=stats.evaluated, completion_tokens=len(best["tokens"]),
                  ttft_s=(first or end) - started, total_s=end - started,
                  tokens_per_second=n / (end - first) if first and end > first else 0.0)  # fmt: skip
    yield Done(best["text"], finish, usage, best["seed"], stats.dropped, list(best["tokens"]), candidates=candidates)


def _rows(engine: Engine, samples: Sequence[Sample], params: Parameters) -> list[dict[str, Any]]:
    """Every sample's text (cut at a stop string), seed, tokens and finish reason, in seed order."""
    rows = []
    for s in samples:
        text, hit = reply_text(engine, s.tokens, params.stop)
        finish = "stop" if hit else (s.finish or "length")
        rows.append({"text": text, "seed": s.seed, "tokens": list(s.tokens), "finish_reason": finish})
    return rows
