"""`andon ask --raw`: the text continued without a chat template, as the articles' experiments and
base models need ("The capital of Japan is" ...); `--no-bos` where the model's tokenizer adds one."""

from __future__ import annotations

import json

import numpy as np
import pytest
from andon.app.cli.main import main
from andon.app.cli.raw import raw_tokens

pytestmark = pytest.mark.model

TEXT = "The capital of Japan is"


def test_raw_greedy_continuation_is_llama_cpps_greedy_continuation(engine, capsys):
    """ask --raw --preset factual writes what argmax over llama.cpp's logits writes after exactly
    the text's tokens (no template, no BOS: SmolLM2's tokenizer adds none)."""
    tokens = engine.tokenize(TEXT, add_bos=False)
    engine.context.truncate(0)
    engine.context.prefill(tokens)
    expected = []
    for _ in range(8):
        expected.append(int(np.argmax(engine.logits())))
        engine.context.append([expected[-1]])
    assert main(["ask", TEXT, "--raw", "--json", "--preset", "factual", "--set", "num_predict=8"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["usage"]["prompt_tokens"] == len(tokens) == 5
    assert out["text"] == b"".join(engine.piece(t) for t in expected).decode()
    assert "Tokyo" in out["text"]


def test_raw_prompt_tokens_begin_with_bos_only_where_the_model_adds_one(engine):
    """The embedded model's tokenizer adds no BOS: --raw and --raw --no-bos give the same tokens;
    a model that adds one (a fake tokenizer saying so) loses exactly that first token."""
    assert raw_tokens(engine, TEXT, no_bos=False) == raw_tokens(engine, TEXT, no_bos=True)

    class AddsBos:
        def tokenize(self, text: str, *, special: bool = True, add_bos: bool = False) -> list[int]:
            return [1, *engine.tokenize(text, special=special)] if add_bos else engine.tokenize(text, special=special)

    with_bos, without = raw_tokens(AddsBos(), TEXT, no_bos=False), raw_tokens(AddsBos(), TEXT, no_bos=True)
    assert with_bos == [1, *without]


def test_no_bos_without_raw_is_one_line(capsys):
    assert main(["ask", "hi", "--no-bos"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--no-bos needs --raw" in err[0]
