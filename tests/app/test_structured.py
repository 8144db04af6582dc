"""Structured output: llama.cpp's grammar engine over the embedded model's vocabulary, JSON mode,
JSON schemas and GBNF grammars, and every way a user can get them wrong.

What a user relies on: a reply made under `format: json` parses, under a schema it validates
(checked with the `jsonschema` library), under a grammar it is a sentence of the grammar (checked
with a regular expression of the same language); a bad grammar or schema is one line naming where.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from decimal import Decimal

import numpy as np
import pytest
from andon.app.engine.engine import Done
from andon.app.engine.grammar import GrammarConstraint, GrammarError, check_grammar
from andon.app.engine.structured import grammar_for, resolve_assignment, resolve_value, schema_to_gbnf
from andon.presets import Parameters
from andon.samplers import Chain, build_chain, softmax
from hypothesis import assume, given
from hypothesis import strategies as st

YES_NO = 'root ::= ("yes" | "no")'
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}


@pytest.fixture(scope="module")
def vocab(model_path):
    """The embedded model's vocabulary alone (llama.cpp's vocab_only load: no weights)."""
    import llama_cpp

    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(str(model_path).encode(), params)
    vocab_ptr = llama_cpp.llama_model_get_vocab(model)
    n = llama_cpp.llama_vocab_n_tokens(vocab_ptr)
    buf = llama_cpp.ctypes.create_string_buffer(256)

    def piece(token: int) -> bytes:
        size = llama_cpp.llama_token_to_piece(vocab_ptr, token, buf, 256, 0, False)
        return buf.raw[:size]

    def tokenize(text: str) -> list[int]:
        data = text.encode()
        out = (llama_cpp.llama_token * (len(data) + 8))()
        size = llama_cpp.llama_tokenize(vocab_ptr, data, len(data), out, len(out), False, False)
        return list(out[:size])

    eos = llama_cpp.llama_vocab_eos(vocab_ptr)
    yield vocab_ptr, n, piece, tokenize, eos
    llama_cpp.llama_model_free(model)


def feed(g: GrammarConstraint, tokens: list[int]) -> bool:
    """Accept tokens while the grammar allows them; whether all were allowed."""
    for t in tokens:
        if not g.allows(t):
            return False
        g.accept(t)
    return True


# --- the constraint over the vocabulary --------------------------------------------------------


@pytest.mark.model
def test_mask_keeps_exactly_the_tokens_that_start_a_sentence(vocab):
    vocab_ptr, n, piece, _, eos = vocab
    with GrammarConstraint(vocab_ptr, YES_NO) as g:
        masked = g.mask(np.zeros(n, np.float32))
        some = np.array([94, 105, 4607, 1000], np.intc)  # a candidate subset: the same verdicts
        assert np.array_equal(np.isfinite(g.mask(np.zeros(4, np.float32), some)), np.isfinite(masked[some]))
    kept = set(np.flatnonzero(np.isfinite(masked)).tolist())
    # the oracle: every token whose text is a non-empty prefix of "yes" or "no"
    expected = {t for t in range(n) if piece(t) and any(w.startswith(piece(t)) for w in (b"yes", b"no"))}
    assert kept == expected
    assert eos not in kept  # end of turn only where the grammar is complete


@pytest.mark.model
def test_allows_accept_and_completion(vocab):
    vocab_ptr, _, _, tokenize, eos = vocab
    g = GrammarConstraint(vocab_ptr, YES_NO)
    assert not g.is_complete()
    assert not g.allows(tokenize("maybe")[0])
    assert feed(g, tokenize("yes"))
    assert g.is_complete() and g.allows(eos)
    assert not g.allows(tokenize("no")[0])  # nothing may follow a whole sentence
    with pytest.raises(ValueError, match="not allowed"):
        g.accept(tokenize("no")[0])  # refused in Python: llama.cpp would abort the process
    g.reset()
    assert not g.is_complete() and g.allows(tokenize("no")[0])
    g.close()
    g.close()  # closing twice is harmless


@pytest.mark.model
def test_json_grammar_accepts_json_and_rejects_broken_json(vocab):
    vocab_ptr, _, _, tokenize, _ = vocab
    spec = grammar_for(Parameters.of({"format": "json"}))
    assert spec is not None
    good = json.dumps({"name": "Ada", "tags": ["x", 1, 2.5, None, True], "n": {"a": -3}})
    with GrammarConstraint(vocab_ptr, spec.text, spec.root) as g:
        assert feed(g, tokenize(good)) and g.is_complete()
    for broken in ('{"a" 1}', "{'a': 1}", '{"a": 01}', "Sure! {", '"a string"', "[1, 2]"):  # an object
        with GrammarConstraint(vocab_ptr, spec.text, spec.root) as g:
            assert not (feed(g, tokenize(broken)) and g.is_complete()), broken


@pytest.mark.model
def test_schema_grammar_follows_the_schema(vocab):
    vocab_ptr, _, _, tokenize, _ = vocab
    text = schema_to_gbnf(PERSON)
    for reply, ok in (
        ('{"name": "Ada", "age": 36}', True),
        (json.dumps({"name": "Ada", "age": 36}, indent=2), True),  # indented, as models write it
        ('{"name": "Ada"}', False),  # age is required
        ('{"name": "Ada", "age": "36"}', False),  # age is an integer
        ('{"name": "A\nB", "age": 1}', False),  # a raw newline is not allowed inside a JSON string
    ):
        with GrammarConstraint(vocab_ptr, text) as g:
            assert (feed(g, tokenize(reply)) and g.is_complete()) is ok, reply


# --- what a user gets wrong: one line that says where -------------------------------------------


@pytest.mark.parametrize(
    ("grammar", "needles"),
    [
        ('root ::= "a"\nitem ::= "x" |* "y"', ["line 2, column 17", "rule item"]),
        ('root ::= "\\q"', ["unknown escape", "line 1", "rule root"]),
        ('root ::= "a" | foo', ["'foo'", "never defined"]),
        ('start ::= "a"', ["no rule named 'root'"]),
        ('root ::= root "a" | "b"', ["left recursion"]),
        ('root ::= ("yes" | no")', ["not closed"]),
        ("   ", ["empty"]),
    ],
)
def test_a_bad_grammar_is_one_line_naming_where(grammar, needles):
    with pytest.raises(GrammarError) as err:
        check_grammar(grammar)
    message = str(err.value)
    assert "\n" not in message and message.startswith("grammar: ")
    for needle in needles:
        assert needle in message


def test_a_good_grammar_passes_the_check():
    check_grammar(YES_NO)
    check_grammar('root ::= item+\nitem ::= "- " [a-z]+ "\\n"')


@pytest.mark.parametrize(
    ("schema", "needles"),
    [
        ({"properties": {"n": {"type": "integer", "multipleOf": 3}}}, ["'multipleOf'", "at properties.n"]),
        ({"type": "strin"}, ["not valid", "at type"]),
        ({"oneOf": [{"type": "string"}, {"type": "number"}]}, ["'oneOf'", "anyOf"]),
        ({"type": "array", "items": {"type": "string"}, "uniqueItems": True}, ["'uniqueItems'"]),
        ({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["b"]}, ["'b'", "not in properties"]),
        ({"$ref": "https://example.com/s.json"}, ["outside the schema"]),
        ({"type": "string", "nullable": True}, ["'nullable'", '{"type": "null"}']),
        ({"type": "string", "format": "uri"}, ["format 'uri' cannot be enforced", "email"]),
        ({"type": "array", "items": {"type": "integer"}, "maxItems": 30000}, ["maxItems 30,000", "at most 2,000"]),
        ({"maximum": 3}, ['maximum needs type "integer" or "number"']),
        ({"type": "integer", "minimum": 5, "exclusiveMaximum": 5}, ["no integer is within"]),
        ({"type": "number", "minimum": 2.5, "maximum": 1}, ["no number is within"]),
        ({"type": "string", "enum": [1, 2]}, ["no value of enum"]),
        ({"$ref": "#/$defs/Missing"}, ["'#/$defs/Missing' points to nothing"]),
        ({"type": "string", "minLength": 5, "maxLength": 2}, ["minLength 5 is more than maxLength 2"]),
        ({"type": "string", "pattern": '^a"b$'}, ["has a quote", "not supported"]),
        ({"type": "string", "pattern": r"^[\S]$"}, ["\\S cannot be enforced here"]),
        ({"type": "array", "items": {"type": "integer"}, "minItems": 3, "maxItems": 1}, ["minItems 3 is more"]),
        ({"type": "array", "prefixItems": [{"type": "integer"}], "minItems": 2}, ["minItems and maxItems need items"]),
        (json.loads('{"properties": {"a": ' * 150 + "{}" + "}}" * 150), ["nests too deep", "at most 100"]),
        ({"type": "string", "pattern": "[a-z]+"}, ["must start with ^"]),
    ],
)
def test_a_schema_keyword_the_grammar_cannot_enforce_is_refused(schema, needles):
    with pytest.raises(GrammarError) as err:
        grammar_for(Parameters.of({"format": schema}))
    message = str(err.value)
    assert "\n" not in message and message.startswith("format: ")
    for needle in needles:
        assert needle in message


def test_format_and_grammar_together_are_refused():
    with pytest.raises(GrammarError, match="format and grammar cannot be used together"):
        grammar_for(Parameters.of({"format": "json", "grammar": YES_NO}))


def test_free_text_needs_no_grammar():
    assert grammar_for(Parameters.of({})) is None


def test_schema_conversion_leaves_the_users_schema_alone():
    schema = {"type": "object", "properties": {"a": {"$ref": "#/$defs/x"}}, "$defs": {"x": {"type": "boolean"}}}
    before = json.dumps(schema)
    params = Parameters.of({"format": schema})
    grammar_for(params)
    assert json.dumps(params.format) == before


# --- files named on the command line and in /set ------------------------------------------------


def test_schema_and_grammar_files_are_read(tmp_path):
    schema_file = tmp_path / "person.json"
    schema_file.write_text(json.dumps(PERSON))
    grammar_file = tmp_path / "yn.gbnf"
    grammar_file.write_text(YES_NO)
    assert json.loads(resolve_value("format", str(schema_file))) == PERSON
    assert resolve_value("grammar", f"@{grammar_file}") == YES_NO
    assert resolve_value("grammar", str(grammar_file)) == YES_NO
    assert resolve_assignment(f"grammar={grammar_file}") == f"grammar={YES_NO}"
    # values that are not files stay as typed
    assert resolve_value("format", "json") == "json"
    assert resolve_value("format", '{"type": "string"}') == '{"type": "string"}'
    assert resolve_value("grammar", YES_NO) == YES_NO
    assert resolve_value("temperature", "0.5") == "0.5"


def test_missing_or_broken_files_are_one_line(tmp_path):
    with pytest.raises(GrammarError, match=r"format: the schema file .*nope.json does not exist"):
        resolve_value("format", str(tmp_path / "nope.json"))
    with pytest.raises(GrammarError, match=r"grammar: the grammar file .*nope.gbnf does not exist"):
        resolve_value("grammar", f"@{tmp_path / 'nope.gbnf'}")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(GrammarError, match=r"format: the schema file .*bad.json is not valid JSON"):
        resolve_value("format", str(bad))


# --- the command line: bad input is one line and exit status 2, before the model loads -----------


def andon(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "andon", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--grammar", "missing.gbnf"], "grammar: the grammar file missing.gbnf does not exist"),
        (["--format", "missing.json"], "format: the schema file missing.json does not exist"),
        (["--grammar", 'root ::= "a" |* "b"'], "line 1, column 17"),
        (["--format", '{"type": "object", "properties": {"a": '], "format: the schema is not valid JSON"),
        (["--format", '{"type": "integer", "multipleOf": 2}'], "'multipleOf' is not supported"),
        (["--format", "json", "--grammar", 'root ::= "a"'], "format and grammar cannot be used together"),
        (["--set", "format=json", "--set", 'grammar=root ::= "a"'], "format and grammar cannot be used together"),
        (["--set", "grammar=@missing.gbnf"], "does not exist"),
    ],
)
def test_bad_structured_output_options_are_one_line_and_exit_2(args, needle):
    for command in ("ask", "inspect"):
        r = andon(command, "Hello", *args)
        assert r.returncode == 2, r.stderr
        assert r.stdout == ""  # nothing generated
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
        assert lines[0].startswith("andon: ") and needle in lines[0], lines[0]


# --- the app's slash commands (Ollama's REPL habits) ----------------------------------------------


@pytest.fixture
def session(tmp_path):
    from andon.app.chat.history import History
    from andon.app.chat.session import ChatSession
    from andon.presets.store import PresetStore

    history = History(tmp_path / "h.db")
    yield ChatSession(history, history.create_chat("t", "balanced"), PresetStore(tmp_path / "p"))
    history.close()


def test_set_format_json_schema_and_noformat(session, tmp_path):
    from andon.app.chat.slash import run_slash

    assert run_slash(session, "/set format json").text == "Set format to 'json' mode."
    assert session.params.format == "json"
    assert run_slash(session, "/set noformat").text == "Disabled format."
    assert session.params.format == ""
    r = run_slash(session, '/set format {"type": "object", "properties": {"a": {"type": "string"}}}')
    assert r.ok and session.params.format == {"type": "object", "properties": {"a": {"type": "string"}}}
    schema_file = tmp_path / "person.json"
    schema_file.write_text(json.dumps(PERSON))
    assert run_slash(session, f"/set format {schema_file}").ok and session.params.format == PERSON
    # stored with the chat: a reopened session has it
    assert session.chat.parameters["format"] == PERSON


def test_set_parameter_keeps_the_quotes_of_json_and_gbnf(session, tmp_path):
    from andon.app.chat.slash import run_slash

    assert run_slash(session, f"/set parameter grammar {YES_NO}").ok
    assert session.params.grammar == YES_NO
    assert run_slash(session, '/set parameter grammar ""').ok and session.params.grammar == ""
    assert run_slash(session, '/set parameter format {"type": "string"}').ok
    assert session.params.format == {"type": "string"}
    assert run_slash(session, '/set parameter format ""').ok and session.params.format == ""
    grammar_file = tmp_path / "yn.gbnf"
    grammar_file.write_text(YES_NO)
    assert run_slash(session, f"/set parameter grammar @{grammar_file}").ok and session.params.grammar == YES_NO


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ('/set parameter grammar root ::= "a" |* "b"', "line 1, column 17"),
        ('/set format {"type": "integer", "multipleOf": 2}', "'multipleOf' is not supported"),
        ("/set format missing.json", "does not exist"),
        ('/set format {"type": ', "not valid JSON"),
        ("/set format", "usage: /set format json"),
    ],
)
def test_a_refused_format_or_grammar_changes_nothing(session, line, needle):
    from andon.app.chat.slash import run_slash

    before = session.params
    r = run_slash(session, line)
    assert not r.ok and needle in r.text and "\n" not in r.text
    assert session.params == before


def test_format_while_a_grammar_is_set_is_refused_and_changes_nothing(session):
    from andon.app.chat.slash import run_slash

    assert run_slash(session, f"/set parameter grammar {YES_NO}").ok
    r = run_slash(session, "/set format json")
    assert not r.ok and "cannot be used together" in r.text
    assert session.params.format == "" and session.params.grammar == YES_NO


# --- replies on the embedded model: every built-in preset, a few seeds ----------------------------

PRESETS = ("factual", "balanced", "code", "creative")  # creative: temperature 1.5, XTC and DRY on
SEEDS = (1, 2)
NUMBERS = 'root ::= "[" num ("," " " num){0,7} "]"\nnum ::= [1-9] [0-9]{0,2}'
NUMBERS_RE = r"\[[1-9][0-9]{0,2}(, [1-9][0-9]{0,2}){0,7}\]"
BOUNDED_PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 24},
        "age": {"type": "integer"},
        "hobbies": {"type": "array", "items": {"type": "string", "maxLength": 16}, "maxItems": 3},
    },
    "required": ["name", "age", "hobbies"],
    "additionalProperties": False,
}
ASK_PERSON = [{"role": "user", "content": "Describe a fictional person as JSON: name, age and hobbies."}]
ASK_JSON = [{"role": "user", "content": "Return a JSON object with the keys name and age for a fictional person."}]


def reply(engine, messages, params, constraint=None):
    done = [e for e in engine.stream(messages, params, constraint=constraint) if isinstance(e, Done)]
    assert len(done) == 1
    return done[0]


def preset_params(name: str, seed: int, **values) -> Parameters:
    from andon.presets.store import PresetStore

    return Parameters.of({"seed": seed, **values}, base=PresetStore().load(name).parameters)


@pytest.mark.model
@pytest.mark.parametrize("preset", PRESETS)
def test_json_mode_replies_parse(engine, preset):
    for seed in SEEDS:
        done = reply(engine, ASK_JSON, preset_params(preset, seed, format="json", num_predict=200))
        assert done.finish_reason == "stop", done.text
        json.loads(done.text)


@pytest.mark.model
@pytest.mark.parametrize("preset", PRESETS)
def test_schema_replies_validate(engine, preset):
    import jsonschema

    for seed in SEEDS:
        done = reply(engine, ASK_PERSON, preset_params(preset, seed, format=BOUNDED_PERSON, num_predict=200))
        assert done.finish_reason == "stop", done.text
        jsonschema.validate(json.loads(done.text), BOUNDED_PERSON)


@pytest.mark.model
@pytest.mark.parametrize("preset", PRESETS)
def test_grammar_replies_are_sentences_of_the_grammar(engine, preset):
    for question, grammar, language in (
        ("Is the sky blue? Answer yes or no.", YES_NO, r"yes|no"),
        ("List a few prime numbers.", NUMBERS, NUMBERS_RE),
    ):
        for seed in SEEDS:
            params = preset_params(preset, seed, grammar=grammar, num_predict=200)
            done = reply(engine, [{"role": "user", "content": question}], params)
            assert done.finish_reason == "stop" and re.fullmatch(language, done.text), done.text


@pytest.mark.model
def test_a_reply_cut_by_num_predict_is_length_never_complete(engine):
    for fmt in ("json", BOUNDED_PERSON):
        done = reply(engine, ASK_PERSON, preset_params("balanced", 1, format=fmt, num_predict=4))
        assert done.finish_reason == "length" and done.usage.completion_tokens == 4
        with pytest.raises(json.JSONDecodeError):
            json.loads(done.text)


class RecordingChain(Chain):
    """The chain, with what each run left: (context length, candidate ids, their probabilities)."""

    def __init__(self, chain: Chain) -> None:
        super().__init__(chain.stages, chain.seed)
        self.runs: list[tuple[int, np.ndarray, np.ndarray]] = []

    def candidates_after(self, input_ids, logits, observe=None):
        c = super().candidates_after(input_ids, logits, observe)
        self.runs.append((int(np.asarray(input_ids).shape[0]), c.ids.copy(), softmax(c.logits)))
        return c

    def last_runs(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """The run kept for each position: the last one (a fallback's rerun replaces the first)."""
        return {length: (ids, p) for length, ids, p in self.runs}


def grammar_reply(engine, params: Parameters) -> tuple[RecordingChain, GrammarConstraint, Done]:
    chain = RecordingChain(build_chain(params.sampling(), vocab=engine.vocab_for(params), seed=params.seed))
    constraint = engine.constraint_for(params)
    done = reply_with(engine, [{"role": "user", "content": "List a few prime numbers."}], params, chain, constraint)
    return chain, constraint, done


def reply_with(engine, messages, params, chain, constraint) -> Done:
    events = engine.stream(messages, params, chain=chain, constraint=constraint)
    return next(e for e in events if isinstance(e, Done))


@pytest.mark.model
def test_mirostat_learns_once_per_token_when_the_grammar_falls_back(engine):
    params = preset_params("balanced", 3, mirostat=2, grammar=NUMBERS, num_predict=40)
    chain, constraint, done = grammar_reply(engine, params)
    assert constraint.masks > 0  # the fallback ran
    kept = chain.last_runs()
    assert len(chain.runs) == len(kept) + constraint.masks  # one extra run per fallback, no more
    start = min(kept)
    tau, eta = params.mirostat_tau, params.mirostat_eta
    mu = 2 * tau  # llama.cpp's start; then mu -= eta * (surprise - tau) for each token, once
    for i, token in enumerate(done.tokens):
        if start + i + 1 not in kept:
            break  # the last token is learnt on a next run that never came
        ids, p = kept[start + i]
        mu -= eta * (-math.log2(float(p[np.flatnonzero(ids == token)[0]])) - tau)
    assert math.isclose(chain.stages[-1].mu, mu, rel_tol=1e-6)


@pytest.mark.model
def test_the_chains_generator_draws_once_per_token_when_the_grammar_falls_back(engine):
    params = preset_params("creative", 4, grammar=NUMBERS, num_predict=40)  # XTC draws once per run
    chain, constraint, _ = grammar_reply(engine, params)
    assert constraint.masks > 0
    reference = np.random.default_rng(4)
    for _ in chain.last_runs():
        reference.random()
    assert chain.rng.random() == reference.random()


# --- the inspector shows the grammar as a stage ---------------------------------------------------


@pytest.mark.model
def test_inspector_shows_what_the_grammar_removes(engine):
    from andon.app.engine.inspection import inspect_next

    params = Parameters.of({"grammar": YES_NO})
    tokens = engine.chat_tokens([{"role": "user", "content": "Is the sky blue? Answer yes or no."}])
    result = inspect_next(engine, tokens, params, top=6)
    assert [s.name for s in result.stages][:2] == ["input", "grammar"]
    kept = {engine.token_text(t) for t in result.final.probs}
    assert kept and kept <= {"y", "ye", "yes", "n", "no"}
    assert result.stages[1].kept == 5  # every token that starts "yes" or "no", nothing else
    removed = [t for t in result.shown if t not in result.stages[1].probs]
    assert removed and all(result.stages[0].probs.get(t, 0) > 0 for t in removed)  # likely, yet refused
    # inside a reply: after "ye" only the rest of "yes" is left
    after = inspect_next(engine, [*tokens, *engine.tokenize("ye")], params, top=6, reply=engine.tokenize("ye"))
    assert {engine.token_text(t) for t in after.final.probs} == {"s"}


@pytest.mark.model
def test_inspector_without_a_grammar_has_no_grammar_stage(engine):
    from andon.app.engine.inspection import inspect_next

    tokens = engine.chat_tokens([{"role": "user", "content": "Hello"}])
    assert "grammar" not in [s.name for s in inspect_next(engine, tokens, Parameters.of({})).stages]


def test_set_parameter_grammar_is_confirmed_as_typed(session):
    from andon.app.chat.slash import run_slash

    assert run_slash(session, f"/set parameter grammar {YES_NO}").text == f"Set parameter 'grammar' to '{YES_NO}'"


def test_presets_save_reads_a_grammar_file_and_refuses_a_bad_one(tmp_path):
    grammar_file = tmp_path / "yn.gbnf"
    grammar_file.write_text(YES_NO)
    r = andon("presets", "save", "yn", "--set", f"grammar=@{grammar_file}")
    assert r.returncode == 0, r.stderr
    from andon.presets.store import PresetStore

    assert PresetStore().load("yn").parameters.grammar == YES_NO
    r = andon("presets", "save", "bad", "--set", 'grammar=root ::= "a" |* "b"')
    assert r.returncode == 2 and "line 1, column 17" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "bad" not in PresetStore().names()


# --- issue 19: grammars past the limits, grammars no text can match ---------------------------------

DEEP = "root ::= " + "(" * 20000 + '"a"' + ")" * 20000
LONG = "root ::= " + " | ".join(f'"w{i}"' for i in range(300_000))  # took llama.cpp over a minute
CHAIN = "root ::= r0\n" + "\n".join(f'r{i} ::= r{i + 1} "x"' for i in range(3000)) + '\nr3000 ::= "a"'


@pytest.mark.parametrize(
    ("grammar", "needles"),
    [
        (DEEP, ["nesting too deep", "20,000 parentheses", "at most 1,000"]),
        (CHAIN, ["nesting too deep", "chain of 3,00", "at most 1,000"]),
        (LONG, ["too large", "characters", "at most 200,000"]),
        ('root ::= "a"{5,2}', ["{5,2} goes down"]),  # llama.cpp's count wraps: it reads for minutes
    ],
)
def test_a_grammar_past_the_limits_is_refused_at_once_naming_the_limit(grammar, needles):
    started = time.perf_counter()
    with pytest.raises(GrammarError) as err:
        check_grammar(grammar)
    assert time.perf_counter() - started < 5  # seconds, not llama.cpp's minute (or its crash)
    message = str(err.value)
    assert "\n" not in message and message.startswith("grammar: ")
    for needle in needles:
        assert needle in message, message


def test_a_grammar_llama_cpp_reads_too_slowly_is_refused_when_the_time_is_up(monkeypatch):
    import andon.app.engine.grammar as grammar_module

    # each rule may be empty and holds two of the next: llama.cpp's start states double per rule
    slow = 'root ::= r0 "end"\n' + "\n".join(f'r{i} ::= r{i + 1} r{i + 1} | ""' for i in range(40)) + '\nr40 ::= "a"'
    monkeypatch.setattr(grammar_module, "CHECK_SECONDS", 2)
    started = time.perf_counter()
    with pytest.raises(GrammarError, match=r"grammar: too complex: .* in 2 s \(the limit\)"):
        check_grammar(slow)
    assert time.perf_counter() - started < 10


@pytest.mark.parametrize(
    ("grammar", "needles"),
    [
        ('root ::= "a" root', ["no text can match it", "'root' never ends", "needs 'root' again"]),
        ('root ::= "<" item ">"\nitem ::= "x" item | "y" item', ["'root' never ends", "'item'"]),
        ('root ::= "yes" | "no" more\nmore ::= "!" more', ["rule 'more' never ends", "could not be complete"]),
        ('root ::= "a" ("b" | ("c" loop))\nloop ::= "d" loop', ["rule 'loop' never ends"]),
        ('root ::= "\\x00"', ["no token gives", "NUL"]),
        ('root ::= "a" [^\\x00-\\U0010FFFF]', ["no token gives"]),
        ('root ::= ""', ["only empty text"]),
        ('root ::= x?\nx ::= "b" x', ["rule 'x' never ends"]),
        ('root ::= x x\nx ::= "" | ""', ["only empty text"]),
    ],
)
def test_a_grammar_no_text_can_match_is_refused_naming_the_rule(grammar, needles):
    with pytest.raises(GrammarError) as err:
        check_grammar(grammar)
    message = str(err.value)
    assert "\n" not in message and message.startswith("grammar: ")
    for needle in needles:
        assert needle in message, message


@pytest.mark.parametrize(
    "grammar",
    [
        'root ::= "a" root | "b"',  # recursion with a way out
        'root ::= item ("," item)*\nitem ::= "(" root ")" | [a-z]+',  # nested through a group
        'root ::= x? "!"\nx ::= "a" | "b" x',
        'root ::= "a" |\n  "b"  # a comment\n',
        'root ::= [^\\x00] "end"',
        'root ::= "x"{0,3000} "y"',  # llama.cpp reads a count above 2000 as no limit
    ],
)
def test_grammars_with_a_way_to_end_pass(grammar):
    check_grammar(grammar)


class NothingAfter:
    """The grammar, except that after `n` tokens it allows none (as a vocabulary without the
    character a grammar needs next would)."""

    def __init__(self, inner: GrammarConstraint, n: int) -> None:
        self.inner, self.n, self.taken = inner, n, 0

    def allows(self, token: int) -> bool:
        return self.taken < self.n and self.inner.allows(token)

    def mask(self, logits):
        masked = self.inner.mask(logits)
        return masked if self.taken < self.n else np.full_like(masked, -np.inf)

    def accept(self, token: int) -> None:
        self.inner.accept(token)
        self.taken += 1


@pytest.mark.model
def test_a_reply_the_grammar_lets_no_token_continue_says_so(engine):
    from andon.app.engine.engine import ReplyNotice

    params = preset_params("balanced", 1, format="json", num_predict=50)
    for n in (0, 3):
        constraint = NothingAfter(engine.constraint_for(params), n)
        events = list(engine.stream(ASK_JSON, params, constraint=constraint))
        done = events[-1]
        assert isinstance(done, Done) and done.finish_reason == "grammar"  # never "stop": it is not complete
        assert done.usage.completion_tokens == n
        notices = [e.text for e in events if isinstance(e, ReplyNotice)]
        assert any("allows none of the model's tokens" in t and "incomplete" in t for t in notices), notices


# --- issue 19: --format given what is not a schema file ------------------------------------------------


def test_format_names_what_the_path_is(tmp_path):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    (tmp_path / "folder.json").mkdir()
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "number.json").write_text("42")
    (tmp_path / "string.json").write_text('"a"')
    for name, needle in (
        ("pipe.json", "is a named pipe (FIFO), not a file"),
        ("folder.json", "is a folder, not a file"),
        ("list.json", "holds a JSON list, not a schema"),
        ("number.json", "holds a JSON number, not a schema"),
        ("string.json", "holds a JSON string, not a schema"),
    ):
        with pytest.raises(GrammarError) as err:
            resolve_value("format", str(tmp_path / name))
        assert needle in str(err.value) and "does not exist" not in str(err.value), err.value
    for typed, needle in (("[1, 2]", "[1, 2] is a JSON list"), ("5", "5 is a JSON number"), ("true", "JSON true")):
        with pytest.raises(GrammarError, match=re.escape(needle)):
            resolve_value("format", typed)
    with pytest.raises(GrammarError, match="is a folder"):
        resolve_value("grammar", f"@{tmp_path / 'folder.json'}")
    big = tmp_path / "big.json"
    big.write_text("{}" + " " * (5 << 20))
    with pytest.raises(GrammarError, match=r"is too large \(5,242,882 bytes; at most 4,194,304\)"):
        resolve_value("format", str(big))
    deep = '{"properties": {"a": ' * 2000 + "{}" + "}}" * 2000  # past Python's JSON reader
    (tmp_path / "deep.json").write_text(deep)
    for value in (deep, str(tmp_path / "deep.json")):
        with pytest.raises(GrammarError, match="nests too deep to read"):
            resolve_value("format", value)


