"""Reasoning models: the thinking a reply writes before its answer, told apart while it streams.

Qwen3, DeepSeek-R1 distills and others write `<think>...</think>` (or their template's own
markers) before the answer. As llama.cpp's server (common/chat.cpp, reasoning_format "auto") and
Ollama's thinking parser do, only a reply that *begins* with the start marker (after whitespace)
is thinking; a reply may also begin inside it, when the template's generation prompt already
opened it (DeepSeek-R1's ends with `<think>\\n`). Whitespace right after either marker is dropped.
A marker written later in the answer is the answer's text.

The chat template decides three things here: which markers (`markers_for`), whether `think`
can switch reasoning off (a template that reads `enable_thinking`, as Qwen3's does), and whether
`think`'s levels (low, medium, high) reach it (a template that reads `reasoning_effort`, as
gpt-oss's does; llama-server and Ollama pass the level to it by that name).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, NamedTuple


@dataclass(frozen=True)
class Markers:
    start: str
    end: str


THINK = Markers("<think>", "</think>")
# Marker pairs of known templates, the most specific first; `<think>` when a template names none.
KNOWN_MARKERS = (
    Markers("<seed:think>", "</seed:think>"),  # Seed-OSS
    Markers("<|START_THINKING|>", "<|END_THINKING|>"),  # Command A Reasoning
    Markers("[THINK]", "[/THINK]"),  # Magistral
    Markers("◁think▷", "◁/think▷"),  # Kimi
    THINK,
)
SWITCH = "enable_thinking"  # the template variable llama.cpp and Qwen3's templates use
EFFORT = "reasoning_effort"  # the one gpt-oss's template reads for think's level
Think = bool | str  # `think`: on, off, or a level (low, medium, high), which is on
# think_budget: written for the model when its thinking reaches the budget, before the end marker
TRANSITION = "\n\nOkay, time to answer.\n"


def markers_for(template: str | None) -> Markers:
    """The reasoning markers a chat template names (both of a known pair), else `<think>`."""
    for markers in KNOWN_MARKERS:
        if template and markers.start in template and markers.end in template:
            return markers
    return THINK


def switches_thinking(template: str | None) -> bool:
    """Whether the template reads `enable_thinking`, so `think` false can ask for no reasoning."""
    return bool(template) and SWITCH in (template or "")


def switches_effort(template: str | None) -> bool:
    """Whether the template reads `reasoning_effort`, so `think` low/medium/high reaches it."""
    return bool(template) and EFFORT in (template or "")


def template_variables(think: Think) -> dict[str, Think]:
    """What a template is given for `think`, as llama-server's chat_template_kwargs from Ollama:
    `enable_thinking` (a level is on), and `reasoning_effort` when `think` is a level."""
    return {SWITCH: bool(think), EFFORT: think} if isinstance(think, str) else {SWITCH: think}


def opens_thinking(prompt_tail: str, markers: Markers) -> bool:
    """Whether the prompt ends inside a thinking block its template opened (only whitespace after
    the last start marker, and no end marker): the reply then begins as thinking."""
    at = prompt_tail.rfind(markers.start)
    return at >= 0 and not prompt_tail[at + len(markers.start) :].strip()


class Split(NamedTuple):
    thinking: str
    answer: str


State = Literal["start", "opened", "thinking", "closed", "answer"]


@dataclass
class ThinkingSplitter:
    """Feed a reply's text as it streams; get back what of it is thinking and what is answer.

    Text that may still turn out to be a marker (`<thi` at the start, `</th` while thinking) is
    held until the next piece tells; `finish()` gives back what is held when the reply ends.
    `marker_tokens`: tokens whose text is a marker, which a reply must show even when they are
    special (control) tokens.
    """

    markers: Markers = THINK
    thinking: bool = False  # the reply begins inside thinking (the prompt opened it)
    marker_tokens: frozenset[int] = frozenset()
    state: State = field(init=False)
    held: str = field(init=False, default="")

    def __post_init__(self) -> None:
        self.state = "opened" if self.thinking else "start"

    def feed(self, text: str) -> Split:
        thought: list[str] = []
        answer: list[str] = []
        self.held += text
        while self.held and self._step(thought, answer):
            pass
        return Split("".join(thought), "".join(answer))

    def finish(self) -> Split:
        """The reply ended: what was held is what it looked like (an unclosed thinking stays thinking)."""
        held, self.held = self.held, ""
        if self.state == "thinking":
            return Split(held, "")
        if self.state in ("start", "answer"):
            return Split("", held)
        return Split("", "")  # whitespace after a marker

    def _step(self, thought: list[str], answer: list[str]) -> bool:
        """Move through `held` once; False when the rest must wait for more text."""
        held, start, end = self.held, self.markers.start, self.markers.end
        if self.state == "start":
            rest = held.lstrip()
            if rest.startswith(start):
                self.held, self.state = rest[len(start) :], "opened"
                return True
            if start.startswith(rest):
                return False  # whitespace, or the start of the marker so far
            self.state = "answer"
            return True
        if self.state in ("opened", "closed"):
            rest = held.lstrip()
            self.held = rest
            if rest:
                self.state = "thinking" if self.state == "opened" else "answer"
            return bool(rest)
        if self.state == "thinking":
            at = held.find(end)
            if at >= 0:
                thought.append(held[:at])
                self.held, self.state = held[at + len(end) :], "closed"
                return True
            keep = _partial_suffix(held, end)
            thought.append(held[: len(held) - keep])
            self.held = held[len(held) - keep :]
            return False
        answer.append(held)
        self.held = ""
        return False


def _partial_suffix(text: str, marker: str) -> int:
    """The length of the longest end of `text` that begins `marker` (shorter than the marker)."""
    for k in range(min(len(marker) - 1, len(text)), 0, -1):
        if text.endswith(marker[:k]):
            return k
    return 0


def split_all(pieces: Iterable[str], splitter: ThinkingSplitter) -> Split:
    """Thinking and answer of a whole reply given as pieces (the thinking without its edges' whitespace)."""
    thought: list[str] = []
    answer: list[str] = []
    for part in [*(splitter.feed(p) for p in pieces), splitter.finish()]:
        thought.append(part.thinking)
        answer.append(part.answer)
    return Split("".join(thought).strip(), "".join(answer))
