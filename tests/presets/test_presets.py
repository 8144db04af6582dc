"""Presets: built-ins, user files, shadowing, atomic writes, broken files, Ollama compatibility."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from andon.presets import DEFAULTS, ParameterError, Parameters
from andon.presets.commands import parse_assignments, parse_set_parameter, show_parameters
from andon.presets.modelfile import (
    ImportedModelfile,
    ModelfileError,
    export_modelfile,
    parse_modelfile,
    with_model_defaults,
)
from andon.presets.paths import presets_dir
from andon.presets.preset import Preset
from andon.presets.store import PresetError, PresetStore


def andon(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "andon", *args], capture_output=True, text=True, timeout=120,
                          env=os.environ.copy())  # fmt: skip


def test_builtin_presets_exist_with_descriptions_that_cite_sources():
    store = PresetStore()
    assert {"factual", "creative", "balanced", "code"} <= set(store.builtin_names())
    for name in ("factual", "creative", "balanced", "code"):
        p = store.builtin(name)
        assert len(p.description) > 100 and p.task in ("factual", "creative", "code", "chat")
    assert "arXiv" in store.builtin("creative").description
    factual, creative = store.builtin("factual").parameters, store.builtin("creative").parameters
    assert factual.temperature == 0.0  # the same answer every time
    # high temperature made safe by top-n-sigma (or min_p), with XTC and DRY, not plain top_p
    assert creative.temperature > 1.0 and (creative.top_n_sigma > 0 or creative.min_p > 0)
    assert creative.xtc_probability > 0 and creative.dry_multiplier > 0
    assert creative.top_p == 1.0


def test_user_presets_live_under_xdg_config_home(tmp_path):
    assert presets_dir() == tmp_path / "config" / "andon" / "presets"


def test_save_load_roundtrip_holds_only_differences():
    store = PresetStore()
    params = Parameters.of({"temperature": 0.3, "stop": ["END", "###"], "logit_bias": {"5": False}})
    path = store.save(Preset(name="mine", task="code", system="Be brief.", parameters=params))
    text = path.read_text()
    assert "temperature = 0.3" in text and "top_k" not in text  # top_k is at its default
    loaded = store.load("mine")
    assert loaded.parameters == params and loaded.system == "Be brief." and loaded.task == "code"
    assert not list(path.parent.glob("*.tmp"))  # the temporary file was renamed over


def test_user_preset_shadows_builtin_and_delete_brings_it_back():
    store = PresetStore()
    builtin = store.load("factual")
    store.save(builtin.with_parameters(Parameters.of({"temperature": 0.9})))
    assert store.load("factual").parameters.temperature == 0.9
    entries, _ = store.scan()
    assert next(e for e in entries if e.preset.name == "factual").shadows_builtin
    store.delete("factual")
    assert store.load("factual") == builtin
    with pytest.raises(PresetError, match="built-in"):
        store.delete("factual")


@pytest.mark.parametrize(
    ("content", "field", "reason"),
    [
        ("temperature = ", None, "not valid TOML"),
        ("[parameters]\ntemperature = -2\n", "parameters.temperature", ">= 0"),
        ("[parameters]\ntop_k = 'ten'\n", "parameters.top_k", "whole number"),
        ("[parameters]\nflavour = 1\n", "parameters.flavour", "unknown parameter"),
        ("task = 'poetry'\n", "task", "factual"),
        ("colour = 'red'\n", "colour", "unknown field"),
    ],
)
def test_broken_preset_file_is_reported_not_fatal_and_left_untouched(content, field, reason):
    store = PresetStore()
    store.user_dir.mkdir(parents=True)
    bad = store.user_dir / "bad.toml"
    bad.write_text(content)
    entries, problems = store.scan()
    assert {"balanced", "factual"} <= {e.preset.name for e in entries}  # the others still load
    assert len(problems) == 1 and problems[0].path == bad
    assert problems[0].field == field and reason in problems[0].reason
    with pytest.raises(PresetError, match=r"bad\.toml"):
        store.load("bad")
    assert bad.read_text() == content


def test_invalid_save_writes_nothing():
    r = andon("presets", "save", "mine", "--set", "temperature=-3")
    assert r.returncode == 2 and "temperature" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not presets_dir().exists() or not list(presets_dir().iterdir())
    r = andon("presets", "save", "bad/name")
    assert r.returncode == 2 and "preset name" in r.stderr


def test_cli_presets_lifecycle(tmp_path):
    assert andon("presets", "save", "tuned", "--from", "creative", "--set", "temperature=0.9").returncode == 0
    listing = andon("presets", "list").stdout
    assert "tuned" in listing and "factual" in listing
    shown = andon("presets", "show", "tuned").stdout
    assert "temperature" in shown and "0.9" in shown and "top_n_sigma" in shown
    exported = andon("presets", "export", "tuned")
    assert exported.returncode == 0 and "PARAMETER temperature 0.9" in exported.stdout
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(exported.stdout)
    assert andon("presets", "import", str(modelfile), "--name", "again").returncode == 0
    again = PresetStore().load("again")
    assert again.parameters.temperature == 0.9 and again.parameters.top_k == 0
    assert andon("presets", "delete", "tuned").returncode == 0
    assert andon("presets", "show", "tuned").returncode == 2


def test_broken_user_file_does_not_stop_the_listing():
    presets_dir().mkdir(parents=True)
    (presets_dir() / "oops.toml").write_text("[parameters\n")
    r = andon("presets", "list")
    assert r.returncode == 0 and "balanced" in r.stdout
    assert "oops.toml" in r.stderr and "not valid TOML" in r.stderr


MODELFILE = '''FROM llama3.2
# a comment
PARAMETER temperature 0.6
PARAMETER stop "<|start_header_id|>"
PARAMETER stop "<|eot_id|>"
PARAMETER num_ctx 8192
PARAMETER penalize_newline false
TEMPLATE """{{ .Prompt }}"""
SYSTEM """You are Mario
from Super Mario Bros."""
'''


def test_import_ollama_modelfile():
    imported = parse_modelfile(MODELFILE)
    assert imported.model == "llama3.2"
    assert imported.system == "You are Mario\nfrom Super Mario Bros."
    assert imported.parameters == {"temperature": 0.6, "num_ctx": 8192,
                                   "stop": ["<|start_header_id|>", "<|eot_id|>"]}  # fmt: skip
    assert any("penalize_newline" in n for n in imported.notes)
    assert any("TEMPLATE" in n for n in imported.notes)


def test_modelfile_errors_name_the_line():
    with pytest.raises(ModelfileError, match=r"line 2: temperature: -1 is not allowed"):
        parse_modelfile("FROM x\nPARAMETER temperature -1\n")
    with pytest.raises(ModelfileError, match="line 1"):
        parse_modelfile("BOGUS thing\n")
    with pytest.raises(ModelfileError, match="never closes"):
        parse_modelfile('SYSTEM """open forever\n')