def test_ask_with_a_fifo_as_format_answers_at_once_in_one_line(tmp_path):
    fifo = tmp_path / "schema.json"
    os.mkfifo(fifo)  # nobody writes to it: opening it to read would wait forever
    for option in ("--format", "--grammar"):
        r = andon("ask", "Hello", option, str(fifo))  # andon() gives up after 120 s
        assert r.returncode == 2 and r.stdout == ""
        assert r.stderr.count("\n") == 1 and "is a named pipe (FIFO), not a file" in r.stderr, r.stderr


def test_ask_with_a_deep_or_endless_grammar_is_one_line_and_exit_2():
    for grammar, needle in ((DEEP, "nesting too deep"), ('root ::= "a" root', "no text can match it")):
        r = andon("ask", "Hello", "--grammar", grammar)
        assert r.returncode == 2 and r.stdout == "" and "Traceback" not in r.stderr
        assert r.stderr.count("\n") == 1 and needle in r.stderr, r.stderr


# --- issue 19: schemas as tools write them ------------------------------------------------------------


def pydantic_models() -> dict[str, type]:
    """Real pydantic models: nested, Optional, Field bounds, Literal, an enum, bounded lists,
    dates, times, UUIDs, and a recursive model (whose schema is a top-level $ref into $defs)."""
    import datetime
    import enum
    import uuid
    from typing import Annotated, Literal, Optional

    from pydantic import BaseModel, Field

    class Color(enum.StrEnum):
        red = "red"
        green = "green"
        blue = "blue"

    class Address(BaseModel):
        city: str = Field(max_length=30)
        zip: Optional[str] = Field(default=None, max_length=10)  # noqa: UP045 - as tools write it

    class Person(BaseModel):
        name: str = Field(max_length=24)
        age: int = Field(ge=0, le=120)
        height: float = Field(gt=0.5, lt=2.5)
        kind: Literal["student", "teacher"]
        color: Color
        tags: list[Annotated[str, Field(max_length=12)]] = Field(min_length=1, max_length=3)
        address: Address
        nickname: Optional[str] = Field(default=None, max_length=12)  # noqa: UP045

    class Event(BaseModel):
        id: uuid.UUID
        day: datetime.date
        at: datetime.time
        seen: datetime.datetime
        score: Optional[int] = Field(default=None, ge=-5, lt=100)  # noqa: UP045

    class Comment(BaseModel):
        author: str = Field(max_length=16)
        text: str = Field(max_length=40)
        replies: list[Comment] = Field(default_factory=list, max_length=2)

    Comment.model_rebuild()
    return {"person": Person, "event": Event, "comment": Comment}


