"""`andon inspect --perplexity FILE --ctx N`: the figure llama.cpp's llama-perplexity gives, computed
here from llama.cpp's own logits (a fresh context per chunk, every position's logits) in numpy."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from andon.app.cli.main import main

pytestmark = pytest.mark.model

TEXT = (
    "The capital of Japan is Tokyo. It is the largest city in the country and one of the most populous "
    "metropolitan areas in the world. Tokyo was formerly known as Edo, and it became the capital in 1868 "
    "when the emperor moved there from Kyoto. Today the city is a centre of finance, culture and industry. "
    "Mount Fuji, the highest mountain in Japan, can be seen from the city on clear winter days. "
)


def reference(engine, text: str, n_ctx: int) -> float:
    """perplexity.cpp's perplexity(): the text's tokens with the model's special tokens (BOS where it
    adds one), chunks of n_ctx, each evaluated from an empty cache with every position's logits
    (llama.cpp's, from the chat context), only the second half of each chunk scored."""
    tokens = engine.tokenize(text, special=False, add_bos=True)
    nll, count = 0.0, 0
    for i in range(len(tokens) // n_ctx):
        chunk = tokens[i * n_ctx : (i + 1) * n_ctx]
        if engine.texts.adds_bos:
            chunk[0] = engine.texts.bos
        engine.context.truncate(0)
        logits = engine.context.append_all_logits(chunk).astype(np.float64)
        for j in range(n_ctx // 2, n_ctx - 1):
            row = logits[j]
            nll -= row[chunk[j + 1]] - row.max() - math.log(np.exp(row - row.max()).sum())
            count += 1
    return math.exp(nll / count)


def test_perplexity_is_llama_perplexitys(engine, tmp_path, capsys):
    path = tmp_path / "text.txt"
    path.write_text(TEXT * 3, encoding="utf-8")
    assert main(["inspect", "--perplexity", str(path), "--ctx", "64", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_ctx"] == 64 and out["chunks"] == out["tokens"] // 64 >= 2
    assert out["scored"] == out["chunks"] * (64 - 1 - 32)
    assert out["perplexity"] == pytest.approx(reference(engine, TEXT * 3, 64), rel=1e-4)
    assert out["running"][-1] == out["perplexity"]


def test_a_text_shorter_than_two_chunks_is_one_line(tmp_path, capsys):
    path = tmp_path / "short.txt"
    path.write_text("The capital of Japan is Tokyo.", encoding="utf-8")
    assert main(["inspect", "--perplexity", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a context of 512 needs at least 1024" in err[0]


def test_a_missing_file_is_one_line(tmp_path, capsys):
    assert main(["inspect", "--perplexity", str(tmp_path / "none.txt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "none.txt" in err[0]