def test_export_then_import_roundtrip():
    store = PresetStore()
    creative = store.load("creative")
    text = export_modelfile(creative, default_model="./model.gguf")
    assert text.startswith("# Modelfile") and "FROM ./model.gguf" in text
    assert "\nPARAMETER xtc_probability" not in text and "# PARAMETER xtc_probability 0.5" in text
    back = parse_modelfile(text)
    assert "# PARAMETER top_n_sigma 1" in text  # andon's own: a comment Ollama skips, andon reads back
    assert Parameters.of(back.parameters) == creative.parameters and back.system == creative.system


def test_set_parameter_like_ollama_run():
    assert parse_set_parameter("temperature 0.7") == ("temperature", 0.7)
    assert parse_set_parameter('stop "<|im_end|>" END') == ("stop", ("<|im_end|>", "END"))
    with pytest.raises(ParameterError, match=r"top_k: 2\.5 is not allowed"):
        parse_set_parameter("top_k 2.5")
    with pytest.raises(ParameterError, match="unknown parameter"):
        parse_set_parameter("nonsense 1")
    assert parse_assignments(["stop=a", "stop=b", "top_k=3"]) == {"stop": ("a", "b"), "top_k": 3}


def test_show_parameters_matches_ollamas_layout():
    preset = PresetStore().load("factual").parameters
    text = show_parameters(preset, {"temperature": 0.5, "stop": ("a", "b")})
    lines = text.splitlines()
    assert lines[0] == "Model defined parameters:"
    assert f"  {'temperature':<30} 0  (preset)" in lines
    assert "User defined parameters:" in lines
    assert f'  {"stop":<30} "a"  (set in this chat)' in lines and f'  {"stop":<30} "b"  (set in this chat)' in lines
    assert show_parameters(DEFAULTS, {}).splitlines()[1] == "  No additional parameters were specified for this model."


def test_show_parameters_says_which_values_are_the_presets_the_models_and_this_chats():
    """An Ollama model's own defaults under a preset of its own (with_model_defaults), then /set."""
    own = Parameters.of({"num_ctx": 2048, "stop": ["END"]})
    model = ImportedModelfile(parameters={"temperature": 0.2, "stop": ("<|im_end|>",), "num_ctx": 8192})
    merged = with_model_defaults(Preset(name="mario", parameters=own), model).parameters
    text = show_parameters(merged, {"top_k": 3}, own.changed(), model.parameters, ("mario", "smollm2:135m"))
    assert text.splitlines() == [
        "Model defined parameters:",
        f"  {'num_ctx':<30} 2048  (preset mario)",  # the preset's own wins over the model's 8192
        f'  {"stop":<30} "<|im_end|>"  (model smollm2:135m)',
        f'  {"stop":<30} "END"  (preset mario)',
        f"  {'temperature':<30} 0.2  (model smollm2:135m)",
        "",
        "User defined parameters:",
        f"  {'top_k':<30} 3  (set in this chat)",
    ]


@pytest.mark.model
def test_ask_with_factual_preset_answers_straight():
    r = andon("ask", "What is the capital of Japan?", "--preset", "factual")
    assert r.returncode == 0 and "Tokyo" in r.stdout
    r = andon("ask", "When did World War II end?", "--preset", "factual")
    assert r.returncode == 0 and "1945" in r.stdout


def test_creative_stays_truncated_when_the_context_repeats_itself():
    """A long verbatim repeat makes DRY's penalty enormous; if it ran before top-n-sigma it would
    inflate sigma until every token of the vocabulary survives, at temperature 1.5."""
    import numpy as np
    from andon.samplers import build_chain

    rng = np.random.default_rng(0)
    n = 5000
    logits = (rng.standard_normal(n) * 2).astype(np.float32)
    logits[rng.choice(n, 5, replace=False)] += 9
    history = rng.integers(0, n, 600).astype(np.intc)
    history[-200:] = history[100:300]  # the reply repeats 200 tokens of the prompt verbatim
    creative = PresetStore().load("creative").parameters.sampling()
    kept = np.isfinite(build_chain(creative, seed=1)(history, logits)).sum()
    assert 1 <= kept <= 20
    llama_order = {**creative, "samplers": ["dry", "top_n_sigma", "xtc", "temperature"]}
    assert np.isfinite(build_chain(llama_order, seed=1)(history, logits)).sum() > n / 2  # what it avoids
