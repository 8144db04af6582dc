"""What the samplers did to the next-token distribution: before the chain and after each stage,
computed where the model is (the engine process); andon.app.study.inspector shows it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from andon.presets.bans import Bans
from andon.presets.parameters import Parameters
from andon.samplers import Candidates, build_chain, softmax

if TYPE_CHECKING:
    from andon.app.engine.engine import Engine


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


def inspect_next(
    engine: Engine,
    tokens: Sequence[int],
    params: Parameters,
    top: int = 10,
    temperatures: Sequence[float] = (),
    reply: Sequence[int] = (),
) -> Inspection:
    """The top candidates for the token after `tokens`, through every stage of the chain.

    Masks come first, in the order a reply applies them, each a stage of its own: `bans` (with
    banned_strings: the tokens that would complete a banned phrase after the `reply` tokens written
    so far, which a reply rewinds from), then `grammar` (under `format` or `grammar`: what it
    removes after `reply`, the view of llama.cpp's fallback, where the grammar masks the
    candidates and the chain runs on what is left).
    """
    engine.prefill(tokens)
    logits = np.array(engine.logits(), dtype=np.float32)
    context = np.asarray(tokens, dtype=np.intc)
    seed = params.seed if params.seed >= 0 else 0
    views: list[tuple[str, Candidates]] = []
    chain = build_chain(params.sampling(), vocab=engine.vocab_for(params), n_vocab=engine.n_vocab, seed=seed)
    masks = _masks(engine, params, reply, logits)
    if masks:
        views.append(("input", chain.candidates(logits)))
        views.extend((name, chain.candidates(masked)) for name, masked in masks[:-1])
    last = masks[-1] if masks else ("input", logits)
    chain.candidates_after(context, last[1], lambda name, c: views.append((last[0] if name == "input" else name, c)))
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


def _masks(
    engine: Engine, params: Parameters, reply: Sequence[int], logits: np.ndarray
) -> list[tuple[str, np.ndarray]]:
    """The masks a reply applies before the chain, each over the one before: (stage name, logits)."""
    out: list[tuple[str, np.ndarray]] = []
    banned = _banned(engine, params, reply)
    if banned:
        logits = logits.copy()
        logits[banned] = -np.inf
        out.append(("bans", logits))
    masked = _grammar_mask(engine, params, reply, logits)
    if masked is not None:
        out.append(("grammar", masked))
    return out


def _banned(engine: Engine, params: Parameters, reply: Sequence[int]) -> list[int]:
    """With banned_strings: the tokens that would complete a banned phrase after `reply`."""
    bans = Bans.of(params.banned_strings)
    if bans is None:
        return []
    text = b"".join(engine.piece(t) for t in reply).decode("utf-8", "ignore")
    return bans.completed_by(text, engine.vocab.texts)


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
