"""`andon inspect`, `andon compare` and `andon eval` on the embedded model."""

from __future__ import annotations

import json

import pytest
from andon.app.engine.inspection import inspect_next, tempered
from andon.app.study.evaluation import Question, distinct_n, questions, self_bleu
from andon.app.study.inspector import bar
from andon.presets import Parameters

from tests.app.test_cli import andon, assert_user_error


@pytest.mark.model
def test_inspect_shows_prompt_tokens_stages_and_bars():
    r = andon("inspect", "What is the capital of Japan?", "--preset", "balanced", "--top", "5")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "<|im_start|>" in out  # special tokens of the chat template are shown
    assert "input" in out and "top_k" in out and "min_p" in out and "temperature" in out
    assert "✗" in out  # some candidate was removed by a sampler
    assert "█" in out
    assert "kept after each stage: input 49152" in out


@pytest.mark.model
def test_inspect_json_is_consistent_with_the_chain(engine):
    r = andon("inspect", "What is the capital of Japan?", "--json", "--top", "8", "--temperatures", "0.4,1,1.6")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    names = [s["name"] for s in data["stages"]]
    assert names[0] == "input" and names[-1] == "temperature"
    kept = [s["kept"] for s in data["stages"]]
    assert kept == sorted(kept, reverse=True) and kept[0] == data["n_vocab"]  # truncation only removes
    for cand in data["candidates"]:
        final = cand["p"]["temperature"]
        assert 0 <= final <= 1
        if cand["p"]["top_k"] == 0:
            assert final == 0  # once removed, never back
    # a lower temperature sharpens the top candidate, a higher one flattens it
    top = str(data["candidates"][0]["id"])
    assert data["temperatures"]["0.4"][top] > data["temperatures"]["1.0"][top] > data["temperatures"]["1.6"][top]


@pytest.mark.model
def test_inspect_at_80_columns_breaks_its_lines_between_words_and_tokens(engine):
    """At a terminal of 80 columns every line fits it; the prompt's tokens break only between tokens
    (each `[id]text` whole, in order) and the prose only between words."""
    from andon.app.study.inspector import render
    from rich.cells import cell_len

    tokens = engine.chat_tokens([{"role": "user", "content": "What is the capital of Japan, the large one?"}])
    text = render(inspect_next(engine, tokens, Parameters.of({}), top=5), width=80)
    lines = text.splitlines()
    assert all(cell_len(line) <= 80 for line in lines), [line for line in lines if cell_len(line) > 80]
    prompt = lines[1 : lines.index("")]
    assert len(prompt) > 1 and all(line.startswith("  [") for line in prompt)
    assert " ".join(line.strip() for line in prompt).count("[") == len(tokens)
    about = " ".join(line for line in lines if not line.startswith(("  ", "Prompt", "token")) and line)
    assert "probability before the chain (input) and after each stage" in about


def test_inspect_probabilities_match_a_direct_computation(engine):
    """top_k 5 then temperature 0.7: final p_i = p_i^(1/0.7) renormalised over the 5 (from the input column)."""
    import numpy as np

    tokens = engine.chat_tokens([{"role": "user", "content": "What is the capital of Japan?"}])
    result = inspect_next(engine, tokens, Parameters.of({"temperature": 0.7, "top_k": 5, "top_p": 1.0}), top=5)
    top5 = result.shown[:5]
    p_in = np.array([result.stages[0].probs[t] for t in top5], np.float64)
    assert np.all(np.diff(p_in) <= 0)  # shown in order of the model's probability
    expected = p_in ** (1 / 0.7) / (p_in ** (1 / 0.7)).sum()
    got = [result.final.probs[t] for t in top5]
    np.testing.assert_allclose(got, expected, rtol=1e-4)
    assert result.stages[0].kept == engine.n_vocab and result.final.kept == 5


def test_tempered_and_bars():
    import numpy as np

    logits = np.array([2.0, 1.0, 0.0], np.float32)
    assert tempered(logits, 0, [0, 1, 2]) == {0: 1.0, 1: 0.0, 2: 0.0}
    p = tempered(logits, 1.0, [0, 1, 2])
    assert p[0] == pytest.approx(np.exp(2) / np.exp([2, 1, 0]).sum(), rel=1e-5)
    assert bar(1.0, 10) == "█" * 10 and bar(0.0, 10) == " " * 10 and bar(0.55, 10).startswith("█████▌")


def test_self_bleu_and_distinct():
    same = ["the cat sat on the mat"] * 3
    assert self_bleu(same) == pytest.approx(100.0)
    assert self_bleu(["the cat sat on the mat", "a dog ran in the park", "green ideas sleep furiously"]) < 10
    assert distinct_n(["a b a b"], 1) == 0.5  # 2 unique of 4
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)  # ab, ba, ab


def test_question_set_and_matching():
    qs = questions()
    assert len(qs) >= 50
    assert {q.topic for q in qs} >= {"capital", "date", "author", "science"}
    q = Question("Who wrote Moby-Dick?", ("Melville",), "author")
    assert q.accepts("It was Herman Melville.") and not q.accepts("Melvilleton wrote it")
    assert Question("Year?", ("1945",), "date").accepts("It ended in 1945.")
    assert not Question("Year?", ("1945",), "date").accepts("It ended in 19456.")


