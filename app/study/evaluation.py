"""Preset comparison (diversity) and factual evaluation (accuracy) on the local model."""

from __future__ import annotations

import json
import re
import secrets
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

import sacrebleu
from andon.app.engine.engine import Done, Message, ReplyNotice, messages_for

if TYPE_CHECKING:
    from andon.app.engine.client import EngineLike
from andon.presets.commands import apply
from andon.presets.parameters import Parameters


def run_reply(
    engine: EngineLike, messages: Sequence[Message], params: Parameters, notices: list[str] | None = None
) -> Done:
    """The reply's end; what the engine says of the reply (its notices) goes into `notices`."""
    for event in engine.stream(messages, params):
        if isinstance(event, ReplyNotice) and notices is not None:
            notices.append(event.text)
        elif isinstance(event, Done):
            return event
    raise RuntimeError("the engine ended without a reply")


# --- diversity -------------------------------------------------------------------------------


TOKENIZERS = ("13a", "char", "zh", "ja-mecab", "intl", "none")
_KANA = re.compile(r"[\u3040-\u30ff]")  # hiragana, katakana
_HAN = re.compile(r"[\u4e00-\u9fff]")


def tokenizer_for(texts: Sequence[str]) -> str:
    """sacrebleu's tokenizer for the texts' script: Japanese (kana) 'ja-mecab' where MeCab is
    installed, else 'char'; Chinese (Han without kana) 'zh'; anything else '13a' (BLEU's default)."""
    joined = "".join(texts)
    if _KANA.search(joined):
        try:
            import MeCab  # noqa: F401  (sacrebleu's ja-mecab needs mecab-python3 and ipadic)

            return "ja-mecab"
        except ImportError:
            return "char"
    return "zh" if _HAN.search(joined) else "13a"


def self_bleu(texts: Sequence[str], tokenize: str | None = None) -> float:
    """Mean BLEU of each text against all the others (sacrebleu's sentence_bleu, the others as
    references); lower is more diverse. `tokenize`: sacrebleu's tokenizer (default by script)."""
    if len(texts) < 2:
        return 0.0
    tok = tokenize or tokenizer_for(texts)
    scores = []
    for i, hypothesis in enumerate(texts):
        others = [t for j, t in enumerate(texts) if j != i]
        scores.append(sacrebleu.sentence_bleu(hypothesis, others, tokenize=tok).score)
    return statistics.fmean(scores)


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Unique n-grams over all n-grams across the texts (Li et al., 2016)."""
    grams = [tuple(words[i : i + n]) for words in (t.lower().split() for t in texts) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


@dataclass
class PresetRun:
    preset: str
    seeds: list[int]
    replies: list[str]
    tokens: list[int]
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def figures(self) -> dict[str, float]:
        return {
            "self_bleu": round(self_bleu(self.replies), 2),
            "distinct_1": round(distinct_n(self.replies, 1), 4),
            "distinct_2": round(distinct_n(self.replies, 2), 4),
            "mean_tokens": round(statistics.fmean(self.tokens), 1) if self.tokens else 0.0,
        }

    def to_json(self) -> dict[str, Any]:
        return {"preset": self.preset, **self.figures, "seeds": self.seeds, "replies": self.replies,
                "parameters": self.parameters}  # fmt: skip


def compare(
    engine: EngineLike,
    prompt: str,
    runs: Sequence[tuple[str, Parameters, str]],  # preset name, parameters, system prompt
    n: int,
    base_seed: int | None = None,
    progress: Callable[[str, int], None] | None = None,
    notices: list[str] | None = None,
) -> list[PresetRun]:
    """n replies per preset; reply i of every preset uses seed base_seed + i (recorded); what the
    engine says of them goes into `notices`."""
    base = secrets.randbits(30) if base_seed is None else base_seed
    seeds = [base + i for i in range(n)]
    out = []
    for name, params, system in runs:
        run = PresetRun(name, seeds, [], [], params.to_plain(sorted(params.changed())))
        for i, seed in enumerate(seeds):
            done = run_reply(engine, messages_for(system, (), prompt), apply(params, {"seed": seed}), notices)
            run.replies.append(done.text)
            run.tokens.append(done.usage.completion_tokens)
            if progress:
                progress(name, i + 1)
        out.append(run)
    return out


# --- factual accuracy ------------------------------------------------------------------------


@dataclass(frozen=True)
class Question:
    question: str
    answers: tuple[str, ...]
    topic: str

    def accepts(self, reply: str) -> bool:
        """Any accepted answer appears in the reply as whole words, ignoring case."""
        text = _normal(reply)
        return any(re.search(rf"(?<!\w){re.escape(_normal(a))}(?!\w)", text) for a in self.answers)


def _normal(text: str) -> str:
    return " ".join(text.lower().replace("-", " ").replace("’", "'").split())


def questions() -> list[Question]:
    data = json.loads((resources.files("andon.app") / "data" / "questions.json").read_text("utf-8"))
    return [Question(q["question"], tuple(q["answers"]), q["topic"]) for q in data]


@dataclass
class EvalResult:
    preset: str
    correct: list[bool]
    replies: list[str]
    seed: int

    @property
    def accuracy(self) -> float:
        return sum(self.correct) / len(self.correct) if self.correct else 0.0


def evaluate(
    engine: EngineLike,
    runs: Sequence[tuple[str, Parameters, str]],
    qs: Sequence[Question],
    seed: int = 1,
    max_tokens: int = 48,
    progress: Callable[[str, int], None] | None = None,
    notices: list[str] | None = None,
) -> list[EvalResult]:
    results = []
    for name, params, system in runs:
        p = apply(params, {"seed": seed, "num_predict": min(max_tokens, params.num_predict)
                           if params.num_predict > 0 else max_tokens})  # fmt: skip
        result = EvalResult(name, [], [], seed)
        for i, q in enumerate(qs):
            text = run_reply(engine, messages_for(system, (), q.question), p, notices).text
            result.replies.append(text)
            result.correct.append(q.accepts(text))
            if progress:
                progress(name, i + 1)
        results.append(result)
    return results