def test_pydantic_schemas_become_grammars():
    models = pydantic_models()
    for model in models.values():
        schema = model.model_json_schema()
        assert grammar_for(Parameters.of({"format": schema})) is not None
    assert models["comment"].model_json_schema()["$ref"] == "#/$defs/Comment"  # the case once refused


@pytest.mark.model
def test_schema_grammars_enforce_bounds_formats_and_unions(vocab):
    vocab_ptr, _, _, tokenize, _ = vocab

    def matches(schema, text: str) -> bool:
        with GrammarConstraint(vocab_ptr, schema_to_gbnf(schema)) as g:
            return feed(g, tokenize(text)) and g.is_complete()

    age = {"type": "integer", "minimum": 0, "maximum": 120}
    assert all(matches(age, str(n)) for n in (0, 7, 99, 100, 120))
    assert not any(matches(age, t) for t in ("121", "-1", "1000", "007", "1.5"))
    height = {"type": "number", "exclusiveMinimum": 0.5, "exclusiveMaximum": 2.5}
    assert all(matches(height, t) for t in ("0.51", "1", "1.75", "2.4999"))
    assert not any(matches(height, t) for t in ("0.5", "0.50", "2.5", "3", "-1", "1e0"))
    day = {"type": "string", "format": "date"}
    assert all(matches(day, f'"{d}"') for d in ("2024-02-29", "2000-02-29", "1999-12-31", "2023-04-30"))
    assert not any(matches(day, f'"{d}"') for d in ("2023-02-29", "1900-02-29", "2023-04-31", "2023-13-01"))
    email = {"type": "string", "format": "email"}
    assert matches(email, '"ada.lovelace@example.org"') and not matches(email, '"ada"')
    code = {"type": "string", "pattern": r"^\d{3}-[a-z]+\.$"}  # \d and \. as pydantic users write them
    assert matches(code, '"123-abc."') and not matches(code, '"12-abc."') and not matches(code, '"123-abc"')
    two = {"type": "string", "pattern": "^[^,]{2}$"}  # a negated class: still no raw quote or newline
    assert matches(two, '"ab"') and not matches(two, '"a,"') and not matches(two, '"a"b"')
    ipv4 = {"type": "string", "format": "ipv4"}
    assert matches(ipv4, '"192.168.0.255"') and not any(matches(ipv4, f'"{a}"') for a in ("256.1.1.1", "01.2.3.4"))
    nullable = {"type": ["integer", "null"], "minimum": 1}
    assert matches(nullable, "null") and matches(nullable, "5") and not matches(nullable, "0")
    names = {"type": "array", "items": {"type": "string", "maxLength": 3}, "minItems": 1, "maxItems": 2}
    assert matches(names, '["ab", "c"]') and not matches(names, "[]") and not matches(names, '["a", "b", "c"]')
    assert not matches(names, '["abcd"]')


