"""Speculative decoding's parameters in Modelfiles: Ollama's names where Ollama has them
(`PARAMETER draft_num_predict`, the DRAFT model), andon's own as comments that andon reads back."""

from __future__ import annotations

import pytest
from andon.presets import Parameters
from andon.presets.modelfile import ModelfileError, export_modelfile, ollama_defaults, parse_modelfile
from andon.presets.preset import Preset


def preset(**values) -> Preset:
    return Preset.model_validate({"name": "fast", "parameters": Parameters.of(values)})


def test_an_ngram_draft_round_trips_with_its_limits():
    mine = preset(draft="ngram", draft_max=8, draft_min=2, draft_p_min=0.5, temperature=0.2)
    text = export_modelfile(mine, default_model="./model.gguf")
    lines = text.splitlines()
    assert "PARAMETER draft_num_predict 8" in lines  # Ollama's name for draft_max
    # no Ollama name for these: comments Ollama skips
    assert {'# PARAMETER draft "ngram"', "# PARAMETER draft_min 2", "# PARAMETER draft_p_min 0.5"} <= set(lines)
    back = parse_modelfile(text)
    assert Parameters.of(back.parameters) == mine.parameters and not back.notes


def test_a_draft_model_is_ollamas_draft_line_and_is_resolved_like_from(tmp_path):
    draft = str(tmp_path / "small model.gguf")
    text = export_modelfile(preset(draft=draft, draft_max=4), default_model="./model.gguf")
    assert f"DRAFT {draft}" in text.splitlines() and "draft " not in text.replace("draft_num_predict", "")
    seen: list[str] = []

    def resolve(arg: str) -> str:
        seen.append(arg)
        return arg

    back = parse_modelfile(text, resolve_from=resolve)
    assert back.parameters == {"draft": draft, "draft_max": 4}
    assert seen == ["./model.gguf", draft]  # FROM, then DRAFT: both checked at import


def test_an_unknown_draft_model_refuses_the_import():
    def refuse(arg: str) -> str:
        raise ModelfileError(f"unknown model {arg!r} (closest: smollm2:135m)")

    with pytest.raises(ModelfileError, match=r"line 2: DRAFT smollm:135m: unknown model 'smollm:135m' \(closest"):
        parse_modelfile("PARAMETER temperature 0.5\nDRAFT smollm:135m\n", resolve_from=refuse)
    with pytest.raises(ModelfileError, match="line 1: DRAFT needs a model name"):
        parse_modelfile("DRAFT\n")


def test_ollamas_draft_num_predict_is_draft_max():
    imported = parse_modelfile("FROM qwen3.8:27b\nPARAMETER draft_num_predict 4\n")
    assert imported.parameters == {"draft_max": 4} and not imported.notes
    assert ollama_defaults({"draft_num_predict": 2, "temperature": 0.6}).parameters == {
        "draft_max": 2,
        "temperature": 0.6,
    }
    with pytest.raises(ModelfileError, match="draft_max: 999 is not allowed"):
        parse_modelfile("PARAMETER draft_num_predict 999\n")


def test_lists_of_andons_own_parameters_round_trip():
    mine = preset(samplers=["top_k", "temperature"], dry_sequence_breakers=["\n", "a, b", '"q"'], draft="ngram")
    back = parse_modelfile(export_modelfile(mine, default_model="./model.gguf"))
    assert Parameters.of(back.parameters) == mine.parameters


def test_a_parameter_commented_out_by_hand_stays_out():
    text = "FROM x\n# PARAMETER temperature 0.1\nPARAMETER top_k 5\n# PARAMETER draft ngram\n"
    assert parse_modelfile(text).parameters == {"top_k": 5}
