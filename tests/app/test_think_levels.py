"""`think` low / medium / high: from every place a parameter is set, given to a template that reads
`reasoning_effort` (as gpt-oss's does; llama-server and Ollama pass the level by that name), and
said once where a template has no such switch. The engine cases give the embedded model a small
template, as tests/app/test_reasoning_model.py does."""

from __future__ import annotations

import pytest
from andon.app.engine.engine import Engine
from andon.presets import Parameters
from andon.presets.commands import parse_assignments, parse_set_parameter
from andon.presets.modelfile import export_modelfile, parse_modelfile
from andon.presets.preset import Preset
from andon.presets.table import parameter_table

from tests.app.test_cli import andon, assert_user_error
from tests.app.test_reasoning_model import _TURNS, HELLO, QWEN3, prompt_text, reply, with_template

# gpt-oss's way: the system turn says the reasoning effort, "medium" when none is given
EFFORT = (
    "{%- if reasoning_effort is not defined %}{%- set reasoning_effort = 'medium' %}{%- endif %}"
    "{{- '<|im_start|>system\\nReasoning: ' + reasoning_effort + '<|im_end|>\\n' }}"
    + _TURNS
    + "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def test_every_place_a_parameter_is_set_takes_a_level():
    assert parse_assignments(["think=high"]) == {"think": "high"}  # --set
    assert parse_set_parameter("think Low") == ("think", "low")  # /set parameter, the panel's parser
    assert parse_set_parameter("think false") == ("think", False)
    assert Parameters.of({"think": "medium"}).think == "medium"  # a preset's TOML, the API's JSON
    mine = Preset.model_validate({"name": "deep", "parameters": Parameters.of({"think": "high"})})
    text = export_modelfile(mine, default_model="./model.gguf")
    back = parse_modelfile(text)  # the Modelfile's round trip
    assert Parameters.of(back.parameters).think == "high" and not back.notes
    assert "true, false, low, medium or high" in parameter_table("text")


def test_andon_ask_refuses_another_level_in_one_line():
    assert_user_error(
        andon("ask", "hi", "--set", "think=max"),
        "andon: think: 'max' is not allowed (must be true, false, low, medium or high)",
    )


@pytest.mark.model
def test_a_level_reaches_a_template_with_a_reasoning_effort(engine: Engine, monkeypatch):
    prompt = with_template(engine, monkeypatch, EFFORT)
    monkeypatch.setattr(engine, "_told_no_effort", False)
    done, notices = reply(engine, HELLO, think="high", num_predict=2)
    assert "<|im_start|>system\nReasoning: high<|im_end|>" in prompt_text(engine, done)
    assert not notices  # this template takes the level: nothing to say
    given = [int(t) for t in engine.context_ids()[: done.usage.prompt_tokens]]
    assert engine.chat_tokens(HELLO, think="high") == given  # the inspector's and the context count's prompt
    done, _ = reply(engine, HELLO, think="low", num_predict=2)
    assert "Reasoning: low" in prompt_text(engine, done)
    done, _ = reply(engine, HELLO, think=True, num_predict=2)
    assert "Reasoning: medium" in prompt_text(engine, done)  # no level: the template's own default
    assert "Reasoning:" in prompt.format(HELLO, prompt.variables("medium"))


@pytest.mark.model
def test_a_level_where_the_template_has_none_is_said_once_and_thinks_as_true(engine: Engine, monkeypatch):
    with_template(engine, monkeypatch, QWEN3)
    monkeypatch.setattr(engine, "_told_no_effort", False)
    done, notices = reply(engine, HELLO, think="high", num_predict=2)
    assert [n.text for n in notices] == [
        f"think is high, but the chat template of {engine.model_name} has no reasoning_effort: "
        "it thinks as with think true"
    ]
    assert prompt_text(engine, done).endswith("<|im_start|>assistant\n")  # enable_thinking true: no empty block
    _, notices = reply(engine, HELLO, think="low", num_predict=2)
    assert not notices  # once
