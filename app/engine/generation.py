"""One reply being written: tokens chosen by andon's chain from llama.cpp's logits, streamed as
events (Delta of whole characters, maybe a ReplyNotice, then one Done).

A reasoning model's thinking (app/engine/reasoning.py) travels apart from the answer: Delta.thinking and
Done.thinking; `text` is the answer only, and stop strings are looked for in the answer only.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
from andon.app.engine.banning import MAX_REWINDS, BanWatch, Verdict
from andon.app.engine.context import KVContext
from andon.app.engine.logprobs import LogprobRecorder
from andon.app.engine.reasoning import TRANSITION, ThinkingSplitter
from andon.app.engine.tokens import TextDecoder, TokenTexts
from andon.presets.bans import Bans
from andon.presets.parameters import Parameters
from andon.samplers import Candidates, Chain
from numpy.typing import NDArray

# grammar: it allowed no token; banned: the reply could not go on without a banned phrase
FinishReason = Literal["stop", "length", "cancelled", "grammar", "banned"]
NO_TOKEN = -1  # what `Reply.choose` returns where the constraint allows no token at all
ALL_BANNED = -2  # what it returns where banned_strings left no token at this position
CancelCheck = Callable[[], bool]


@dataclass
class Usage:
    prompt_tokens: int = 0
    prompt_eval_tokens: int = 0  # of the prompt, those not already in the KV cache
    completion_tokens: int = 0
    ttft_s: float = 0.0
    tokens_per_second: float = 0.0
    total_s: float = 0.0
    drafted_tokens: int = 0  # speculative decoding (`draft`): drafted tokens the model verified
    accepted_tokens: int = 0  # of them, those the chain chose too (kept in the reply)
    thinking_tokens: int = 0  # of completion_tokens, those of the thinking (markers included)
    rewinds: int = 0  # banned_strings: how many times a banned phrase was taken back


@dataclass
class Delta:
    text: str
    completion_tokens: int = 0  # tokens generated so far, for a live rate
    seconds: float = 0.0  # since the first token
    thinking: str = ""  # reasoning written before the answer (text is then often empty)
    logprobs: list[dict[str, Any]] = field(default_factory=list)  # asked for: the entries of the tokens it shows


@dataclass
class ReplyNotice:
    """Something the user should be told about this reply (e.g. old turns dropped)."""

    text: str


@dataclass
class Done:
    text: str
    finish_reason: FinishReason
    usage: Usage
    seed: int
    dropped_turns: int = 0
    tokens: list[int] = field(default_factory=list)
    thinking: str = ""  # the reasoning before the answer, apart from `text` (the answer)
    candidates: list[dict[str, Any]] = field(default_factory=list)  # beams or MBR samples, best first
    logprobs: list[dict[str, Any]] = field(default_factory=list)  # asked for: each token's (logprobs.py)


Event = Delta | ReplyNotice | Done


@dataclass(frozen=True)
class PromptStats:
    tokens: int  # in the prompt
    evaluated: int  # of them, not already in the KV cache
    dropped: int = 0  # oldest messages left out to fit num_ctx


class TokenConstraint(Protocol):
    """What the reply must be a sentence of (a grammar, a JSON schema), consulted per token.

    After the chain picks a token, `allows(token)` checks it. When it is refused, the logits are
    masked with `mask` and the chain runs again from the state it had before this token, so each
    stateful stage (XTC's draw, mirostat's mu, the sampling draw) advances once per token
    (llama.cpp's common_sampler_sample checks and resamples the same way). End-of-turn tokens go
    through `allows` like any other: a grammar allows them only where it may end, so the reply
    ends (finish "stop") where the chain picks one there, or where nothing else is allowed. Every
    other token the reply keeps is `accept`ed. A reply cut by num_predict is "length", complete
    or not.
    """

    def allows(self, token: int) -> bool: ...

    def mask(self, logits: NDArray[np.float32]) -> NDArray[np.float32]:
        """Full-vocabulary logits (a copy the constraint may change) with every token it does
        not allow next set to -inf."""
        ...

    def accept(self, token: int) -> None: ...

    def reset(self) -> None:
        """Back to the start (a reply rewound by banned_strings then accepts its tokens again)."""
        ...


class Speculation(Protocol):
    """Speculative decoding for one reply (app/engine/speculative.py): replaces `Reply.decode_step`."""

    drafted: int
    accepted: int

    def step(self, reply: Reply, pending: int | None) -> Iterator[int]: ...


class StopFilter:
    """Holds back text that may be the start of a stop string, so none is ever shown."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.held = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """(text safe to show, whether a stop string was reached)."""
        full = self.held + text
        hits = [i for i in (full.find(s) for s in self.stops) if i >= 0]
        if hits:
            self.held = ""
            return full[: min(hits)], True
        hold = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(full)), hold, -1):
                if full.endswith(s[:k]):
                    hold = k
                    break
        self.held = full[len(full) - hold :]
        return full[: len(full) - hold], False

    def flush(self) -> str:
        out, self.held = self.held, ""
        return out


class Reply:
    """One reply: the chain and the sampling generator, what was generated, the stop filter, the
    text decoder and the timing. `events()` writes it; create one per reply.

    Decoding is one method, `decode_step`, that a speculative step can replace (see there).

    `banned_strings` (app/engine/banning.py): the text that may still become a banned phrase is
    held back with the state before each of its tokens; a whole match rewinds the reply to the
    token where it begins (the KV cache, the chain's and the draw's state, the decoder, the
    grammar), bans that token there, and the reply goes on. `think_budget`: when the thinking has
    taken that many tokens, the transition line and the end marker are written for the model.
    """

    def __init__(
        self,
        context: KVContext,
        texts: TokenTexts,
        chain: Chain,
        params: Parameters,
        seed: int,
        prompt: PromptStats,
        *,
        cancelled: CancelCheck | None = None,
        constraint: TokenConstraint | None = None,
        started: float | None = None,
        speculation: Speculation | None = None,
        reasoning: ThinkingSplitter | None = None,
        logprobs: LogprobRecorder | None = None,
    ) -> None:
        self.context, self.texts, self.chain, self.params = context, texts, chain, params
        self.seed, self.prompt, self.cancelled, self.constraint = seed, prompt, cancelled, constraint
        self.speculation, self.reasoning, self.logprobs = speculation, reasoning, logprobs
        self.rng = np.random.default_rng([seed, 1])
        self.started = time.perf_counter() if started is None else started
        self.tokens: list[int] = []
        self.finish: FinishReason | None = None
        self._decoder = TextDecoder()
        self._stops = StopFilter(params.stop)
        self._text: list[str] = []
        self._thinking: list[str] = []
        self._pending: int | None = None  # the last token taken, not yet evaluated
        self._first_at = 0.0
        self._hit_stop = False
        self._thought = 0  # tokens of thinking so far, its markers included
        self._forced: list[int] = []  # think_budget: the tokens that close the thinking, still to write
        self._budget_done = False
        self._budget_at = 0  # where the closing text began (the reply's position)
        bans = Bans.of(params.banned_strings)
        self._watch = BanWatch(bans) if bans is not None else None
        self._prompt_ids = [int(t) for t in context.ids()] if bans is not None else []
        self._mark: Any = None  # with bans: the state before the token being chosen
        self._logprobs_sent = 0  # with logprobs: the entries Deltas carried so far

    def events(self) -> Iterator[Event]:
        """Delta events of whole characters as tokens are chosen, then one Done."""
        while self.finish is None:
            if self.cancelled is not None and self.cancelled():
                self.finish = "cancelled"
                break
            for token in self.decode_step():
                delta = self.take(token)
                if delta is not None:
                    yield delta
                if self.finish is not None:
                    break
        yield from self._end()

    def decode_step(self) -> Iterable[int]:
        """One forward pass: evaluate the token taken last, and choose the next one.

        With `speculation` (app/engine/speculative.py) the step evaluates the last token and several
        drafted ones at once (`context.append_all_logits`), chooses at each position with `choose`
        (whose input ids are the cache's up to that position), keeps the drafts up to the first
        that differs from the choice and `context.truncate`s the positions after them. Its tokens
        are yielded one at a time: `take` (and a grammar's accept) runs on each before the next is
        chosen, and a reply that ends inside the step stops it there. When a step ends, the cache
        holds the reply up to, not including, the last token taken.
        """
        pending, self._pending = self._pending, None
        if self.speculation is not None:
            return self.speculation.step(self, pending)
        if pending is not None:
            self.context.append([pending])
        if self._watch is not None:
            self._mark = (_SamplingState(self.chain, self.rng), copy.deepcopy(self._decoder))
        if self._forced and (self.constraint is None or self.constraint.allows(self._forced[0])):
            return [self._forced.pop(0)]
        self._forced = []  # a grammar that does not allow the closing text has the last word
        return [self.choose(self.context.ids(), self.context.logits())]

    def choose(self, input_ids: NDArray[np.intc], logits: NDArray[np.float32]) -> int:
        """The next token: the chain's distribution, sampled; with a constraint, one it allows."""
        if self._watch is not None and (banned := self._watch.banned_at(len(self.tokens))):
            logits = np.array(logits, dtype=np.float32)
            logits[banned] = -np.inf
            if not np.isfinite(logits).any():
                return ALL_BANNED
        if self.constraint is None:
            return self._draw(input_ids, logits)
        before = _SamplingState(self.chain, self.rng)
        token = self._draw(input_ids, logits)
        if self.constraint.allows(token):
            return token
        before.restore(self.chain, self.rng)
        masked = self.constraint.mask(np.array(logits, dtype=np.float32))
        if not np.isfinite(masked).any():
            return NO_TOKEN  # not even end of turn: the reply cannot go on, nor end complete
        token = self._draw(input_ids, masked, logits)
        # the chain never leaves only -inf, but should it, the best token allowed is the answer
        return token if np.isfinite(masked[token]) else int(np.argmax(masked))

    def _draw(self, input_ids: NDArray[np.intc], logits: NDArray[np.float32],
              model_logits: NDArray[np.float32] | None = None) -> int:  # fmt: skip
        """Sample from the chain's distribution; with `logprobs`, note what it was drawn from."""
        candidates = self.chain.candidates_after(input_ids, logits)
        if self.logprobs is not None:
            self.logprobs.seen(logits if model_logits is None else model_logits, candidates)
        return sample(candidates, self.rng)

    def take(self, token: int) -> Delta | None:
        """Add a chosen token to the reply: the text it shows, if any; `finish` set if it ends."""
        if not self._first_at:
            self._first_at = time.perf_counter()
        if token in (NO_TOKEN, ALL_BANNED):
            self.finish = "grammar" if token == NO_TOKEN else "banned"
            return None
        if self.texts.is_end_of_turn(token):
            self.finish = "stop"
            return None
        self.tokens.append(token)
        if self.logprobs is not None:
            self.logprobs.keep(token)
        if self.constraint is not None:
            self.constraint.accept(token)
        text = self._decoder.feed(self._piece(token))
        shows = len(self.tokens)  # the tokens whose text is sure to stay
        if self._watch is None:
            thinking, shown = self._split(text, len(self.tokens))
        else:
            verdict = self._watch.feed(self._mark, text)
            if verdict.rewind is not None:
                self._rewind(verdict.rewind)
                return None
            thinking, shown = self._split_each(verdict)
            shows = verdict.first + len(verdict.released)
        if self._hit_stop:
            self.finish = "stop"
        elif 0 < self.params.num_predict <= len(self.tokens) or self.context.n_tokens >= self.context.n_ctx:
            self.finish = "length"
        self._pending = token
        if not shown and not thinking:
            return None
        self._text.append(shown)
        self._thinking.append(thinking)
        return Delta(shown, len(self.tokens), time.perf_counter() - self._first_at, thinking, self._new_logprobs(shows))

    def _new_logprobs(self, upto: int) -> list[dict[str, Any]]:
        """The logprobs entries of the reply's first `upto` tokens not yet carried by a Delta."""
        if self.logprobs is None:
            return []
        sent, self._logprobs_sent = self._logprobs_sent, self.logprobs.before(upto)
        return self.logprobs.entries[sent : self._logprobs_sent]

    def _piece(self, token: int) -> bytes:
        r = self.reasoning
        return self.texts.piece(token, special=r is not None and token in r.marker_tokens)

    def _split_each(self, verdict: Verdict) -> tuple[str, str]:
        """`_split` of the tokens banned_strings released, each at its own position (a release of
        several tokens may hold the thinking's end marker and some of the answer)."""
        thought: list[str] = []
        shown: list[str] = []
        for k, text in enumerate(verdict.released):
            thinking, answer = self._split(text, verdict.first + k + 1)
            thought.append(thinking)
            shown.append(answer)
            if self._hit_stop:
                break
        return "".join(thought), "".join(shown)

    def _split(self, text: str, upto: int) -> tuple[str, str]:
        """(thinking, answer shown) of text that is sure to stay, the text of the reply's tokens up
        to `upto`; a stop string in the answer sets _hit_stop. Counts the thinking's tokens, and
        closes it at think_budget."""
        r = self.reasoning
        if r is None:
            shown, self._hit_stop = self._stops.feed(text)
            return "", shown
        was = r.state
        thinking, answer = r.feed(text)
        if r.state in ("opened", "thinking"):  # the thinking so far: every token since the reply began
            self._thought = upto
            self._close_at_budget()
        elif was in ("opened", "thinking"):  # this token ended it (its end marker)
            self._thought = upto
        shown, self._hit_stop = self._stops.feed(answer)
        return thinking, shown

    def _close_at_budget(self) -> None:
        """At think_budget tokens of thinking: the transition line and the end marker come next."""
        r, budget = self.reasoning, self.params.think_budget
        if r is None or self._budget_done or budget < 0 or self._thought < budget:
            return
        self._budget_done, self._budget_at = True, len(self.tokens)
        self._forced = self.texts.tokenize(f"{TRANSITION}{r.markers.end}\n\n", special=True)

    def _rewind(self, position: int) -> None:
        """Take the reply back to `position` (a banned phrase begins there) and ban its token there."""
        assert self._watch is not None
        sampling, decoder = self._watch.rewind(position, self.tokens[position])
        sampling.restore(self.chain, self.rng)
        self._decoder = copy.deepcopy(decoder)
        self.tokens = self.tokens[:position]
        if self.logprobs is not None:
            self.logprobs.cut(position)
        self._forced = []
        if self._budget_done and position <= self._budget_at:  # the close went with the thinking before it
            self._budget_done = False  # armed again; a ban inside the closing text has the last word
        if self.constraint is not None:
            self.constraint.reset()
            for token in self.tokens:
                self.constraint.accept(token)
        if self.context.n_tokens != len(self._prompt_ids) + position:  # the cache holds more than that
            self.context.prefill([*self._prompt_ids, *self.tokens])  # evaluates the last one again
        if self._watch.rewinds >= MAX_REWINDS:
            self.finish = "banned"

    def _end(self) -> Iterator[Event]:
        if not self._hit_stop:
            # what was held back as a possible banned phrase, marker or stop string was not one
            thinking, tail = self._split_each(self._watch.flush()) if self._watch is not None else ("", "")
            if not self._hit_stop:
                last_thinking, last = self._split_last(self._decoder.finish())
                thinking, tail = thinking + last_thinking, tail + last
            if tail or thinking:
                self._text.append(tail)
                self._thinking.append(thinking)
                yield Delta(tail, thinking=thinking, logprobs=self._new_logprobs(len(self.tokens)))
        yield from self._finish_notices()
        thinking = "".join(self._thinking).strip()
        yield Done("".join(self._text), self.finish or "stop", self._usage(), self.seed, self.prompt.dropped,
                   self.tokens, thinking,
                   logprobs=self.logprobs.entries if self.logprobs is not None else [])  # fmt: skip

    def _split_last(self, text: str) -> tuple[str, str]:
        """(thinking, answer shown) of the reply's last text and of what the splitter and the stop
        filter held: the reply ended, so it is what it looked like."""
        thinking, answer = "", text
        if self.reasoning is not None:
            thinking, answer = self.reasoning.feed(text)
            last = self.reasoning.finish()
            thinking, answer = thinking + last.thinking, answer + last.answer
        shown, self._hit_stop = self._stops.feed(answer)
        return thinking, shown if self._hit_stop else shown + self._stops.flush()

    def _usage(self) -> Usage:
        end = time.perf_counter()
        n, first = len(self.tokens), self._first_at
        return Usage(
            prompt_tokens=self.prompt.tokens,
            prompt_eval_tokens=self.prompt.evaluated,
            completion_tokens=n,
            ttft_s=(first or end) - self.started,
            tokens_per_second=(n / (end - first)) if n and end > first else 0.0,
            total_s=end - self.started,
            drafted_tokens=self.speculation.drafted if self.speculation else 0,
            accepted_tokens=self.speculation.accepted if self.speculation else 0,
            thinking_tokens=min(self._thought, n),
            rewinds=self._watch.rewinds if self._watch is not None else 0,
        )

    def _finish_notices(self) -> Iterator[ReplyNotice]:
        if self.finish == "grammar":
            yield ReplyNotice(
                "the format or grammar allows none of the model's tokens here: "
                'the reply ends incomplete (finish reason "grammar")'
            )
        elif self.finish == "banned":
            yield ReplyNotice(
                "banned_strings: the reply could not go on without a banned phrase: "
                'it ends here (finish reason "banned")'
            )


class _SamplingState:
    """What choosing a token changes: the chain's state (XTC's generator, mirostat's mu) and the
    sampling draw. Saved before a choice that a constraint may refuse, restored before choosing again."""

    def __init__(self, chain: Chain, rng: np.random.Generator) -> None:
        self.chain = chain.save_state()
        self.rng: Mapping[str, Any] = rng.bit_generator.state

    def restore(self, chain: Chain, rng: np.random.Generator) -> None:
        chain.restore_state(self.chain)
        rng.bit_generator.state = self.rng


def sample(c: Candidates, rng: np.random.Generator) -> int:
    """Draw one token from softmax of the candidates' logits."""
    finite = np.isfinite(c.logits)
    if c.size > 1 and finite.all():  # the usual case after truncation: nothing to drop
        logits, ids = c.logits, c.ids
    else:
        if finite.sum() == 1:
            return int(c.ids[np.argmax(finite)])
        logits, ids = c.logits[finite], c.ids[finite]
        if ids.size == 0:
            return int(c.ids[0])
    weights = np.exp(logits - logits.max(), dtype=np.float64)
    cum = np.cumsum(weights)
    return int(ids[min(int(np.searchsorted(cum, rng.random() * cum[-1], side="right")), ids.size - 1)])