@pytest.mark.model
def test_compare_reports_diversity_and_seeds():
    r = andon("compare", "Tell me a story about a dragon.", "--presets", "creative,factual", "-n", "3",
              "--seed", "5", "--set", "num_predict=24", "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    by = {p["preset"]: p for p in data["presets"]}
    for p in by.values():
        assert set(p) >= {"self_bleu", "distinct_1", "distinct_2", "mean_tokens", "replies", "seeds"}
        assert p["seeds"] == [5, 6, 7] and len(p["replies"]) == 3
    assert by["factual"]["self_bleu"] == pytest.approx(100.0)  # greedy: the same reply three times
    assert by["creative"]["self_bleu"] < 60 and by["creative"]["distinct_2"] > by["factual"]["distinct_2"]
    again = json.loads(andon("compare", "Tell me a story about a dragon.", "--presets", "creative", "-n", "3",
                             "--seed", "5", "--set", "num_predict=24", "--json").stdout)  # fmt: skip
    assert again["presets"][0]["replies"] == by["creative"]["replies"]  # recorded seeds repeat a run


@pytest.mark.model
def test_compare_and_eval_say_the_engines_notices_once_as_ask_does():
    """A think level on a template without reasoning_effort is said once, on stderr, after the run."""
    for command in (("compare", "Say hi", "--presets", "balanced", "-n", "2"), ("eval", "--presets", "balanced",
                    "--limit", "2")):  # fmt: skip
        r = andon(*command, "--set", "think=low", "--set", "num_predict=4")
        assert r.returncode == 0, r.stderr
        said = [line for line in r.stderr.splitlines() if "reasoning_effort" in line]
        assert len(said) == 1 and said[0].startswith("andon: think is low"), r.stderr


@pytest.mark.model
def test_eval_reports_accuracy_per_preset():
    r = andon("eval", "--presets", "factual,creative", "--limit", "6", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["questions"] == 6
    factual = data["presets"][0]
    assert factual["preset"] == "factual" and len(factual["answers"]) == 6
    assert factual["accuracy"] >= 0.5  # capitals of Japan, France, Italy ... the small model knows these


def test_study_commands_bad_input():
    assert_user_error(andon("compare", "x", "--presets", "factual", "-n", "1"), "-n")
    assert_user_error(andon("compare", "x", "--presets", "nosuch", "-n", "2"), "nosuch")
    assert_user_error(andon("inspect", "x", "--top", "0"), "--top")
    assert_user_error(andon("eval", "--presets", "factual", "--set", "top_p=7"), "top_p")
    for temps in ("nan", "0.5,inf", "-1", "1,x"):
        assert_user_error(andon("inspect", "x", "--temperatures", temps), "--temperatures", temps)
    for limit in ("0", "-3"):
        assert_user_error(andon("eval", "--limit", limit), "--limit", "at least 1")
    assert_user_error(andon("compare", "x", "--seed", "-1"), "--seed -1", ">= 0")
    assert_user_error(andon("eval", "--seed", "-7"), "seed", "-7")


@pytest.mark.model
def test_compare_without_presets_uses_the_builtins_and_reports_progress_off_a_terminal():
    from andon.presets.store import PresetStore

    r = andon("compare", "Hi", "-n", "2", "--seed", "1", "--set", "num_predict=4", "--json")
    assert r.returncode == 0, r.stderr
    assert [p["preset"] for p in json.loads(r.stdout)["presets"]] == PresetStore().builtin_names()
    total = 2 * len(PresetStore().builtin_names())
    assert f"compare: {total}/{total} replies in" in r.stderr  # standard error is a pipe here, not a terminal


def test_progress_on_a_terminal_is_a_bar_with_count_and_time_left():
    import io

    from andon.app.cli.progress import ProgressReport

    out = io.StringIO()
    with ProgressReport("eval", 4, "answers", stream=out, terminal=True) as progress:
        for _ in range(4):
            progress.advance("factual")
    text = out.getvalue()
    assert "━" in text and "4/4" in text and "answers" in text and "left" in text and "eval factual" in text


def test_progress_off_a_terminal_is_a_plain_line_every_few_seconds():
    import io

    from andon.app.cli.progress import ProgressReport

    out = io.StringIO()
    with ProgressReport("eval", 3, "answers", stream=out, terminal=False, every_s=0) as progress:
        for _ in range(3):
            progress.advance("factual")
    lines = out.getvalue().splitlines()
    assert lines[0] == "eval: 1/3 answers (factual), 0:00:00 taken"  # no estimate from one step
    assert lines[1].startswith("eval: 2/3 answers (factual), 0:00:00 taken, about 0:00:0")
    assert lines[-1].startswith("eval: 3/3 answers in ")
    assert "\x1b" not in out.getvalue() and "\r" not in out.getvalue()
    quiet = io.StringIO()
    with ProgressReport("eval", 3, "answers", stream=quiet, terminal=False) as progress:
        for _ in range(3):
            progress.advance("factual")
    assert len(quiet.getvalue().splitlines()) == 1  # a fast run: only the last line
