"""`andon compare PROMPT --grid NAME=V,... --grid NAME=V,...`: N seeded replies a cell, Self-BLEU
(sacrebleu, each reply against the others), distinct-n, accuracy; table/heat map, JSON, CSV, SVG."""

from __future__ import annotations

import csv
import io
import json
import statistics

import pytest
import sacrebleu
from andon.app.cli.main import main
from andon.app.study.evaluation import tokenizer_for

GRID = ["--grid", "top_p=0.1,0.9", "--grid", "temperature=0.1,1.5"]
RUN = ["compare", "The capital of Japan is", "--raw", *GRID, "-n", "3", "--seed", "1", "--set", "num_predict=12"]


@pytest.mark.parametrize(
    ("grid", "says"),
    [
        ("top_p=0.1,2", "top_p"),
        ("top_p", "expected NAME=V1,V2"),
        ("toppp=0.1", "toppp"),
        ("temperature=x", "temperature"),
    ],
)
def test_a_bad_grid_is_one_line_and_status_2(grid, says, capsys):
    assert main(["compare", "hi", "--grid", grid]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("andon: ") and says in err[0]


def test_three_axes_are_refused(capsys):
    assert main(["compare", "hi", "--grid", "top_p=0.5", "--grid", "top_k=5", "--grid", "min_p=0.1"]) == 2
    assert "at most 2" in capsys.readouterr().err


def test_tokenizer_by_script():
    assert tokenizer_for(["The capital of Japan is Tokyo."]) == "13a"
    assert tokenizer_for(["日本の首都は東京です。"]) in ("ja-mecab", "char")
    assert tokenizer_for(["中国的首都是北京"]) == "zh"


@pytest.mark.model
def test_sweep_json_figures_are_sacrebleus_self_bleu(capsys):
    assert main([*RUN, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["grid"] == {"top_p": [0.1, 0.9], "temperature": [0.1, 1.5]} and out["complete"]
    assert len(out["cells"]) == 4 and all(len(c["replies"]) == 3 == len(c["seeds"]) for c in out["cells"])
    for cell in out["cells"]:
        r = cell["replies"]
        expected = statistics.fmean(
            sacrebleu.sentence_bleu(r[i], r[:i] + r[i + 1 :], tokenize="13a").score for i in range(3)
        )
        assert cell["self_bleu"] == pytest.approx(expected, abs=0.01)
    greedyish = next(c for c in out["cells"] if c["top_p"] == 0.1 and c["temperature"] == 0.1)
    assert greedyish["self_bleu"] == 100.0  # one candidate left: the same reply every seed


@pytest.mark.model
def test_sweep_csv_and_svg(tmp_path, capsys):
    svg = tmp_path / "map.svg"
    assert main([*RUN, "--csv", "--out", str(svg)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["top_p"], r["temperature"]) for r in rows] == [("0.1", "0.1"), ("0.1", "1.5"), ("0.9", "0.1"),
                                                             ("0.9", "1.5")]  # fmt: skip
    assert svg.read_text().startswith("<svg") and "self_bleu" in svg.read_text()
