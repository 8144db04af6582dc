"""Beam search on llama.cpp's sequences, with Hugging Face `generate`'s meaning of num_beams,
length_penalty and early_stopping (transformers' BeamSearchScorer and BeamHypotheses).

Every live beam is one sequence of a `Sequences` context: the prompt is evaluated once and shared,
and one batch a step decodes the last token of every beam. Each step takes the 2 x num_beams best
(beam, token) pairs by the running sum of log-probabilities; an end of turn among the first
num_beams of them finishes a hypothesis (score = sum / length^length_penalty, the end counted in the
length), and so does a pair whose text reaches a stop string (its tokens kept, the text cut before
the stop); the first num_beams others are the next beams. A beam whose parent has several children
is forked (`llama_memory_seq_cp`) into a sequence no kept beam uses, before any step writes to it,
so num_beams sequences are enough. Search ends when num_beams hypotheses are kept and (early
stopping) at once or (otherwise) when no live beam can still beat the worst of them, or at the
length limit, where the live beams join the hypotheses.

Logits are first reshaped as the chain's pre-sampling stages do (logit_bias, penalties, DRY: over
each beam's own tokens) and masked by each beam's own grammar; truncation samplers and
temperature do not apply (beams keep the likeliest continuations, not a draw).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from andon.app.engine.context import common_prefix
from andon.app.engine.generation import (
    CancelCheck,
    Delta,
    Done,
    Event,
    FinishReason,
    PromptStats,
    ReplyNotice,
    StopFilter,
    TokenConstraint,
    Usage,
)
from andon.app.engine.sequences import Sequences, SequencesCancelled
from andon.presets.parameters import Parameters
from andon.samplers import build_chain
from numpy.typing import NDArray

if TYPE_CHECKING:
    from andon.app.engine.engine import Engine

# Full-vocabulary logits for a beam's tokens (prompt and reply): reshaped, masked, not normalised.
Shape = Callable[[Sequence[int], NDArray[np.float32], "TokenConstraint | None"], NDArray[np.float32]]
# Whether a token ends the turn.
IsEnd = Callable[[int], bool]
# Whether a beam's reply tokens reach a stop string.
IsStopped = Callable[[Sequence[int]], bool]


@dataclass(frozen=True)
class Hypothesis:
    """A finished beam: its reply tokens (the end of turn left out), log-probability and score."""

    tokens: tuple[int, ...]
    logprob: float
    score: float
    ended: bool  # by an end of turn (False: cut at the length limit)


@dataclass
class Hypotheses:
    """The num_beams best finished beams (transformers' BeamHypotheses)."""

    num_beams: int
    length_penalty: float
    early_stopping: bool
    kept: list[Hypothesis] = field(default_factory=list)

    def score(self, logprob: float, length: int) -> float:
        return logprob / (max(length, 1) ** self.length_penalty)

    @property
    def worst(self) -> float:
        return min(h.score for h in self.kept) if self.kept else math.inf

    def add(self, tokens: Sequence[int], logprob: float, length: int, ended: bool) -> None:
        """Keep a finished beam if it is among the num_beams best so far."""
        score = self.score(logprob, length)
        if len(self.kept) < self.num_beams or score > self.worst:
            self.kept.append(Hypothesis(tuple(tokens), logprob, score, ended))
            if len(self.kept) > self.num_beams:
                self.kept.remove(min(self.kept, key=lambda h: h.score))

    def done(self, best_logprob: float, length: int) -> bool:
        """Whether no live beam can do better than the kept ones (early_stopping: once full)."""
        if len(self.kept) < self.num_beams:
            return False
        if self.early_stopping:
            return True
        return self.worst >= self.score(best_logprob, length)

    def best_first(self) -> list[Hypothesis]:
        return sorted(self.kept, key=lambda h: -h.score)


@dataclass
class Beam:
    """A live beam: the sequence that holds it, its reply tokens, log-probability and grammar."""

    seq: int
    tokens: list[int]
    logprob: float
    constraint: TokenConstraint | None = None


def best_tokens(logits: NDArray[np.float32], n: int) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """A beam's n likeliest next tokens and every token tied with the n-th, in token order, with
    their log-probabilities (log-softmax over the whole vocabulary, in float64; -inf never)."""
    x = logits.astype(np.float64)
    top = np.max(x)
    if not np.isfinite(top):
        return np.empty(0, np.intp), np.empty(0, np.float64)
    lse = top + np.log(np.sum(np.exp(x - top)))
    k = min(n, x.shape[0])
    cut = np.partition(x, x.shape[0] - k)[x.shape[0] - k]
    ids = np.flatnonzero(x >= cut) if np.isfinite(cut) else np.flatnonzero(np.isfinite(x))
    return ids, x[ids] - lse


def best_pairs(
    choices: Sequence[tuple[NDArray[np.intp], NDArray[np.float64]]], totals: Sequence[float], n: int
) -> list[tuple[int, int, float]]:
    """The n best (beam index, token, total log-probability) of each beam's `best_tokens`, best
    first; ties to the lower beam, then the lower token (a stable sort over beam-major order, as
    torch.topk on CPU). Any pair among the n best overall is among its own beam's n best."""
    if not choices:
        return []
    beam = np.concatenate([np.full(ids.shape[0], b, np.intp) for b, (ids, _) in enumerate(choices)])
    token = np.concatenate([ids for ids, _ in choices])
    total = np.concatenate([lp + t for (_, lp), t in zip(choices, totals, strict=True)])
    order = np.argsort(-total, kind="stable")[:n]
    return [(int(beam[i]), int(token[i]), float(total[i])) for i in order]


class BeamSearch:
    """One beam search over a prompt; `steps()` yields the number of reply tokens after each step."""

    def __init__(
        self,
        sequences: Sequences,
        prompt: Sequence[int],
        shape: Shape,
        is_end: IsEnd,
        *,
        num_beams: int,
        length_penalty: float = 1.0,
        early_stopping: bool = False,
        max_tokens: int,
        new_constraint: Callable[[], TokenConstraint | None] = lambda: None,
        cancelled: CancelCheck | None = None,
        is_stopped: IsStopped | None = None,
    ) -> None:
        self.seqs, self.prompt, self.shape, self.is_end = sequences, list(prompt), shape, is_end
        self.is_stopped = is_stopped
        self.num_beams, self.max_tokens, self.cancelled = num_beams, max_tokens, cancelled
        self.new_constraint = new_constraint
        self.hypotheses = Hypotheses(num_beams, length_penalty, early_stopping)
        self.beams: list[Beam] = []
        self.was_cancelled = False

    def steps(self) -> Iterator[int]:
        """Run the search; after each step, how many tokens the beams hold."""
        try:
            logits = {0: self.seqs.prefill(0, self.prompt, self.cancelled)}
        except SequencesCancelled:  # stopped before the first step: no beam yet
            self.was_cancelled = True
            return
        self.beams = [Beam(0, [], 0.0, self.new_constraint())]
        for length in range(1, self.max_tokens + 1):
            if self.cancelled is not None and self.cancelled():
                self.was_cancelled = True
                return
            choices = [best_tokens(self._shaped(b, logits[b.seq]), 2 * self.num_beams) for b in self.beams]
            chosen, best = self._select(choices, length)
            if not chosen or self.hypotheses.done(best, length):
                self.beams = []
                return
            self.beams = self._advance(chosen)
            if length == self.max_tokens:
                break
            logits = self.seqs.step({b.seq: b.tokens[-1] for b in self.beams})
            yield length
        for beam in self.beams:  # at the length limit: the live beams join the hypotheses
            self.hypotheses.add(beam.tokens, beam.logprob, len(beam.tokens), ended=False)

    def _shaped(self, beam: Beam, logits: NDArray[np.float32]) -> NDArray[np.float32]:
        return self.shape([*self.prompt, *beam.tokens], logits, beam.constraint)

    def _select(
        self, choices: list[tuple[NDArray[np.intp], NDArray[np.float64]]], length: int
    ) -> tuple[list[tuple[int, int, float]], float]:
        """Finish the ends among the best num_beams pairs; the num_beams best others go on; and
        the best total of all pairs (what the done check weighs, as transformers does)."""
        pairs = best_pairs(choices, [b.logprob for b in self.beams], 2 * self.num_beams)
        best = pairs[0][2] if pairs else -math.inf
        chosen: list[tuple[int, int, float]] = []
        for rank, (parent, token, total) in enumerate(pairs):
            tokens = self.beams[parent].tokens
            if self.is_end(token):
                if rank < self.num_beams:
                    self.hypotheses.add(tokens, total, length, ended=True)
            elif self.is_stopped is not None and self.is_stopped([*tokens, token]):
                if rank < self.num_beams:  # finished at its stop string, as at an end of turn
                    self.hypotheses.add([*tokens, token], total, length, ended=True)
            else:
                chosen.append((parent, token, total))
            if len(chosen) == self.num_beams:
                break
        return chosen, best

    def _advance(self, chosen: list[tuple[int, int, float]]) -> list[Beam]:
        """The next beams: a parent's first child takes its sequence, the others are forked into
        sequences no parent keeps (every fork is made before any sequence is written)."""
        parents = {parent for parent, _, _ in chosen}
        free = [b.seq for i, b in enumerate(self.beams) if i not in parents]
        free += [s for s in range(self.seqs.n_seq) if s not in {b.seq for b in self.beams}]
        taken: set[int] = set()
        beams: list[Beam] = []
        for parent, token, total in chosen:
            source = self.beams[parent]
            seq = source.seq if parent not in taken else free.pop(0)
            if parent in taken:
                self.seqs.fork(source.seq, [seq])
            taken.add(parent)
            beams.append(Beam(seq, [*source.tokens, token], total, self._constraint_after(source, token)))
        return beams

    def _constraint_after(self, beam: Beam, token: int) -> TokenConstraint | None:
        """A grammar of its own for a child beam: a new one given the parent's tokens and `token`."""
        if beam.constraint is None:
            return None
        constraint = self.new_constraint()
        if constraint is not None:
            for t in [*beam.tokens, token]:
                constraint.accept(t)
        return constraint


# --- a reply by beam search, for Engine.stream ------------------------------------------------------

KEPT_STAGES = ("logit_bias", "penalties", "dry")  # what reshapes logits; the rest shapes a draw


def open_sequences(engine: Engine, n_seq: int, prompt: Sequence[int], max_tokens: int) -> Sequences:
    """A context for `n_seq` sequences of `prompt` and up to `max_tokens` reply tokens each; its
    sequence 0 holds what of `prompt` the chat's KV cache holds (copied, not evaluated again:
    Engine.stream evaluates a chat's new message there first, as for a reply), and `prefill`
    adds the rest (the last token at least, for its logits)."""
    seqs = Sequences(engine.llm, n_seq, len(prompt) + n_seq * max_tokens + 16)
    held = [int(t) for t in engine.context.ids()]
    seqs.adopt(0, engine.llm.ctx, held, common_prefix(held, prompt))
    return seqs


def room(engine: Engine, params: Parameters, prompt: Sequence[int]) -> int:
    """Most reply tokens: num_predict, or what is left of num_ctx after the prompt."""
    left = max(1, engine.n_ctx - len(prompt))
    return min(params.num_predict, left) if params.num_predict > 0 else left


def reply_text(engine: Engine, tokens: Sequence[int], stops: Sequence[str]) -> tuple[str, bool]:
    """The text of reply tokens, cut before the first stop string; whether one was there."""
    text = b"".join(engine.piece(t) for t in tokens).decode("utf-8", errors="replace")
    stop = StopFilter(stops)
    shown, hit = stop.feed(text)
    return (shown if hit else shown + stop.flush()), hit


def stop_check(engine: Engine, stops: Sequence[str]) -> IsStopped | None:
    """Whether reply tokens' text reaches one of `stops` (None: no stop strings)."""
    if not stops:
        return None
    return lambda tokens: reply_text(engine, tokens, stops)[1]


def shaper(engine: Engine, params: Parameters) -> Shape:
    """The pre-sampling stages (logit_bias, penalties, DRY) over a beam's tokens, then its grammar."""
    values = {**params.sampling(), "samplers": ["penalties", "dry"], "mirostat": 0}
    chain = build_chain(values, vocab=engine.vocab_for(params), n_vocab=engine.n_vocab, seed=0)

    def shape(
        ids: Sequence[int], logits: NDArray[np.float32], constraint: TokenConstraint | None
    ) -> NDArray[np.float32]:
        out = chain.run(np.asarray(ids, dtype=np.intc), logits)
        return out if constraint is None else constraint.mask(out)

    return shape


def unused_stages(engine: Engine, params: Parameters) -> list[str]:
    """The active stages of the preset's chain that beam search does not run."""
    chain = build_chain(params.sampling(), vocab=engine.vocab_for(params), n_vocab=engine.n_vocab, seed=0)
    return [s.name for s in chain.stages if s.name not in KEPT_STAGES]


def beam_events(engine: Engine, prompt: Sequence[int], params: Parameters, seed: int, stats: PromptStats,
                cancelled: CancelCheck | None, started: float) -> Iterator[Event]:  # fmt: skip
    """A reply by beam search: an empty Delta per step (progress), the chosen reply, then Done
    with every kept beam (best first) as candidates."""
    if unused := unused_stages(engine, params):
        yield ReplyNotice(
            f"num_beams {params.num_beams}: beam search keeps the likeliest continuations, so "
            f"{', '.join(unused)} (which shape a random draw) are not used"
        )
    limit = room(engine, params, prompt)
    with open_sequences(engine, params.num_beams, prompt, limit) as seqs:
        search = BeamSearch(seqs, prompt, shaper(engine, params), engine.is_end_of_turn,
                            num_beams=params.num_beams, length_penalty=params.length_penalty,
                            early_stopping=params.early_stopping, max_tokens=limit,
                            new_constraint=lambda: engine.constraint_for(params), cancelled=cancelled,
                            is_stopped=stop_check(engine, params.stop))  # fmt: skip
        first = 0.0
        for length in search.steps():
            first = first or time.perf_counter()
            yield Delta("", length, time.perf_counter() - first)
    kept = search.hypotheses.best_first()
    candidates = [_candidate(engine, h, params.stop) for h in kept]
    best: dict[str, Any] = candidates[0] if candidates else {"text": "", "finish_reason": "grammar", "tokens": []}
    finish: FinishReason = "cancelled" if search.was_cancelled else best["finish_reason"]
    if best["text"]:
        yield Delta(best["text"], len(best["tokens"]), time.perf_counter() - (first or started))
    n = len(best["tokens"])
    end = time.perf_counter()
    usage = Usage(prompt_tokens=stats.tokens, prompt_eval_tokens=stats.evaluated, completion_tokens=n,
                  ttft_s=(first or end) - started, total_s=end - started,
                  tokens_per_second=n / (end - first) if first and end > first else 0.0)  # fmt: skip
    yield Done(best["text"], finish, usage, seed, stats.dropped, list(best["tokens"]), candidates=candidates)


def _candidate(engine: Engine, h: Hypothesis, stops: Sequence[str]) -> dict[str, Any]:
    text, hit = reply_text(engine, h.tokens, stops)
    finish = "stop" if h.ended or hit else "length"
    return {"text": text, "score": h.score, "logprob": h.logprob, "tokens": list(h.tokens), "finish_reason": finish}
