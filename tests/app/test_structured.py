"""Structured output: llama.cpp's grammar engine over the embedded model's vocabulary, JSON mode,
JSON schemas and GBNF grammars, and every way a user can get them wrong.

What a user relies on: a reply made under `format: json` parses, under a schema it validates
(checked with the `jsonschema` library), under a grammar it is a sentence of the grammar (checked
with a regular expression of the same language); a bad grammar or schema is one line naming where.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys

import numpy as np
import pytest
from andon.app.engine import Done
from andon.app.grammar import GrammarConstraint, GrammarError, check_grammar
from andon.app.structured import grammar_for, resolve_assignment, resolve_value, schema_to_gbnf
from andon.presets import Parameters
from andon.samplers import Chain, build_chain, softmax

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
        ({"type": "object", "properties": {"n": {"type": "integer", "multipleOf": 2}}}, ["'multipleOf'", "properties.n"]),
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
    from andon.app.chat import ChatSession
    from andon.app.history import History
    from andon.presets.store import PresetStore

    history = History(tmp_path / "h.db")
    yield ChatSession(history, history.create_chat("t", "balanced"), PresetStore(tmp_path / "p"))
    history.close()


def test_set_format_json_schema_and_noformat(session, tmp_path):
    from andon.app.slash import run_slash

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
    from andon.app.slash import run_slash

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
    from andon.app.slash import run_slash

    before = session.params
    r = run_slash(session, line)
    assert not r.ok and needle in r.text and "\n" not in r.text
    assert session.params == before


def test_format_while_a_grammar_is_set_is_refused_and_changes_nothing(session):
    from andon.app.slash import run_slash

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
    from andon.app.inspector import inspect_next

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
    from andon.app.inspector import inspect_next

    tokens = engine.chat_tokens([{"role": "user", "content": "Hello"}])
    assert "grammar" not in [s.name for s in inspect_next(engine, tokens, Parameters.of({})).stages]


def test_set_parameter_grammar_is_confirmed_as_typed(session):
    from andon.app.slash import run_slash

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
