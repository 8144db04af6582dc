"""The llama.cpp engine: one loaded GGUF, its context, and replies sampled by andon's chain.

llama.cpp evaluates tokens and hands over logits; every sampling decision is taken by the Python
chain from `samplers/` (llama.cpp's own samplers are not in the loop at all, so they change
nothing). The KV cache is reused across turns: a turn evaluates only the tokens it adds.

`Engine` puts the parts together, each in its own module:
- loading.py: the options, refusing what cannot fit in memory, one line when llama.cpp fails;
- tokens.py: tokenizing, token bytes and texts, the vocabulary the samplers may need;
- prompt.py: messages to prompt tokens by the chat template, and which messages fit num_ctx;
- context.py: the KV-cached context (prefill, logits, verifying several tokens, truncating);
- generation.py: one `Reply`, whose events are what `Engine.stream` yields;
- speculative.py: speculative decoding (`draft`), several tokens per forward pass.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from andon.app.engine import rpc
from andon.app.engine.context import PREFILL_BLOCK, KVContext, PrefillCancelled
from andon.app.engine.generation import (
    CancelCheck,
    Delta,
    Done,
    Event,
    FinishReason,
    PromptStats,
    Reply,
    ReplyNotice,
    StopFilter,
    TokenConstraint,
    Usage,
    sample,
)
from andon.app.engine.grammar import GrammarConstraint
from andon.app.engine.loading import ModelLoadError, ModelOptions, load_llama
from andon.app.engine.logprobs import LogprobRecorder
from andon.app.engine.prompt import (
    ChatPrompt,
    ChatTemplateError,
    ContextFullError,
    Fitted,
    Message,
    PromptFitter,
    messages_for,
)
from andon.app.engine.reasoning import Think
from andon.app.engine.speculative import Speculator
from andon.app.engine.structured import grammar_for
from andon.app.engine.tokens import TextDecoder, TokenTexts
from andon.presets.parameters import MAX_SEARCH, ParameterError, Parameters
from andon.samplers import Chain, Vocab, build_chain
from numpy.typing import NDArray

if TYPE_CHECKING:
    from andon.app.engine.inspection import Inspection
    from andon.app.engine.perplexity import Perplexity

__all__ = [
    "PREFILL_BLOCK",
    "CancelCheck",
    "ChatTemplateError",
    "ContextFullError",
    "Delta",
    "Done",
    "Engine",
    "Event",
    "FinishReason",
    "Message",
    "ModelLoadError",
    "ModelOptions",
    "ReplyNotice",
    "StopFilter",
    "TextDecoder",
    "TokenConstraint",
    "Usage",
    "messages_for",
    "sample",
]


class Engine:
    """One loaded model and its context. Not thread-safe: one reply at a time."""

    def __init__(self, options: ModelOptions) -> None:
        self.options = options
        self.pid = os.getpid()  # in this process
        self.llm = load_llama(options)
        self.texts = TokenTexts(self.llm)
        self.context = rpc.GuardedContext(self.llm) if options.rpc else KVContext(self.llm)
        self.context.warm_up()
        self.n_vocab = self.texts.n_vocab
        self.n_ctx = self.context.n_ctx
        self.prompt = ChatPrompt(self.llm.metadata.get("tokenizer.chat_template"), self.texts, self.model_name)
        self.fitter = PromptFitter(self.prompt, self.n_ctx)
        self.speculator = Speculator(options, self.texts, self.model_name, self.n_ctx)  # `draft`
        self._told_plain = False
        self._told_no_switch = False  # `think` false where the template cannot switch it off
        self._told_no_effort = False  # `think` low/medium/high where the template has no reasoning effort
        self._told_dropped = 0  # the drop told last: a chat past num_ctx hears of each new drop once

    @property
    def model_name(self) -> str:
        return self.llm.metadata.get("general.name") or Path(self.options.path).stem

    # --- replies -------------------------------------------------------------------------------

    def stream(
        self,
        messages: Sequence[Message],
        params: Parameters,
        cancelled: CancelCheck | None = None,
        chain: Chain | None = None,
        constraint: TokenConstraint | None = None,
        *,
        prompt: Sequence[int] | None = None,
        logprobs: int | None = None,
        context: KVContext | None = None,
        samples: int | None = None,
    ) -> Iterator[Event]:
        """Stream a reply: Delta events of whole characters, maybe ReplyNotices, then one Done.

        `constraint` (a grammar) limits what the reply may be; None asks `constraint_for(params)`.
        `prompt`: these tokens continued as they are (a raw prompt: no chat template, `messages`
        unused); `logprobs`: each token's log-probabilities and this many alternatives in Done.logprobs.
        `context`: a server's slot (scheduler.py's SlotContext) instead of the chat's own context.
        `samples`: this many replies drawn together as sequences, sample i seeded seed + i (mbr.py's
        draw); Done holds sample 0's and lists every one in seed order as its candidates.
        """
        slot = context is not None
        context = self.context if context is None else context
        started = time.perf_counter()
        if extra := [s for s in self.prompt.stops() if s not in params.stop]:
            params = params.model_copy(update={"stop": (*params.stop, *extra)})
        reserve = params.num_predict if params.num_predict > 0 else min(256, self.n_ctx // 4)
        variables = self.prompt.variables(params.think)  # Qwen3's enable_thinking
        if prompt is not None:
            fitted = self._raw(prompt)
        else:
            fitted = self.fitter.fit(messages, min(reserve, self.n_ctx // 2), context.ids(), variables)
            yield from self._notices(fitted.dropped)
        yield from self._think_notice(params)
        seed = params.seed if params.seed >= 0 else secrets.randbits(31)
        if samples is not None or params.num_beams > 1 or params.mbr_samples > 0:  # sequences: beams.py, mbr.py
            yield from self._search(fitted.tokens, params, seed, fitted.dropped, cancelled, started, samples)
            return
        if chain is None:
            chain = build_chain(params.sampling(), vocab=self.vocab_for(params), n_vocab=self.n_vocab, seed=seed)
        if constraint is None:
            constraint = self.constraint_for(params)
        # None unless `draft` is set; a reply that may rewind (banned_strings) is decoded a token at a time
        speculation = (
            None if params.banned_strings or logprobs is not None or slot else self.speculator.for_reply(params)
        )
        if isinstance(context, rpc.GuardedContext):
            context.cancelled = cancelled  # stopping a reply stops waiting for a silent server
        stats = _prefill(context, fitted.tokens, fitted.dropped, cancelled, started, seed)
        if isinstance(stats, Done):
            yield stats
            return
        reasoning = self.prompt.splitter(fitted.tokens, begins_as_answer=constraint is not None)
        reply = Reply(context, self.texts, chain, params, seed, stats,
                      cancelled=cancelled, constraint=constraint, started=started,
                      speculation=speculation, reasoning=reasoning,
                      logprobs=None if logprobs is None else LogprobRecorder(self.texts, logprobs))  # fmt: skip
        remembered = False
        try:
            for event in reply.events():
                if isinstance(event, Done) and speculation is not None:
                    # kept before the reply's end is told: a client that then ends the engine
                    # process (andon ask) must not end it before this is written
                    self.speculator.remember()
                    remembered = True
                yield event
        finally:
            if speculation is not None and not remembered:  # a reply given up before its end
                self.speculator.remember()

    def _search(self, tokens: list[int], params: Parameters, seed: int, dropped: int,
                cancelled: CancelCheck | None, started: float, samples: int | None) -> Iterator[Event]:  # fmt: skip
        """A reply by beam search (num_beams) or minimum Bayes risk (mbr_samples), or `samples` replies."""
        from andon.app.engine import beams, mbr

        what = f"samples {samples}" if samples is not None else f"mbr_samples {params.mbr_samples}"
        if samples is not None and (params.num_beams > 1 or params.mbr_samples > 0 or not 1 <= samples <= MAX_SEARCH):
            raise ParameterError(f"{what}: expected 1 to {MAX_SEARCH} replies, without num_beams or mbr_samples")
        ends = params.num_predict > 0 or self.prompt.has_template or bool(params.stop)
        if (samples or params.mbr_samples) and not ends:
            raise ParameterError(
                f"{what} with num_predict {params.num_predict}: {self.model_name} has no "
                "chat template, so its samples may never end; set num_predict > 0 or a stop string"
            )
        # the chat's cache takes the prompt first, as for a reply: the sequences copy it from there
        stats = _prefill(self.context, tokens, dropped, cancelled, started, seed)
        if isinstance(stats, Done):
            yield stats
            return
        if samples is not None:
            yield from mbr.sample_events(self, tokens, params, seed, stats, cancelled, started, samples)
            return
        events = beams.beam_events if params.num_beams > 1 else mbr.mbr_events
        yield from events(self, tokens, params, seed, stats, cancelled, started)

    def _raw(self, tokens: Sequence[int]) -> Fitted:
        """A raw prompt's tokens as they are; ContextFullError where they leave no room for a reply."""
        if not tokens or len(tokens) >= self.n_ctx:
            raise ContextFullError(
                f"the raw prompt has {len(tokens)} tokens: it must have 1 to {self.n_ctx - 1} (num_ctx {self.n_ctx})"
            )
        return Fitted([], [int(t) for t in tokens], 0)

    def constraint_for(self, params: Parameters) -> GrammarConstraint | None:
        """llama.cpp's grammar for `format` / `grammar`, over this model's vocabulary; None for
        free text. GrammarError (one line) for a grammar or schema that cannot be used."""
        spec = grammar_for(params)
        if spec is None:
            return None
        import llama_cpp

        return GrammarConstraint(llama_cpp.llama_model_get_vocab(self.llm.model), spec.text, spec.root)

    def _think_notice(self, params: Parameters) -> Iterator[ReplyNotice]:
        """`think` false, or a level, where the template has no switch for it: said once each,
        never dropped silently."""
        if not self.prompt.has_template:
            return
        if params.think is False and not self.prompt.switches_thinking and not self._told_no_switch:
            self._told_no_switch = True
            yield ReplyNotice(
                f"think is false, but the chat template of {self.model_name} has no switch for reasoning "
                "(enable_thinking): it cannot be asked not to think; any thinking is still shown apart"
            )
        if isinstance(params.think, str) and not self.prompt.switches_effort and not self._told_no_effort:
            self._told_no_effort = True
            yield ReplyNotice(
                f"think is {params.think}, but the chat template of {self.model_name} has no reasoning_effort: "
                "it thinks as with think true"
            )

    def _notices(self, dropped: int) -> Iterator[ReplyNotice]:
        if not self.prompt.has_template and not self._told_plain:
            self._told_plain = True
            yield ReplyNotice(
                f"{self.model_name} has no chat template: the conversation is given to it as a plain "
                "transcript to continue"
            )
        told, self._told_dropped = self._told_dropped, dropped
        if dropped and dropped != told:
            yield ReplyNotice(
                f"dropped the {dropped} oldest message{'s' if dropped > 1 else ''} "
                f"to fit the context of {self.n_ctx} tokens (num_ctx)"
            )

    # --- the parts, for the inspector, the CLI tools and the tests ----------------------------

    def format_chat(self, messages: Sequence[Message]) -> str:
        """The prompt text for these messages, by the chat template stored in the GGUF."""
        return self.prompt.format(messages)

    def chat_tokens(self, messages: Sequence[Message], think: Think = True) -> list[int]:
        """The prompt tokens of these messages, as `stream` makes them (`think` reaches the template)."""
        return self.prompt.tokens(messages, self.prompt.variables(think))

    def fit(self, messages: Sequence[Message], reserve: int) -> tuple[list[Message], list[int], int]:
        """(messages kept, their prompt tokens, how many were dropped) to leave `reserve` tokens."""
        fitted = self.fitter.fit(messages, reserve, self.context.ids())
        return fitted.messages, fitted.tokens, fitted.dropped

    def tokenize(self, text: str, *, special: bool = True, add_bos: bool = False) -> list[int]:
        return self.texts.tokenize(text, special=special, add_bos=add_bos)

    def piece(self, token: int, *, special: bool = False) -> bytes:
        return self.texts.piece(token, special=special)

    def token_text(self, token: int) -> str:
        """A token's text for display, special tokens (BOS, <|im_start|>) spelled out."""
        return self.texts.token_text(token)

    def token_texts(self, tokens: Sequence[int]) -> list[str]:
        return [self.texts.token_text(t) for t in tokens]

    def inspect(self, tokens: Sequence[int], params: Parameters, top: int = 10,
                temperatures: Sequence[float] = (), reply: Sequence[int] = ()) -> Inspection:  # fmt: skip
        """The next-token candidates after `tokens`, before the chain and after each stage."""
        from andon.app.engine.inspection import inspect_next

        return inspect_next(self, tokens, params, top, temperatures, reply)

    def perplexity(self, tokens: Sequence[int], n_ctx: int, cancelled: CancelCheck | None = None) -> Perplexity:
        """llama-perplexity's figure for a text's tokens (`tokenize(text, add_bos=True)`), chunks of n_ctx."""
        from andon.app.engine.perplexity import perplexity

        return perplexity(self.llm, tokens, n_ctx, self.texts.bos if self.texts.adds_bos else None, cancelled)

    def is_end_of_turn(self, token: int) -> bool:
        return self.texts.is_end_of_turn(token)

    @property
    def vocab(self) -> Vocab:
        return self.texts.vocab

    def vocab_for(self, params: Parameters) -> Vocab | None:
        """The token texts, only when these parameters need them (DRY breakers, logit_bias by text)."""
        return self.texts.vocab_for(params)

    def prefill(self, tokens: Sequence[int]) -> int:
        """Evaluate `tokens`, reusing the cached prefix; returns how many were evaluated."""
        return self.context.prefill(tokens)

    def logits(self) -> NDArray[np.float32]:
        """The next-token logits after the last evaluated token (a view; do not keep it)."""
        return self.context.logits()

    def context_ids(self) -> NDArray[np.intc]:
        return self.context.ids()

    def alive(self) -> bool:
        return True  # in this process: it ends only with it

    def close(self) -> None:
        self.speculator.close()
        self.context.close()
        if self.options.rpc:
            rpc.release(self.llm)  # kept, not freed, if its server was lost
        else:
            self.llm.close()


def _prefill(context: KVContext, tokens: list[int], dropped: int, cancelled: CancelCheck | None,
             started: float, seed: int) -> PromptStats | Done:  # fmt: skip
    """Evaluate a reply's prompt in `context`: its PromptStats, or the Done of a reply stopped
    while the prompt was evaluated (what was evaluated stays cached)."""
    try:
        evaluated = context.prefill(tokens, cancelled)
    except PrefillCancelled as stop:
        usage = Usage(prompt_tokens=stop.tokens, prompt_eval_tokens=stop.evaluated,
                      total_s=time.perf_counter() - started)  # fmt: skip
        return Done("", "cancelled", usage, seed, dropped)
    return PromptStats(len(tokens), evaluated, dropped)
