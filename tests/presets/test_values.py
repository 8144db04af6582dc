"""One parser for a typed value: `/set parameter`, `--set`, preset files and the chain agree (issue 10)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import warnings

import numpy as np
import pytest
from andon.presets import ALL_SPECS, ParameterError, Parameters
from andon.presets.commands import confirm_set, parse_assignments, parse_set_parameter, parse_value
from andon.presets.preset import Preset
from andon.presets.store import PresetStore
from andon.samplers import build_chain

# The value as typed after the name, and what it must mean (the cases of issue 10).
TYPED = [
    ('logit_bias {"15": 5}', "logit_bias", {15: 5.0}),
    ('samplers ["top_k","temperature"]', "samplers", ("top_k", "temperature")),
    ('dry_sequence_breakers ["\\n", ":"]', "dry_sequence_breakers", ("\n", ":")),
    ('dry_sequence_breakers ["\\"", "*"]', "dry_sequence_breakers", ('"', "*")),
    ('stop ["a b", "\\n\\n"]', "stop", ("a b", "\n\n")),
    ('logit_bias {"hello": false, "7": -2.5}', "logit_bias", {"hello": float("-inf"), 7: -2.5}),
    ("samplers top_k, temperature", "samplers", ("top_k", "temperature")),
    ("temperature 0.7", "temperature", 0.7),
    ("stop [INST]", "stop", ("[INST]",)),  # not JSON: a stop string in brackets
    ('grammar root ::= "yes" | "no"', "grammar", 'root ::= "yes" | "no"'),  # taken as typed
    ("grammar ''", "grammar", ""),  # quoted nothing: off
    ('format ""', "format", ""),
    ('format {"type": "object"}', "format", {"type": "object"}),
    ('draft "/my models/draft.gguf"', "draft", "/my models/draft.gguf"),
]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "andon", *args], capture_output=True, text=True, timeout=120,
                          env=os.environ.copy())  # fmt: skip


@pytest.mark.parametrize(("typed", "name", "value"), TYPED)
def test_set_parameter_and_dash_dash_set_read_the_same_value(typed, name, value):
    assert parse_set_parameter(typed) == (name, value)
    text = typed.split(maxsplit=1)[1]
    assert parse_assignments([f"{name}={text}"]) == {name: value}


def test_stop_keeps_ollamas_habits():
    assert parse_set_parameter("stop a b") == ("stop", ("a", "b"))  # each word a stop string
    assert parse_set_parameter('stop "a b" c') == ("stop", ("a b", "c"))  # quotes keep spaces
    assert parse_set_parameter("stop 'User:' \"\\n\"") == ("stop", ("User:", "\n"))
    assert parse_set_parameter('stop "<|im_end|>" END') == ("stop", ("<|im_end|>", "END"))
    # --set takes the whole value as one stop string; repeating it adds one
    assert parse_assignments(["stop=a b", 'stop="\\n"']) == {"stop": ("a b", "\n")}
    assert parse_assignments(["stop="]) == {"stop": ()}  # clears the preset's stop strings


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("logit_bias {15: 5}", r"logit_bias: \{15: 5\} is not valid JSON \(Expecting property name"),
        ('dry_sequence_breakers ["\\n", ":"', "is not valid JSON"),
        ('stop "never closed', "the quote at column 1 never closes"),
        ("samplers top_k nucleus", r"samplers: 'nucleus' is not a sampler"),
        ("temperature", r"temperature: a value is needed \(must be a number >= 0\)"),
        ("temperature nan", r"temperature: 'nan' is not allowed"),
        ("top_k " + "9" * 5000, r"top_k: '9999.*\.\.\. is not allowed \(must be a whole number >= 0\)"),
        ('logit_bias {"15": 1e308}', r"1e\+308 for '15' is not allowed \(must be a number from -1000 to 1000"),
        ('logit_bias {"15": -1e308}', r"-1e\+308 for '15' is not allowed"),
        ('logit_bias {"1000000000000000000000000000000": 1}', "must be a token id from 0 to 2147483647"),
        ('logit_bias {"-3": 1}', r"token id -3 is not allowed"),
    ],
)
def test_a_refused_value_is_one_line_naming_what_is_allowed(typed, message):
    with pytest.raises(ParameterError, match=message) as err:
        parse_set_parameter(typed)
    assert "\n" not in str(err.value) and len(str(err.value)) < 240


def test_an_unknown_name_points_to_where_the_names_are_listed():
    with pytest.raises(ParameterError, match=r"^nonsense: unknown parameter; see `/set parameter` for the names$"):
        parse_set_parameter("nonsense 1")  # the app's command: `/set parameter` alone lists them
    with pytest.raises(ParameterError, match=r"see `andon presets parameters` for the names$"):
        parse_assignments(["nonsense=1"])  # the command line's
    with pytest.raises(
        ParameterError, match=r"did you mean temperature\? \(`andon presets parameters` lists them all\)$"
    ):
        parse_assignments(["temprature=1"])
    r = run("ask", "hi", "--set", "nonsense=1")
    assert r.returncode == 2
    assert r.stderr.strip() == "andon: nonsense: unknown parameter; see `andon presets parameters` for the names"


def test_the_confirmation_shows_list_items_unambiguously():
    assert confirm_set("stop", ("a", "b")) == "Set parameter 'stop' to 'a, b'"
    assert confirm_set("dry_sequence_breakers", ("\n", ":")) == "Set parameter 'dry_sequence_breakers' to '\"\\n\", :'"


def test_a_preset_saved_from_set_values_holds_them_through_its_toml_file():
    store = PresetStore()
    params = store.load("balanced").parameters
    for typed in ('dry_sequence_breakers ["\\n", ":"]', 'logit_bias {"15": 5, "Hi": false}',
                  'samplers ["top_k","temperature"]', 'stop "a b" "\\n"', "dry_multiplier 0.8"):  # fmt: skip
        name, value = parse_set_parameter(typed)
        params = Parameters.of({name: value}, base=params)
    path = store.save(Preset(name="from-chat", task="chat", description="", system="", parameters=params))
    document = tomllib.loads(path.read_text("utf-8"))["parameters"]
    assert document["dry_sequence_breakers"] == ["\n", ":"] and document["samplers"] == ["top_k", "temperature"]
    assert document["stop"] == ["a b", "\n"] and document["logit_bias"] == {"15": 5.0, "Hi": False}
    loaded = store.load("from-chat").parameters
    assert loaded == params
    assert loaded.dry_sequence_breakers == ("\n", ":") and loaded.stop == ("a b", "\n")
    assert loaded.logit_bias == {15: 5.0, "Hi": float("-inf")}


def test_dash_dash_set_values_round_trip_through_a_saved_preset():
    r = run("presets", "save", "typed", "--set", 'dry_sequence_breakers=["\\n", ":"]', "--set", 'logit_bias={"15": 5}',
            "--set", 'samplers=["top_k","temperature"]', "--set", 'stop="\\n"', "--set", "stop=User:")  # fmt: skip
    assert r.returncode == 0, r.stderr
    loaded = PresetStore().load("typed").parameters
    assert loaded.dry_sequence_breakers == ("\n", ":") and loaded.logit_bias == {15: 5.0}
    assert loaded.samplers == ("top_k", "temperature") and loaded.stop == ("\n", "User:")


def test_a_preset_file_reads_like_typed_json():
    store = PresetStore()
    store.user_dir.mkdir(parents=True)
    (store.user_dir / "hand.toml").write_text(
        'task = "chat"\n[parameters]\ndry_sequence_breakers = ["\\n", ":"]\nlogit_bias = { "15" = 5 }\n', "utf-8"
    )
    loaded = store.load("hand").parameters
    assert loaded.dry_sequence_breakers == parse_value("dry_sequence_breakers", '["\\n", ":"]')
    assert loaded.logit_bias == parse_value("logit_bias", '{"15": 5}')


def test_a_token_id_past_the_vocabulary_is_refused_when_the_vocabulary_is_known():
    params = {"logit_bias": {49152: 1.0}}
    with pytest.raises(ParameterError, match=r"^logit_bias: token id 49152 is not in this model's vocabulary "
                                             r"\(token ids are 0 to 49151\)$"):  # fmt: skip
        build_chain(params, n_vocab=49152)
    with pytest.raises(ParameterError, match="token ids are 0 to 2"):
        build_chain(params, vocab=["a", "b", "c"])
    assert np.isfinite(build_chain({"logit_bias": {49151: 1.0}}, n_vocab=49152, seed=1)(
        np.empty(0, np.intc), np.zeros(49152, np.float32))).any()  # fmt: skip


def test_the_largest_biases_allowed_print_no_numpy_warnings():
    logits = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    every = {
        "repeat_penalty": 1.3, "dry_multiplier": 1.0, "top_n_sigma": 1.0, "typical_p": 0.9, "tfs_z": 0.9,
        "top_a": 0.1, "eta_cutoff": 0.01, "xtc_probability": 1.0, "smoothing_factor": 0.5, "dynatemp_range": 0.5,
    }  # fmt: skip
    for params in ({}, every, {"mirostat": 2}, {"temperature": 0.0}, {"temperature": 1e-6}):
        bias = {1: 1000.0, 2: -1000.0, 3: 1000.0, 4: False}
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out = build_chain({**params, "logit_bias": bias}, seed=1)(np.arange(50, dtype=np.intc), logits)
        assert np.isfinite(out[1]) or np.isfinite(out[3])  # a +1000 bias wins
        assert not np.isfinite(out[2]) and not np.isfinite(out[4]) and not np.isnan(out).any()


def test_num_predict_zero_means_no_limit_and_says_so():
    assert Parameters.of({"num_predict": 0}).num_predict == 0
    assert "-1 or 0 is no limit" in ALL_SPECS["num_predict"].description
    with pytest.raises(ParameterError, match=r"num_predict: -2 is not allowed \(must be a whole number >= -1\)"):
        parse_assignments(["num_predict=-2"])
