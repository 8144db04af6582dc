"""What the samplers did to the next-token distribution: before the chain and after each stage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from andon.app.chat import typed_message
from andon.app.engine import Engine, Message

if TYPE_CHECKING:
    from andon.app.engine_client import EngineLike
from andon.presets.parameters import Parameters
from andon.samplers import Candidates, build_chain, softmax


@dataclass
class StageProbabilities:
    """The shown candidates after one stage of the chain (samplers.Stage is the stage itself)."""

    name: str
    kept: int  # candidates with probability > 0 after this stage
    probs: dict[int, float]  # for the tokens shown; a removed token is absent


@dataclass
class Inspection:
    prompt: list[tuple[int, str, bool]]  # id, text, special
    n_vocab: int
    shown: list[int]  # token ids in the order of the table
    texts: dict[int, str]
    stages: list[StageProbabilities]
    temperatures: dict[float, dict[int, float]] = field(default_factory=dict)

    @property
    def final(self) -> StageProbabilities:
        return self.stages[-1]

    def to_wire(self) -> dict[str, Any]:
        """Every value exactly, for `from_wire` in another process (the engine's /andon/inspect)."""
        return {
            "prompt": self.prompt,
            "n_vocab": self.n_vocab,
            "shown": self.shown,
            "texts": {str(t): text for t, text in self.texts.items()},
            "stages": [
                {"name": s.name, "kept": s.kept, "probs": {str(t): p for t, p in s.probs.items()}} for s in self.stages
            ],
            "temperatures": {str(k): {str(t): p for t, p in v.items()} for k, v in self.temperatures.items()},
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Inspection:
        return cls(
            prompt=[(int(i), str(text), bool(special)) for i, text, special in data["prompt"]],
            n_vocab=int(data["n_vocab"]),
            shown=[int(t) for t in data["shown"]],
            texts={int(t): text for t, text in data["texts"].items()},
            stages=[
                StageProbabilities(s["name"], int(s["kept"]), {int(t): float(p) for t, p in s["probs"].items()})
                for s in data["stages"]
            ],
            temperatures={float(k): {int(t): float(p) for t, p in v.items()} for k, v in data["temperatures"].items()},
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "prompt_tokens": [{"id": i, "text": t, "special": s} for i, t, s in self.prompt],
            "n_vocab": self.n_vocab,
            "stages": [{"name": s.name, "kept": s.kept} for s in self.stages],
            "candidates": [
                {"id": t, "text": self.texts[t], "p": {s.name: round(s.probs.get(t, 0.0), 6) for s in self.stages}}
                for t in self.shown
            ],
            "temperatures": {
                str(temp): {str(t): round(p.get(t, 0.0), 6) for t in self.shown}
                for temp, p in self.temperatures.items()
            },
        }


def _probs_of(c: Candidates, tokens: Sequence[int]) -> tuple[int, dict[int, float]]:
    """(candidates with p > 0, p of each of `tokens` still in play)."""
    p = softmax(c.logits)
    which, pos = c.positions(np.asarray(tokens, dtype=np.intc))
    return int(np.count_nonzero(p)), {int(tokens[w]): float(p[i]) for w, i in zip(which, pos, strict=True) if p[i] > 0}


def prompt_tokens(engine: EngineLike, messages: Sequence[Message] | None, raw: str | None) -> list[int]:
    if raw is not None:
        return engine.tokenize(raw, special=True, add_bos=True)
    assert messages is not None
    return engine.chat_tokens(messages)


def inspect_next(
    engine: Engine,
    tokens: Sequence[int],
    params: Parameters,
    top: int = 10,
    temperatures: Sequence[float] = (),
    reply: Sequence[int] = (),
) -> Inspection:
    """The top candidates for the token after `tokens`, through every stage of the chain.

    Under `format` or `grammar` the grammar is the first stage (what it removes, given the
    `reply` tokens written so far, the end of `tokens`): the view of llama.cpp's fallback, where
    the grammar masks the candidates and the chain runs on what is left.
    """
    engine.prefill(tokens)
    logits = np.array(engine.logits(), dtype=np.float32)
    context = np.asarray(tokens, dtype=np.intc)
    seed = params.seed if params.seed >= 0 else 0
    views: list[tuple[str, Candidates]] = []
    chain = build_chain(params.sampling(), vocab=engine.vocab_for(params), n_vocab=engine.n_vocab, seed=seed)
    masked = _grammar_mask(engine, params, reply, logits)
    if masked is not None:
        views.append(("input", chain.candidates(logits)))
    chain.candidates_after(
        context,
        logits if masked is None else masked,
        lambda name, c: views.append(("grammar" if masked is not None and name == "input" else name, c)),
    )
    before = softmax(logits)
    final = views[-1][1]
    final_p = softmax(final.logits)
    top_before = [int(i) for i in np.argsort(-before, kind="stable")[:top]]
    top_after = [int(final.ids[i]) for i in np.argsort(-final_p, kind="stable")[:top] if final_p[i] > 0]
    shown = list(dict.fromkeys([*top_before, *top_after]))
    stages = [StageProbabilities(name, *_probs_of(c, shown)) for name, c in views]
    result = Inspection(
        prompt=[(t, engine.token_text(t), _is_special(engine, t)) for t in tokens],
        n_vocab=engine.n_vocab,
        shown=shown,
        texts={t: engine.token_text(t) for t in shown},
        stages=stages,
    )
    for temp in temperatures:
        result.temperatures[temp] = tempered(logits, temp, shown)
    return result


def _grammar_mask(engine: Engine, params: Parameters, reply: Sequence[int], logits: np.ndarray) -> np.ndarray | None:
    """The logits with what the grammar refuses after `reply` at -inf; None without a grammar,
    or where `reply` is not the start of one of its sentences (written before it was set)."""
    constraint = engine.constraint_for(params)
    if constraint is None:
        return None
    with constraint:
        for token in reply:
            if not constraint.allows(token):
                return None
            constraint.accept(token)
        return constraint.mask(logits)


def tempered(logits: np.ndarray, temperature: float, tokens: Sequence[int]) -> dict[int, float]:
    """Temperature alone on the raw logits (no other sampler), as sampling guides draw it."""
    if temperature <= 0:
        best = int(np.argmax(logits))
        return {t: (1.0 if t == best else 0.0) for t in tokens}
    p = softmax((logits / np.float32(temperature)).astype(np.float32))
    return {t: float(p[t]) for t in tokens}


def _is_special(engine: Engine, token: int) -> bool:
    return engine.piece(token, special=False) == b"" and engine.piece(token, special=True) != b""


# --- rendering for the terminal --------------------------------------------------------------

BAR_WIDTH = 20
_BLOCKS = " ▏▎▍▌▋▊▉█"


def bar(p: float, width: int = BAR_WIDTH) -> str:
    """A horizontal bar of `width` cells for a probability, to 1/8 of a cell."""
    eighths = round(max(0.0, min(1.0, p)) * width * 8)
    full, part = divmod(eighths, 8)
    return ("█" * full + (_BLOCKS[part] if part else "")).ljust(width)


def show_token(text: str) -> str:
    return repr(text)[1:-1] if text.strip() != text or not text.isprintable() else text


def render(result: Inspection, *, with_prompt: bool = True) -> str:
    lines: list[str] = []
    if with_prompt:
        lines.append(f"Prompt: {len(result.prompt)} tokens")
        lines.append("  " + " ".join(f"[{i}]{show_token(t)}" for i, t, _ in result.prompt))
        lines.append("")
    names = [s.name for s in result.stages]
    lines.append(f"Next token: {len(result.shown)} candidates of {result.n_vocab}; probability before the chain "
                 "(input) and after each stage (✗ removed)")  # fmt: skip
    width = max(8, *(len(show_token(result.texts[t])) for t in result.shown)) + 2
    cols = [max(7, len(n)) for n in names]
    header = f"{'token':<{width}}{'id':>7}  " + "  ".join(f"{n:>{w}}" for n, w in zip(names, cols, strict=True))
    lines.append(header + "  final")
    for t in result.shown:
        cells = []
        for s, w in zip(result.stages, cols, strict=True):
            cells.append(f"{s.probs[t] * 100:>{w - 1}.2f}%" if t in s.probs else f"{'✗':>{w}}")
        final = result.final.probs.get(t, 0.0)
        lines.append(f"{show_token(result.texts[t]):<{width}}{t:>7}  " + "  ".join(cells) + f"  {bar(final)}")
    lines.append("")
    lines.append("kept after each stage: " + ", ".join(f"{s.name} {s.kept}" for s in result.stages))
    if result.temperatures:
        lines.append("")
        lines.append("The same candidates under several temperatures (temperature alone, no other sampler):")
        temps = list(result.temperatures)
        lines.append(
            f"{'token':<{width}}{'id':>7}  " + "  ".join(f"{'T=' + format(tt, 'g'):<{BAR_WIDTH + 8}}" for tt in temps)
        )
        for t in result.shown:
            cells = [
                f"{result.temperatures[tt].get(t, 0.0) * 100:6.2f}% {bar(result.temperatures[tt].get(t, 0.0))}"
                for tt in temps
            ]
            lines.append(f"{show_token(result.texts[t]):<{width}}{t:>7}  " + "  ".join(cells))
    return "\n".join(lines)


def first_words(text: str, limit: int = 40) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def as_message(draft: str) -> str | None:
    """The input box's text as the message it would send (None: empty, or a slash command)."""
    text, _ = typed_message(draft)  # as the input box sends it (a multi-line input still open: so far)
    return text if text.strip() and not text.strip().startswith("/") else None


def next_token_prompt(messages: Sequence[Message], draft: str) -> tuple[list[Message], str]:
    """The messages the next token follows, and a title that says what is inspected.

    With text in the input box: the chat, then that text as the user's next message; else the
    chat as it is (its reply is another assistant turn when it ends with one).
    """
    message = as_message(draft)
    if message is not None:
        title = f'Next token after: "{first_words(message)}" (the input box as your next message)'
        return [*messages, {"role": "user", "content": message}], title
    why = "the input box holds a command" if draft.strip() else "the input box is empty"
    if any(m["role"] != "system" for m in messages):
        return list(messages), f"Next token of a reply to the chat as it is ({why})"
    what = "only the system prompt" if messages else "no system prompt either"
    return list(messages), f"Next token of a reply to an empty chat ({what}; {why}: type a message, then F6)"


def inspect_chat(engine: EngineLike, messages: Sequence[Message], reply_tokens: Sequence[int],
                 params: Parameters, position: int | None, draft: str = "") -> str:  # fmt: skip
    """The inspector panel's text: the reply to `draft` (the input box), or token `position` of
    the last reply (`messages` then ends with that reply)."""
    chosen = None
    reply: list[int] = []
    if position is not None and messages and messages[-1]["role"] == "assistant":
        reply = list(reply_tokens[:position])
        context = engine.chat_tokens(messages[:-1], params.think) + reply
        chosen = reply_tokens[position] if position < len(reply_tokens) else None
        title = f"Reply token {position}: the candidates when it was chosen"
    else:
        prompt, title = next_token_prompt(messages, draft)
        context = engine.chat_tokens(prompt, params.think)
    text = render(engine.inspect(context, params, top=10, reply=reply), with_prompt=False)
    if chosen is not None:
        text += f"\nchosen: {engine.token_text(chosen)!r} (id {chosen})"
    return f"{title}\n\n{text}"
