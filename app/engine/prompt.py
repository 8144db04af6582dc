"""The chat prompt: messages to tokens by the model's chat template, and which messages fit."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

import numpy as np
from andon.app.engine.errors import ModelLoadError
from andon.app.engine.reasoning import (
    Markers,
    Think,
    ThinkingSplitter,
    markers_for,
    opens_thinking,
    switches_effort,
    switches_thinking,
    template_variables,
)
from andon.app.engine.tokens import TokenTexts
from numpy.typing import NDArray


class Message(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str


def messages_for(system: str | None, history: Iterable[Message] = (), user: str | None = None) -> list[Message]:
    """The messages of a prompt: the system prompt (if any), the history, the user's new message.

    A history message is its content only: a reply's thinking is never sent back to the model.
    """
    out: list[Message] = [{"role": "system", "content": system}] if system else []
    out.extend(history)
    if user is not None:
        out.append({"role": "user", "content": user})
    return out


class ContextFullError(Exception):
    """The conversation cannot fit in num_ctx even after dropping old turns."""


class ChatTemplateError(ModelLoadError):
    """The model's chat template cannot format the conversation (it is the model's, not the user's)."""


TRANSCRIPT_TURN = "\nUser:"  # where the model, continuing a plain transcript, starts the user's next turn


class ChatPrompt:
    """Messages to prompt text and tokens by the chat template stored in the GGUF.

    Templates differ: one that refuses a system message (Gemma's "System role not supported", or
    "roles must alternate") gets the system prompt folded into the first user message, from then on;
    a file without a template gets a plain transcript the model can continue; a template that fails
    anyway is one ChatTemplateError line.
    """

    def __init__(self, template: str | None, texts: TokenTexts, model_name: str) -> None:
        self.texts = texts
        self.model_name = model_name
        self.folds_system = False
        self._formatter: Any = None
        self._broken: str | None = None  # why the template does not compile (the error's message)
        self.markers: Markers = markers_for(template)  # a reasoning model's thinking markers
        self.switches_thinking = switches_thinking(template)  # `think` false can ask for none
        self.switches_effort = switches_effort(template)  # `think` low/medium/high reach it
        if template:
            try:
                self._formatter = _compile(template, _special_text(texts, texts.bos), _special_text(texts, texts.eos))
            except Exception as exc:  # jinja2's TemplateSyntaxError and the like
                self._broken = str(invalid_template(model_name, exc))

    @property
    def has_template(self) -> bool:
        return self._formatter is not None or self._broken is not None

    def stops(self) -> tuple[str, ...]:
        """Stop strings the prompt's own format needs: a plain transcript ends the reply at the
        next "User:" line, as llama.cpp's reverse prompt did (a template ends turns with a token)."""
        return () if self.has_template else (TRANSCRIPT_TURN,)

    def format(self, messages: Sequence[Message], variables: Mapping[str, Any] | None = None) -> str:
        """The prompt text, ending where the assistant's reply begins; where the last message is the
        assistant's, inside it (a reply continued, as Ollama and llama-server continue one).

        `variables` go to the template as they are (e.g. Qwen3's `enable_thinking`).
        """
        if not self.has_template:
            lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
            ends_open = bool(messages) and messages[-1]["role"] == "assistant"
            return "\n".join(lines if ends_open else [*lines, "Assistant:"])  # the model writes TRANSCRIPT_TURN next
        return self._continued(self._templated(messages, variables), messages)

    def _continued(self, text: str, messages: Sequence[Message]) -> str:
        """The prompt cut right after the last message's text when it is the assistant's (the way
        transformers' `continue_final_message` cuts it): the model goes on writing that message."""
        last = messages[-1] if messages else None
        content = last["content"].strip() if last is not None and last["role"] == "assistant" else ""
        if not content:
            return text
        end = text.rfind(content)
        if end < 0:
            raise ChatTemplateError(
                f"the chat template of {self.model_name} changes a reply's text: it cannot be continued"
            )
        return text[: end + len(content)]

    def _templated(self, messages: Sequence[Message], variables: Mapping[str, Any] | None) -> str:
        if self._broken is not None:
            raise ChatTemplateError(self._broken)
        folded = fold_system(messages)
        try:
            return self._render(folded if self.folds_system else messages, variables)
        except Exception as exc:  # a template is the model's code: any failure is one line
            if self.folds_system or folded == list(messages):
                raise self._error(exc) from None
            try:
                text = self._render(folded, variables)
            except Exception:
                raise self._error(exc) from None
            self.folds_system = True
            return text

    def tokens(self, messages: Sequence[Message], variables: Mapping[str, Any] | None = None) -> list[int]:
        texts = self.texts
        add_bos = texts.adds_bos
        tokens = texts.tokenize(self.format(messages, variables), special=True, add_bos=add_bos)
        if add_bos and len(tokens) > 1 and tokens[0] == tokens[1] == texts.bos:
            tokens = tokens[1:]  # the template wrote BOS itself
        return tokens

    def variables(self, think: Think) -> dict[str, Any]:
        """What the template is given besides the messages: `enable_thinking` (`think`), and
        `reasoning_effort` for a level, as llama.cpp's server gives every template (Ollama's
        chat_template_kwargs); one that does not read them ignores them."""
        return dict(template_variables(think))

    def splitter(self, prompt: Sequence[int], begins_as_answer: bool = False) -> ThinkingSplitter:
        """A reply's thinking splitter for this prompt: it begins inside thinking when the prompt's
        end opened the template's start marker (unless told the reply begins as the answer, as
        under a grammar, which governs the reply from its first token)."""
        tail = b"".join(self.texts.piece(t, special=True) for t in prompt[-16:]).decode("utf-8", "replace")
        marker_tokens = {tokens[0] for m in (self.markers.start, self.markers.end)
                         if len(tokens := self.texts.tokenize(m, special=True)) == 1}  # fmt: skip
        inside = not begins_as_answer and opens_thinking(tail, self.markers)
        return ThinkingSplitter(self.markers, inside, frozenset(marker_tokens))

    def _render(self, messages: Sequence[Message], variables: Mapping[str, Any] | None) -> str:
        return self._formatter(messages=list(messages), **(variables or {})).prompt

    def _error(self, exc: Exception) -> ChatTemplateError:
        reason = template_reason(exc)
        return ChatTemplateError(f"the chat template of {self.model_name} cannot format this conversation: {reason}")


