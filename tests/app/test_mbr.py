"""Minimum Bayes risk decoding (app/engine/mbr.py): the reply kept is the sample with the highest
mean sacrebleu utility against the others, every sample is reported with its seed."""

from __future__ import annotations

import pytest
from andon.app.engine.engine import Done
from andon.presets.parameters import ParameterError, Parameters
from sacrebleu import sentence_bleu, sentence_chrf


def mean_utility(texts, i, metric):
    others = [t for j, t in enumerate(texts) if j != i]
    return sum(metric(texts[i], [o]).score for o in others) / len(others)


@pytest.mark.model
@pytest.mark.parametrize(("utility", "metric"), [("chrf", sentence_chrf), ("bleu", sentence_bleu)])
def test_mbr_keeps_the_sample_most_like_the_others(engine, utility, metric):
    params = Parameters.of({"mbr_samples": 3, "num_predict": 8, "seed": 11, "mbr_utility": utility})
    events = list(engine.stream([{"role": "user", "content": "Name a fruit."}], params))
    done = events[-1]
    assert isinstance(done, Done)
    texts = [c["text"] for c in done.candidates]
    assert sorted(c["seed"] for c in done.candidates) == [11, 12, 13]
    best = max(range(3), key=lambda i: mean_utility(texts, i, metric))
    assert done.text == texts[best]
    assert done.candidates[0]["score"] == pytest.approx(mean_utility(texts, best, metric))


def test_mbr_utility_other_than_chrf_or_bleu_is_refused_in_one_line():
    with pytest.raises(ParameterError, match="mbr_utility: 'ter' is not allowed"):
        Parameters.of({"mbr_samples": 4, "mbr_utility": "ter"})


@pytest.mark.model
def test_mbr_in_a_chat_evaluates_only_what_the_cache_lacks_and_draws_as_from_an_empty_cache(engine):
    chat = [{"role": "user", "content": "Name a fruit."}]
    values = {"mbr_samples": 3, "num_predict": 10, "seed": 7}
    engine.context.truncate(0)  # an empty cache: the whole prompt is evaluated
    cold = list(engine.stream(chat, Parameters.of(values)))[-1]
    list(engine.stream(chat, Parameters.of({"temperature": 0, "num_predict": 10})))  # a plain reply first
    warm = list(engine.stream(chat, Parameters.of(values)))[-1]
    assert isinstance(cold, Done) and isinstance(warm, Done)
    assert cold.usage.prompt_eval_tokens == cold.usage.prompt_tokens
    assert warm.usage.prompt_eval_tokens < warm.usage.prompt_tokens // 2  # copied from the chat's cache
    assert [c["text"] for c in warm.candidates] == [c["text"] for c in cold.candidates]
