"""`andon ask --json --logprobs K`: each token's log-probability before the chain and after it, and
the K likeliest alternatives, in OpenAI's shape; compared with log_softmax of llama.cpp's logits."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from andon.app.cli.main import main
from andon.presets.commands import apply
from andon.presets.parameters import DEFAULTS

pytestmark = pytest.mark.model

PROMPT = [{"role": "user", "content": "What is the capital of Japan?"}]


def reference_log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    return x - (x.max() + np.log(np.exp(x - x.max()).sum()))


def test_logprobs_are_llama_cpps_log_softmax_before_the_chain_and_the_chains_after(engine):
    """A top_k 5 reply: `logprob` and `top_logprobs` are log_softmax of llama.cpp's logits at each
    position (the same prompt and reply evaluated again), `chain_logprob` that over the 5 kept."""
    params = apply(DEFAULTS, {"top_k": 5, "top_p": 1.0, "min_p": 0.0, "temperature": 1.0, "seed": 3,
                              "num_predict": 12, "repeat_penalty": 1.0})  # fmt: skip
    done = [e for e in engine.stream(PROMPT, params, logprobs=3)][-1]
    assert len(done.logprobs) == len(done.tokens) > 0
    prompt = engine.chat_tokens(PROMPT)
    for i, (token, entry) in enumerate(zip(done.tokens, done.logprobs, strict=True)):
        engine.context.truncate(0)
        engine.context.prefill([*prompt, *done.tokens[:i]])
        ref = reference_log_softmax(np.array(engine.logits()))
        assert entry["logprob"] == pytest.approx(ref[token], abs=2e-3)
        assert entry["bytes"] == list(engine.piece(token))
        top = np.argsort(-ref)[:3]
        assert [t["logprob"] for t in entry["top_logprobs"]] == pytest.approx(list(ref[top]), abs=2e-3)
        assert [t["bytes"] for t in entry["top_logprobs"]] == [list(engine.piece(int(t))) for t in top]
        kept = np.argsort(-ref)[:5]
        assert entry["chain_logprob"] == pytest.approx(ref[token] - math.log(np.exp(ref[kept]).sum()), abs=2e-3)


def test_ask_json_logprobs_gives_openais_shape(capsys):
    status = main(["ask", "What is the capital of Japan?", "--json", "--logprobs", "2", "--preset", "factual",
                   "--set", "num_predict=6"])  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert status == 0
    content = out["logprobs"]["content"]
    assert len(content) == out["usage"]["completion_tokens"]
    first = content[0]
    assert set(first) == {"token", "logprob", "bytes", "chain_logprob", "top_logprobs"}
    assert len(first["top_logprobs"]) == 2
    assert first["logprob"] == first["top_logprobs"][0]["logprob"]  # greedy: the likeliest token
    assert first["chain_logprob"] == 0.0  # greedy leaves one candidate


@pytest.mark.parametrize("value", ["-1", "21", "x"])
def test_a_bad_logprobs_is_one_line(value, capsys):
    assert main(["ask", "hi", "--json", "--logprobs", value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--logprobs" in err[0] and "0 to 20" in err[0]


def test_logprobs_without_json_is_one_line(capsys):
    assert main(["ask", "hi", "--logprobs", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["andon: --logprobs needs --json (the log-probabilities are part of the JSON object)"]
