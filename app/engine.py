"""The llama.cpp engine: load a GGUF, format chats, stream replies sampled by andon's chain.

llama.cpp evaluates tokens and hands over logits; every sampling decision is taken by the Python
chain from `samplers/` (llama.cpp's own samplers are not in the loop at all, so they change
nothing). The KV cache is reused across turns: a turn evaluates only the tokens it adds.
"""

from __future__ import annotations

import codecs
import ctypes
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypedDict

import numpy as np
from andon.app import llama_log
from andon.app.model_files import ModelPathError, check_gguf
from andon.presets.parameters import Parameters
from andon.samplers import Candidates, Chain, Vocab, build_chain, needs_vocab
from numpy.typing import NDArray

FinishReason = Literal["stop", "length", "cancelled"]
PREFILL_BLOCK = 32  # prompt tokens are evaluated in blocks aligned to this (see Engine.prefill)


class Message(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str


class ModelLoadError(Exception):
    """The model could not be loaded; the message says why in a user's words."""


class ContextFullError(Exception):
    """The conversation cannot fit in num_ctx even after dropping old turns."""


@dataclass(frozen=True)
class ModelOptions:
    path: Path
    num_ctx: int = 4096
    num_gpu: int = -1
    num_thread: int = 0
    num_batch: int = 512
    verbose: bool = False

    @classmethod
    def from_parameters(cls, path: Path, params: Parameters, verbose: bool = False) -> ModelOptions:
        return cls(path, params.num_ctx, params.num_gpu, params.num_thread, params.num_batch, verbose)


@dataclass
class Usage:
    prompt_tokens: int = 0
    prompt_eval_tokens: int = 0  # of the prompt, those not already in the KV cache
    completion_tokens: int = 0
    ttft_s: float = 0.0
    tokens_per_second: float = 0.0
    total_s: float = 0.0


@dataclass
class Delta:
    text: str
    completion_tokens: int = 0  # tokens generated so far, for a live rate
    seconds: float = 0.0  # since the first token


@dataclass
class Notice:
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


Event = Delta | Notice | Done
CancelCheck = Callable[[], bool]


class TextDecoder:
    """Token bytes to text, whole UTF-8 characters only.

    A character split across tokens is held until its last byte arrives; bytes that can never
    form a character are shown as U+FFFD; a character cut off by the end of the reply is dropped.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes) -> str:
        return self._decoder.decode(data)

    def finish(self) -> str:
        self._decoder.reset()  # an incomplete last character is dropped, never shown as U+FFFD
        return ""


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


class Engine:
    """One loaded model and its context. Not thread-safe: one reply at a time."""

    def __init__(self, options: ModelOptions) -> None:
        import llama_cpp

        self.options = options
        llama_log.install(options.verbose)
        try:
            path = check_gguf(options.path)
        except ModelPathError as exc:
            raise ModelLoadError(str(exc)) from None
        try:
            self.llm = llama_cpp.Llama(
                str(path),
                n_ctx=options.num_ctx,
                n_gpu_layers=options.num_gpu,
                n_threads=options.num_thread or None,
                n_batch=options.num_batch,
                verbose=options.verbose,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            detail = llama_log.last_error() or str(exc)
            raise ModelLoadError(
                f"could not load model {path}: {detail} "
                "(the file may be truncated, damaged, or of an architecture this llama.cpp does not support)"
            ) from None
        self._llama_cpp = llama_cpp
        self._vocab_ptr = llama_cpp.llama_model_get_vocab(self.llm.model)
        self.n_vocab = self.llm.n_vocab()
        self.n_ctx = self.llm.n_ctx()
        self._pieces: dict[int, bytes] = {}
        self._canonical = 0  # cached tokens evaluated in aligned blocks (a prompt, not a reply)
        self._vocab: Vocab | None = None
        self._formatter = self._chat_formatter()

    # --- text and tokens -------------------------------------------------------------------

    @property
    def model_name(self) -> str:
        return self.llm.metadata.get("general.name") or Path(self.options.path).stem

    @property
    def vocab(self) -> Vocab:
        """Token texts for DRY and logit_bias, built on first use."""
        if self._vocab is None:
            texts = [self.token_text(i) for i in range(self.n_vocab)]
            self._vocab = Vocab(texts, lambda s: self.tokenize(s, special=False))
        return self._vocab

    def tokenize(self, text: str, *, special: bool = True, add_bos: bool = False) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=special)

    def piece(self, token: int, *, special: bool = False) -> bytes:
        """The bytes of one token as it appears in running text (no space stripping)."""
        key = token if not special else -1 - token
        cached = self._pieces.get(key)
        if cached is None:
            buf = ctypes.create_string_buffer(64)
            n = self._llama_cpp.llama_token_to_piece(self._vocab_ptr, token, buf, 64, 0, special)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = self._llama_cpp.llama_token_to_piece(self._vocab_ptr, token, buf, -n, 0, special)
            cached = self._pieces[key] = buf.raw[:n]
        return cached

    def token_text(self, token: int) -> str:
        """A token's text for display, special tokens (BOS, <|im_start|>) spelled out."""
        return self.piece(token, special=True).decode("utf-8", "replace")

    def is_end_of_turn(self, token: int) -> bool:
        return bool(self._llama_cpp.llama_vocab_is_eog(self._vocab_ptr, token))

    def _chat_formatter(self):
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        meta = self.llm.metadata
        template = meta.get("tokenizer.chat_template")
        if not template:
            return None
        bos = self.token_text(self.llm.token_bos())
        eos = self.token_text(self.llm.token_eos())
        return Jinja2ChatFormatter(template, eos_token=eos, bos_token=bos)

    def format_chat(self, messages: Sequence[Message]) -> str:
        """The prompt text for these messages, by the chat template stored in the GGUF."""
        if self._formatter is None:
            # No template in the file: a plain transcript the model can continue.
            lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
            return "\n".join([*lines, "Assistant:"])
        return self._formatter(messages=list(messages)).prompt

    def chat_tokens(self, messages: Sequence[Message]) -> list[int]:
        prompt = self.format_chat(messages)
        add_bos = bool(self._llama_cpp.llama_vocab_get_add_bos(self._vocab_ptr))
        tokens = self.tokenize(prompt, special=True, add_bos=add_bos)
        if add_bos and len(tokens) > 1 and tokens[0] == tokens[1] == self.llm.token_bos():
            tokens = tokens[1:]  # the template wrote BOS itself
        return tokens

    def fit(self, messages: Sequence[Message], reserve: int) -> tuple[list[Message], list[int], int]:
        """Drop the oldest turns (never the system prompt) until prompt + reserve fits num_ctx."""
        msgs = list(messages)
        dropped = 0
        while True:
            tokens = self.chat_tokens(msgs)
            if len(tokens) + reserve <= self.n_ctx:
                return msgs, tokens, dropped
            first = 1 if msgs and msgs[0]["role"] == "system" else 0
            if len(msgs) - first <= 1:
                raise ContextFullError(
                    f"the message needs {len(tokens)} tokens of context and the reply {reserve} more, "
                    f"but num_ctx is {self.n_ctx}: shorten the message or raise num_ctx"
                )
            # drop the oldest turn: a user message and the reply that follows it
            del msgs[first]
            dropped += 1
            if len(msgs) - first > 1 and msgs[first]["role"] == "assistant":
                del msgs[first]
                dropped += 1

    # --- generation ------------------------------------------------------------------------

    def logits(self) -> NDArray[np.float32]:
        """The next-token logits after the last evaluated token (a view; do not keep it)."""
        ptr = self._llama_cpp.llama_get_logits_ith(self.llm.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))

    def context_ids(self) -> NDArray[np.intc]:
        return self.llm.input_ids[: self.llm.n_tokens]

    def prefill(self, tokens: Sequence[int]) -> int:
        """Evaluate `tokens`, reusing the cached prefix; returns how many were evaluated.

        llama.cpp's logits depend slightly on how a prompt is cut into batches, so a prompt is
        always evaluated in blocks that start at multiples of PREFILL_BLOCK: asked again (or in a
        new chat after another), the same prompt is computed the same way and greedy decoding
        repeats itself exactly. A conversation that continues past the cached prompt (the reply
        and a new message) evaluates only the tokens it adds.
        """
        cached = self.context_ids()
        n = min(len(cached), len(tokens))
        same = 0
        if n:
            diff = np.flatnonzero(cached[:n] != np.asarray(tokens[:n], dtype=cached.dtype))
            same = int(diff[0]) if diff.size else n
        same = min(same, len(tokens) - 1)  # the last prompt token must be evaluated for logits
        if same <= self._canonical:
            block = max(1, min(PREFILL_BLOCK, self.options.num_batch))
            same = same // block * block
            self.llm.n_tokens = same
            for start in range(same, len(tokens), block):
                self.llm.eval(list(tokens[start : start + block]))
            self._canonical = len(tokens)
        else:
            self.llm.n_tokens = same
            self.llm.eval(list(tokens[same:]))
        return len(tokens) - same

    def stream(
        self,
        messages: Sequence[Message],
        params: Parameters,
        cancelled: CancelCheck | None = None,
        chain: Chain | None = None,
    ) -> Iterator[Event]:
        """Stream a reply: Delta events of whole characters, maybe a Notice, then one Done."""
        t0 = time.perf_counter()
        reserve = params.num_predict if params.num_predict > 0 else min(256, self.n_ctx // 4)
        _, tokens, dropped = self.fit(messages, min(reserve, self.n_ctx // 2))
        if dropped:
            yield Notice(
                f"dropped the {dropped} oldest message{'s' if dropped > 1 else ''} "
                f"to fit the context of {self.n_ctx} tokens (num_ctx)"
            )
        seed = params.seed if params.seed >= 0 else secrets.randbits(31)
        if chain is None:
            chain = build_chain(params.sampling(), vocab=self.vocab_for(params), n_vocab=self.n_vocab, seed=seed)
        rng = np.random.default_rng([seed, 1])
        evaluated = self.prefill(tokens)
        yield from self._decode(chain, rng, params, cancelled, t0, len(tokens), evaluated, seed, dropped)

    def vocab_for(self, params: Parameters) -> Vocab | None:
        """The token texts, only when these parameters need them (DRY breakers, logit_bias by text)."""
        return self.vocab if needs_vocab(params.sampling()) else None

    def _decode(
        self,
        chain: Chain,
        rng: np.random.Generator,
        params: Parameters,
        cancelled: CancelCheck | None,
        t0: float,
        n_prompt: int,
        evaluated: int,
        seed: int,
        dropped: int,
    ) -> Iterator[Event]:
        decoder = TextDecoder()
        stops = StopFilter(params.stop)
        text: list[str] = []
        out_tokens: list[int] = []
        t_first = 0.0
        finish: FinishReason = "stop"
        hit_stop = False
        while True:
            if cancelled is not None and cancelled():
                finish = "cancelled"
                break
            token = sample(chain.candidates_after(self.context_ids(), self.logits()), rng)
            if not out_tokens:
                t_first = time.perf_counter()
            if self.is_end_of_turn(token):
                break
            out_tokens.append(token)
            shown, hit_stop = stops.feed(decoder.feed(self.piece(token)))
            if shown:
                text.append(shown)
                yield Delta(shown, len(out_tokens), time.perf_counter() - t_first)
            if hit_stop:
                break
            if 0 < params.num_predict <= len(out_tokens) or self.llm.n_tokens >= self.n_ctx:
                finish = "length"
                break
            self.llm.eval([token])
        if not hit_stop:
            # what was held back as a possible stop string was not one after all
            tail = stops.flush() + decoder.finish()
            if tail:
                text.append(tail)
                yield Delta(tail)
        t_end = time.perf_counter()
        n = len(out_tokens)
        usage = Usage(
            prompt_tokens=n_prompt,
            prompt_eval_tokens=evaluated,
            completion_tokens=n,
            ttft_s=(t_first or t_end) - t0,
            tokens_per_second=(n / (t_end - t_first)) if n and t_end > t_first else 0.0,
            total_s=t_end - t0,
        )
        yield Done("".join(text), finish, usage, seed, dropped, out_tokens)

    def close(self) -> None:
        self.llm.close()


def sample(c: Candidates, rng: np.random.Generator) -> int:
    """Draw one token from softmax of the candidates' logits."""
    finite = np.isfinite(c.logits)
    if finite.sum() == 1:
        return int(c.ids[np.argmax(finite)])
    logits = c.logits[finite]
    ids = c.ids[finite]
    if ids.size == 0:
        return int(c.ids[0])
    weights = np.exp(logits - logits.max(), dtype=np.float64)
    cum = np.cumsum(weights)
    return int(ids[min(int(np.searchsorted(cum, rng.random() * cum[-1], side="right")), ids.size - 1)])