ASK_MODEL = {
    "person": "Write a person as JSON.",
    "event": "Write an event as JSON.",
    "comment": "Write a short comment thread as JSON.",  # a recursive model: a reply must end somewhere
}


@pytest.mark.model
@pytest.mark.parametrize("name", ["person", "event", "comment"])
def test_pydantic_model_replies_validate(engine, name):
    import jsonschema

    model = pydantic_models()[name]
    schema = model.model_json_schema()
    ask = [{"role": "user", "content": ASK_MODEL[name]}]
    for preset, seed in (("factual", 1), ("balanced", 3)):  # greedy, and a seeded sampled preset
        done = reply(engine, ask, preset_params(preset, seed, format=schema, num_predict=400))
        assert done.finish_reason == "stop", done.text
        checker = jsonschema.Draft202012Validator.FORMAT_CHECKER  # date, email, uuid (time needs a package)
        jsonschema.validate(json.loads(done.text), schema, format_checker=checker)
        model.model_validate_json(done.text)  # pydantic reads it back: dates, UUIDs, bounds


def gbnf_expression_as_regex(expression: str) -> re.Pattern[str]:
    """A GBNF expression of literals, [classes], groups, | and counts, as the regular expression
    of the same language (what number_ranges writes), to check it against Python's numbers."""
    parts = re.findall(r'"[^"]*"|\[[^\]]*\]|\{[^}]*\}|[()|?*+]|\s+', expression)
    assert "".join(parts) == expression
    table = {"(": "(?:", ")": ")", "|": "|", "?": "?", "*": "*", "+": "+"}
    out = [re.escape(p[1:-1]) if p[0] == '"' else table.get(p, p) for p in parts if not p.isspace()]
    return re.compile("(?:" + "".join(out) + ")")


