"""Adaptive-p's parameters from every place a parameter is set: --set, /set parameter, a Modelfile,
and a reply with the embedded model (the same seed, the same reply; the stage changes what is written)."""

from __future__ import annotations

import json

import pytest
from andon.presets import Parameters
from andon.presets.commands import parse_assignments, parse_set_parameter
from andon.presets.modelfile import export_modelfile, parse_modelfile
from andon.presets.preset import Preset

from tests.app.test_cli import andon, assert_user_error


def test_set_and_slash_set_and_a_modelfile_carry_it():
    assert parse_assignments(["adaptive_target=0.3", "adaptive_decay=0.5"]) == {
        "adaptive_target": 0.3,
        "adaptive_decay": 0.5,
    }
    assert parse_set_parameter("adaptive_target 0.25") == ("adaptive_target", 0.25)
    # no Ollama name: andon's comment section of the Modelfile, read back as it was
    mine = Preset.model_validate(
        {"name": "steady", "parameters": Parameters.of({"adaptive_target": 0.35, "adaptive_decay": 0.5, "min_p": 0.05})}
    )
    text = export_modelfile(mine, default_model="./model.gguf")
    assert {"# PARAMETER adaptive_target 0.35", "# PARAMETER adaptive_decay 0.5"} <= set(text.splitlines())
    back = parse_modelfile(text)
    assert Parameters.of(back.parameters) == mine.parameters and not back.notes


def test_andon_ask_refuses_a_target_above_one_in_one_line():
    assert_user_error(andon("ask", "hi", "--set", "adaptive_target=2"), "andon: adaptive_target: 2 is not allowed")
    assert_user_error(andon("ask", "hi", "--set", "adaptive_decay=1"), "andon: adaptive_decay: 1 is not allowed")


@pytest.mark.model
def test_a_seed_repeats_an_adaptive_p_reply_and_the_stage_changes_it():
    common = ["--set", "min_p=0.05", "--set", "top_k=0", "--set", "top_p=1", "--set", "seed=4"]
    common += ["--set", "num_predict=24", "--json"]
    prompt = "Tell me a story about a dragon."
    on = [andon("ask", prompt, "--set", "adaptive_target=0.3", *common) for _ in range(2)]
    off = andon("ask", prompt, *common)
    assert all(r.returncode == 0 for r in (*on, off)), [r.stderr for r in (*on, off)]
    first, again, plain = (json.loads(r.stdout) for r in (*on, off))
    assert first["text"] and first["text"] == again["text"]
    assert first["text"] != plain["text"]  # it picks its own tokens, not the engine's draw