def template_reason(exc: BaseException) -> str:
    """Why a chat template failed, as one line: jinja2's message (or the template's own, from
    raise_exception), and the template's line where jinja2 tells it."""
    reason = " ".join(str(exc).split()) or type(exc).__name__
    line = getattr(exc, "lineno", None)
    return f"{reason} (line {line} of the template)" if line else reason


def invalid_template(model_name: str, exc: BaseException) -> ChatTemplateError:
    """The error for a chat template that does not compile (as the model loads, or here)."""
    return ChatTemplateError(f"the chat template of {model_name} is not valid: {template_reason(exc)}")


def fold_system(messages: Sequence[Message]) -> list[Message]:
    """The system prompt moved into the first user message, for templates without a system role."""
    msgs = list(messages)
    if not msgs or msgs[0]["role"] != "system":
        return msgs
    system, rest = msgs[0]["content"], msgs[1:]
    if rest and rest[0]["role"] == "user":
        return [{"role": "user", "content": f"{system}\n\n{rest[0]['content']}"}, *rest[1:]]
    return [{"role": "user", "content": system}, *rest]


def _compile(template: str, bos: str, eos: str) -> Any:
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    return Jinja2ChatFormatter(template, eos_token=eos, bos_token=bos)


def _special_text(texts: TokenTexts, token: int) -> str:
    return texts.token_text(token) if 0 <= token < texts.n_vocab else ""


# --- fitting the context --------------------------------------------------------------------------


@dataclass
class Fitted:
    messages: list[Message]
    tokens: list[int]
    dropped: int  # how many of the oldest messages were left out


