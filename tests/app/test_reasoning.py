"""A reasoning model's thinking told apart from its answer while the reply streams (app/engine/reasoning.py),
and in one reply (generation.Reply): stop strings look at the answer only."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from andon.app.engine.generation import Delta, Done, PromptStats, Reply
from andon.app.engine.reasoning import (
    THINK,
    Markers,
    Split,
    ThinkingSplitter,
    markers_for,
    opens_thinking,
    split_all,
    switches_thinking,
)
from andon.presets import Parameters
from andon.samplers import build_chain
from hypothesis import given
from hypothesis import strategies as st

QWEN_REPLY = "<think>\nThe user asks for Japan's capital. It is Tokyo.\n</think>\n\nThe capital of Japan is Tokyo."
THOUGHT = "The user asks for Japan's capital. It is Tokyo."
ANSWER = "The capital of Japan is Tokyo."


def pieces_at(text: str, *cuts: int) -> list[str]:
    edges = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(edges)]


def test_a_thinking_reply_is_split_into_thinking_and_answer():
    assert split_all([QWEN_REPLY], ThinkingSplitter()) == Split(THOUGHT, ANSWER)


def test_markers_split_across_pieces_at_every_position_give_the_same_split():
    for i in range(len(QWEN_REPLY) + 1):
        for j in range(i, min(i + 12, len(QWEN_REPLY)) + 1):  # every cut, and every piece up to 12 characters
            assert split_all(pieces_at(QWEN_REPLY, i, j), ThinkingSplitter()) == (THOUGHT, ANSWER), (i, j)


def test_one_character_at_a_time_streams_thinking_before_any_answer():
    splitter = ThinkingSplitter()
    parts = [splitter.feed(c) for c in QWEN_REPLY] + [splitter.finish()]
    thinking = "".join(p.thinking for p in parts)
    assert thinking.strip() == THOUGHT and "<" not in thinking and ">" not in thinking  # no marker leaks
    first_answer = next(i for i, p in enumerate(parts) if p.answer)
    assert all(not p.thinking for p in parts[first_answer:])
    assert "".join(p.answer for p in parts) == ANSWER  # the blank lines after </think> are dropped


def test_a_reply_without_thinking_is_all_answer_unchanged():
    for reply in ["Hello there.", "  Indented\ncode", "<b>bold</b>", "<", "<thinking about it", ""]:
        assert split_all(pieces_at(reply, len(reply) // 2), ThinkingSplitter()) == ("", reply)


def test_a_marker_later_in_the_answer_is_text():
    reply = "Models write <think>...</think> first."
    assert split_all([reply], ThinkingSplitter()) == ("", reply)


def test_an_unclosed_thinking_is_all_thinking_and_no_answer():
    """A reply cut by num_predict (or stopped) while it thinks."""
    assert split_all(["<think>Let me see. First", " </thi"], ThinkingSplitter()) == ("Let me see. First </thi", "")


def test_a_reply_that_begins_inside_thinking_when_the_prompt_opened_it():
    """DeepSeek-R1's generation prompt ends with `<think>\\n`: the reply is thinking until `</think>`."""
    reply = "Okay, so 2+2.\n</think>\n\n4"
    assert split_all(pieces_at(reply, 5, 17), ThinkingSplitter(thinking=True)) == ("Okay, so 2+2.", "4")
    assert split_all(["no end"], ThinkingSplitter(thinking=True)) == ("no end", "")


def test_a_template_s_own_markers():
    seed = ThinkingSplitter(Markers("<seed:think>", "</seed:think>"))
    assert split_all(["<seed:thi", "nk>plan</seed:", "think>Done."], seed) == ("plan", "Done.")


@given(st.text(alphabet="<>/thinkab \n", max_size=40), st.lists(st.integers(0, 40), max_size=4))
def test_any_way_of_cutting_a_reply_into_pieces_gives_the_same_split(text, cuts):
    cuts = sorted(min(c, len(text)) for c in cuts)
    whole = split_all([text], ThinkingSplitter())
    assert split_all(pieces_at(text, *cuts), ThinkingSplitter()) == whole
    assert split_all(pieces_at(text, *cuts), ThinkingSplitter(thinking=True)) == split_all(
        [text], ThinkingSplitter(thinking=True)
    )


# --- what the chat template says ------------------------------------------------------------------

