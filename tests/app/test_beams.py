"""Beam search (app/engine/beams.py): the same beams as a plain reference beam search in numpy over
the very logits llama.cpp gave (recorded per prefix), and the refusals of bad combinations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from andon.app.cli.main import main
from andon.app.engine.beams import BeamSearch, shaper
from andon.app.engine.generation import Done
from andon.app.engine.sequences import Sequences
from andon.presets.parameters import ParameterError, Parameters


class Recorded(Sequences):
    """Sequences that keep the logits they return, by the tokens the sequence holds."""

    seen: dict[tuple[int, ...], np.ndarray]

    def fill(self, seq, tokens, cancelled=None):
        out = super().fill(seq, tokens, cancelled)
        self.seen = {tuple(self.tokens[seq]): out}
        return out

    def step(self, next_tokens):
        out = super().step(next_tokens)
        self.seen |= {tuple(self.tokens[s]): v for s, v in out.items()}
        return out


def reference(seen, prompt, is_end, k, max_tokens, length_penalty=1.0):
    """Textbook beam search (transformers' rules) over recorded logits: a list of (score, tokens)."""

    def logp(x):
        x = x.astype(np.float64)
        return x - (x.max() + math.log(np.exp(x - x.max()).sum()))

    beams: list[tuple[tuple[int, ...], float]] = [((), 0.0)]
    done: list[tuple[float, tuple[int, ...]]] = []
    for length in range(1, max_tokens + 1):
        pairs = []
        for b, (toks, total) in enumerate(beams):
            lp = logp(seen[tuple(prompt) + toks])
            pairs += [(-(total + lp[t]), b, t) for t in range(lp.shape[0])]
        pairs.sort()
        nxt = []
        for rank, (neg, b, t) in enumerate(pairs[: 2 * k]):
            if is_end(t):
                if rank < k:
                    done.append((-neg / length**length_penalty, beams[b][0]))
                    done = sorted(done, reverse=True)[:k]
            else:
                nxt.append((beams[b][0] + (t,), -neg))
            if len(nxt) == k:
                break
        best = -pairs[0][0]
        if len(done) == k and min(d[0] for d in done) >= best / length**length_penalty:
            return done
        beams = nxt
    done += [(total / len(toks) ** length_penalty, toks) for toks, total in beams]
    return sorted(done, reverse=True)[:k]


@pytest.mark.model
@pytest.mark.parametrize(("question", "k"), [("Name a colour.", 3), ("What is 2+2? One word.", 2)])
def test_beams_equal_a_reference_beam_search_over_the_same_logits(engine, question, k):
    prompt = engine.chat_tokens([{"role": "user", "content": question}])
    params = Parameters.of({"num_beams": k})
    with Recorded(engine.llm, k, len(prompt) + k * 8 + 16) as seqs:
        search = BeamSearch(seqs, prompt, shaper(engine, params), engine.is_end_of_turn, num_beams=k, max_tokens=6)
        list(search.steps())
        expected = reference(seqs.seen, prompt, engine.is_end_of_turn, k, 6)
    got = search.hypotheses.best_first()
    assert [h.tokens for h in got] == [tuple(t) for _, t in expected]
    assert [h.score for h in got] == pytest.approx([s for s, _ in expected], abs=1e-6)


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"num_beams": 0}, "num_beams: 0 is not allowed"),
        ({"num_beams": 1000}, "num_beams: 1000 is not allowed"),
        ({"num_beams": 4, "draft": "ngram"}, "cannot be used with draft"),
        ({"num_beams": 4, "mbr_samples": 4}, "cannot be used together"),
    ],
)
def test_bad_combinations_are_one_line(values, words):
    with pytest.raises(ParameterError, match=words) as err:
        Parameters.of(values)
    assert "\n" not in str(err.value)


def test_ask_refuses_beams_with_draft_and_exits_2(capsys):
    assert main(["ask", "--set", "num_beams=4", "--set", "draft=ngram", "hi"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("andon: ") and "draft" in err[0]


def test_beams_over_a_draft_preset_leave_the_preset_as_it_was():
    base = Parameters.of({"draft": "ngram"})
    with pytest.raises(ParameterError):
        Parameters.of({"num_beams": 2}, base=base)
    assert base.num_beams == 1 and base.draft == "ngram"


def beam_reply(engine, question: str, values: dict) -> Done:
    done = list(engine.stream([{"role": "user", "content": question}], Parameters.of(values)))[-1]
    assert isinstance(done, Done)
    return done


@pytest.mark.model
def test_a_constrained_beam_search_keeps_only_beams_the_grammar_accepts(engine):
    colours = {"red", "blue", "green", "yellow"}
    grammar = 'root ::= "red" | "blue" | "green" | "yellow"'
    done = beam_reply(engine, "Name a colour.", {"num_beams": 3, "grammar": grammar, "num_predict": 8})
    texts = [c["text"] for c in done.candidates]
    assert len(texts) == 3 and set(texts) <= colours and len(set(texts)) == 3  # three whole sentences of it
    assert done.text == texts[0] and all(c["finish_reason"] == "stop" for c in done.candidates)


@pytest.mark.model
def test_a_beam_reaching_a_stop_string_is_finished_there(engine):
    free = beam_reply(engine, "Tell me about the sea.", {"num_beams": 2, "num_predict": 16})
    words = free.text.split()
    stop = words[len(words) // 2]  # a word the best beam writes mid-way
    done = beam_reply(engine, "Tell me about the sea.", {"num_beams": 2, "num_predict": 16, "stop": [stop]})
    assert all(stop not in c["text"] for c in done.candidates)
    cut = free.text[: free.text.index(stop)]
    stopped = [c for c in done.candidates if c["text"] == cut]  # the best beam, ended at its stop string
    assert stopped and stopped[0]["finish_reason"] == "stop" and len(stopped[0]["tokens"]) < len(free.tokens)


@pytest.mark.model
def test_beams_in_a_chat_evaluate_only_what_the_cache_lacks_and_answer_as_from_an_empty_cache(engine):
    question = "Name three animals that live in the sea."
    engine.context.truncate(0)  # an empty cache: the whole prompt is evaluated
    cold = beam_reply(engine, question, {"num_beams": 3, "num_predict": 12})
    assert cold.usage.prompt_eval_tokens == cold.usage.prompt_tokens
    beam_reply(engine, question, {"temperature": 0, "num_predict": 12})  # a plain reply after the same prompt
    warm = beam_reply(engine, question, {"num_beams": 3, "num_predict": 12})
    # the prompt's keys and values are copied from the chat's cache, not evaluated again
    assert warm.usage.prompt_eval_tokens < warm.usage.prompt_tokens // 2
    assert warm.text == cold.text and warm.candidates == cold.candidates


@pytest.mark.model
@pytest.mark.parametrize("values", [{"num_beams": 2}, {"mbr_samples": 2}])
def test_a_search_stopped_once_its_prompt_is_cached_ends_cancelled(engine, values):
    chat = [{"role": "user", "content": "Name a bird."}]
    n = len(engine.chat_tokens(chat))
    engine.context.truncate(0)
    # the stop comes after the chat's cache took the prompt, as the search's sequences start
    events = list(engine.stream(chat, Parameters.of({**values, "num_predict": 8}),
                                cancelled=lambda: engine.context.n_tokens >= n))  # fmt: skip
    done = events[-1]
    assert isinstance(done, Done) and done.finish_reason == "cancelled" and done.text == ""