class PromptFitter:
    """Which messages make the prompt once a chat outgrows num_ctx.

    The oldest turns go first, never the system prompt nor the last message. A drop leaves the
    prompt at `keep_after_drop` of what the context can hold, and the turns after it keep the same
    first message while they fit: their prompt begins as the cached one did, so a turn evaluates
    only what it adds (llama.cpp's context shift discards half of the context for the same reason).
    Dropping only what is needed (keep_after_drop 1) would start the prompt one turn later at
    every turn, and every turn would evaluate the whole prompt again.
    """

    def __init__(self, prompt: ChatPrompt, n_ctx: int, keep_after_drop: float = 0.5) -> None:
        self.prompt = prompt
        self.n_ctx = n_ctx
        self.keep_after_drop = keep_after_drop
        self._dropped = 0  # what the last fit dropped

    def fit(
        self,
        messages: Sequence[Message],
        reserve: int,
        cached: Sequence[int] | NDArray[np.intc] = (),
        variables: Mapping[str, Any] | None = None,
    ) -> Fitted:
        """The messages whose prompt leaves `reserve` tokens of num_ctx for the reply.

        `cached`: the tokens in the KV cache, to prefer a prompt that reuses them; `variables`:
        the template's (ChatPrompt.variables).
        """
        msgs = list(messages)
        budget = self.n_ctx - reserve
        first = 1 if msgs and msgs[0]["role"] == "system" else 0
        tokens = _Cuts(self.prompt, msgs, first, variables)
        if len(tokens(first)) <= budget:
            self._dropped = 0
            return Fitted(msgs, tokens(first), 0)
        cuts = [c for c in range(first + 1, len(msgs)) if msgs[c]["role"] != "assistant" or c == len(msgs) - 1]
        smallest = tokens.first_fitting(cuts, budget)
        if smallest is None:
            need = len(tokens(cuts[-1] if cuts else first))
            raise ContextFullError(
                f"the message needs {need} tokens of context and the reply {reserve} more, "
                f"but num_ctx is {self.n_ctx}: shorten the message or raise num_ctx"
            )
        choice = smallest
        if self.keep_after_drop < 1:
            later = cuts[cuts.index(smallest) :]
            choice = tokens.first_fitting(later, int(budget * self.keep_after_drop)) or later[-1]
            previous = first + self._dropped
            if previous in later and tokens.cost(previous, cached) < tokens.cost(choice, cached):
                choice = previous
        self._dropped = choice - first
        return Fitted(tokens.messages(choice), tokens(choice), choice - first)


class _Cuts:
    """The prompt tokens when the messages before index `cut` (after the system prompt) are left out."""

    def __init__(
        self, prompt: ChatPrompt, msgs: list[Message], first: int, variables: Mapping[str, Any] | None = None
    ) -> None:
        self.prompt, self.msgs, self.first, self.variables = prompt, msgs, first, variables
        self._tokens: dict[int, list[int]] = {}

    def messages(self, cut: int) -> list[Message]:
        return self.msgs[: self.first] + self.msgs[cut:]

    def __call__(self, cut: int) -> list[int]:
        if cut not in self._tokens:
            self._tokens[cut] = self.prompt.tokens(self.messages(cut), self.variables)
        return self._tokens[cut]

    def first_fitting(self, cuts: Sequence[int], limit: int) -> int | None:
        """The first cut whose prompt has at most `limit` tokens (a binary search: fewer
        messages never make a longer prompt)."""
        lo, hi = 0, len(cuts)
        while lo < hi:
            mid = (lo + hi) // 2
            if len(self(cuts[mid])) <= limit:
                hi = mid
            else:
                lo = mid + 1
        return cuts[lo] if lo < len(cuts) else None

    def cost(self, cut: int, cached: Sequence[int] | NDArray[np.intc]) -> int:
        """Tokens to evaluate for this prompt when the cache holds `cached`."""
        tokens = self(cut)
        n = min(len(tokens), len(cached))
        if not n:
            return len(tokens)
        diff = np.flatnonzero(np.asarray(cached[:n]) != np.asarray(tokens[:n]))
        return len(tokens) - (int(diff[0]) if diff.size else n)