QWEN3_TAIL = (
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}{%- endif %}"
)


def test_markers_and_the_switch_come_from_the_template():
    assert markers_for(None) == THINK and markers_for("{{ messages }}") == THINK
    assert markers_for("{{ '<think>' }} ... {{ '</think>' }}") == THINK
    assert markers_for("<seed:think> ... </seed:think>") == Markers("<seed:think>", "</seed:think>")
    assert markers_for("[THINK] ... [/THINK]") == Markers("[THINK]", "[/THINK]")
    assert switches_thinking(QWEN3_TAIL) and not switches_thinking("{{ messages }}") and not switches_thinking(None)


def test_a_prompt_that_ends_inside_thinking():
    assert opens_thinking("<｜Assistant｜><think>\n", THINK)
    assert not opens_thinking("<|im_start|>assistant\n", THINK)
    assert not opens_thinking("<|im_start|>assistant\n<think>\n\n</think>\n\n", THINK)  # Qwen3, think false
    assert not opens_thinking("<think>x</think>\n<|im_start|>assistant\n", THINK)


# --- one reply: generation.Reply with thinking ----------------------------------------------------


@dataclass
class ScriptTexts:
    """A vocabulary of the script's pieces (token i is piece i), and an end-of-turn token after them."""

    script: list[str]

    def piece(self, token: int, *, special: bool = False) -> bytes:
        return self.script[token].encode()

    def is_end_of_turn(self, token: int) -> bool:
        return token == len(self.script)


@dataclass
class ScriptContext:
    """A context whose logits make the script's next token (then end of turn) the only likely one."""

    n_vocab: int
    n_tokens: int = 0
    n_ctx: int = 4096

    def append(self, tokens: list[int]) -> None:
        self.n_tokens += len(tokens)

    def ids(self) -> np.ndarray:
        return np.arange(self.n_tokens, dtype=np.intc)

    def logits(self) -> np.ndarray:
        out = np.zeros(self.n_vocab, dtype=np.float32)
        out[min(self.n_tokens, self.n_vocab - 1)] = 100.0
        return out


def reply_events(script: list[str], settings: dict, reasoning: ThinkingSplitter | None) -> list:
    params = Parameters.of({"temperature": 0.0, **settings})
    n_vocab = len(script) + 1
    chain = build_chain(params.sampling(), n_vocab=n_vocab, seed=1)
    reply = Reply(ScriptContext(n_vocab), ScriptTexts(script), chain, params, 1, PromptStats(3, 3),  # type: ignore[arg-type]
                  reasoning=reasoning)  # fmt: skip
    return list(reply.events())


SCRIPT = ["<", "think", ">\n", "Stop", " here? No", ".\n</", "think", ">\n\n", "Answer", ": done", " here", "!"]


def test_a_reply_s_thinking_travels_apart_and_stop_strings_look_at_the_answer_only():
    events = reply_events(SCRIPT, {"stop": ["here"]}, ThinkingSplitter())
    done = events[-1]
    assert isinstance(done, Done)
    assert done.thinking == "Stop here? No."  # "here" in the thinking does not end the reply
    assert done.text == "Answer: done " and done.finish_reason == "stop"  # it ends the answer
    deltas = [e for e in events if isinstance(e, Delta)]
    assert "".join(d.thinking for d in deltas).strip() == done.thinking
    assert "".join(d.text for d in deltas) == done.text
    assert all(not d.text for d in deltas if d.thinking)  # nothing of the answer comes before the thinking ends


def test_a_reply_cut_while_thinking_keeps_its_thinking_and_has_no_answer():
    *_, done = reply_events(SCRIPT, {"num_predict": 5}, ThinkingSplitter())
    assert isinstance(done, Done) and done.finish_reason == "length"
    assert (done.thinking, done.text) == ("Stop here? No", "")


def test_a_reply_ends_at_end_of_turn_with_its_whole_answer():
    *_, done = reply_events(SCRIPT, {}, ThinkingSplitter())
    assert (done.thinking, done.text, done.finish_reason) == ("Stop here? No.", "Answer: done here!", "stop")


def test_without_a_splitter_the_reply_is_its_text_as_before():
    *_, done = reply_events(SCRIPT, {}, None)
    assert isinstance(done, Done) and done.text == "".join(SCRIPT) and done.thinking == ""