@given(
    low=st.one_of(st.none(), st.integers(-(10**6), 10**6)),
    high=st.one_of(st.none(), st.integers(-(10**6), 10**6)),
    values=st.lists(st.integers(-(10**7), 10**7), min_size=1, max_size=30),
)
def test_integer_bounds_allow_exactly_the_integers_within(low, high, values):
    from andon.app.engine.number_ranges import integer_range

    assume(low is not None or high is not None)
    assume(low is None or high is None or low <= high)
    language = gbnf_expression_as_regex(integer_range(low, high))
    for v in [*values, *(b + d for b in (low, high) if b is not None for d in (-1, 0, 1))]:
        within = (low is None or v >= low) and (high is None or v <= high)
        assert bool(language.fullmatch(str(v))) == within, (low, high, v)


DECIMALS = st.decimals(min_value=-1000, max_value=1000, places=3, allow_nan=False, allow_infinity=False)


@given(
    low=st.one_of(st.none(), DECIMALS),
    high=st.one_of(st.none(), DECIMALS),
    strict=st.tuples(st.booleans(), st.booleans()),
    values=st.lists(DECIMALS, min_size=1, max_size=30),
)
def test_number_bounds_allow_exactly_the_numbers_within(low, high, strict, values):
    from andon.app.engine.number_ranges import Bound, number_range

    assume(low is not None or high is not None)
    assume(low is None or high is None or low < high or (low == high and not any(strict)))
    lo = None if low is None else Bound(low, strict[0])
    hi = None if high is None else Bound(high, strict[1])
    language = gbnf_expression_as_regex(number_range(lo, hi))
    near = [b + d for b in (low, high) if b is not None for d in (Decimal("-0.001"), Decimal(0), Decimal("0.001"))]
    for v in [*values, *near]:
        within = (lo is None or v > low or (v == low and not lo.strict)) and (
            hi is None or v < high or (v == high and not hi.strict)
        )
        for text in {format(v, "f"), format(v.normalize(), "f")}:  # 2.500 and 2.5
            if text.startswith("-") and v == 0:
                continue  # "-0" is left to the positive side's "0"
            assert bool(language.fullmatch(text)) == within, (lo, hi, text)
