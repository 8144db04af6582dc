"""Text in Modelfiles: read as Ollama's parser reads it, and any text a preset holds survives export -> import.

The reading cases are Ollama's own (parser/parser_test.go): what `ollama create` makes of a file
is what andon imports. Export writes text in the first of Ollama's forms that reads back exactly;
text no form can hold (a control character, a line that ends with \"\"\") goes in andon's comments.
"""

from __future__ import annotations

import pytest
from andon.presets import Parameters
from andon.presets.modelfile import ANDON_SECTION, ModelfileError, export_modelfile, parse_modelfile
from andon.presets.ollama_syntax import Command, ollama_text, read_commands, unwritable
from andon.presets.preset import Preset
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

# Pieces that trip up a Modelfile: quotes of every length, backslashes, line ends, edge spaces,
# lines that look like commands or comments, andon's own section.
PIECES = [
    '"""', '"', '""', "\\", '\\"', "\n", "\r", "\r\n", " ", "\t", "a", "é", "\x1b[31m",
    "MESSAGE user hi", "TEMPLATE {{ .Prompt }}", "PARAMETER temperature 2", "# comment", "FROM evil", "SYSTEM x",
    ANDON_SECTION, "# PARAMETER top_k 1",
]  # fmt: skip
HOSTILE = st.lists(st.sampled_from(PIECES), max_size=12).map("".join)
ANY_TEXT = st.one_of(HOSTILE, st.text())


def commands(text: str) -> list[tuple[str, str, str]]:
    return [(c.directive, c.key, c.value) for c in read_commands(text) if isinstance(c, Command)]


@pytest.mark.parametrize(
    ("modelfile", "system"),
    [
        ('SYSTEM """\nThis is a\nmultiline system.\n"""\n', "\nThis is a\nmultiline system.\n"),
        ('SYSTEM """\nThis is a\nmultiline system."""\n', "\nThis is a\nmultiline system."),
        ('SYSTEM """This is a\nmultiline system."""', "This is a\nmultiline system."),
        ('SYSTEM """This is a multiline system with "quotes"."""\n', 'This is a multiline system with "quotes".'),
        ('SYSTEM """"""\n', ""),
        ('SYSTEM ""\n', ""),
        ('SYSTEM "\'"\n', "'"),
        ('SYSTEM """\'\'"\'""\'""\'"\'\'\'\'\'""\'""\'"""\n', "''\"'\"\"'\"\"'\"'''''\"\"'\"\"'"),
        ('SYSTEM """Wrap code in """ fences."""\n', 'Wrap code in """ fences.'),  # `"""` inside a line
        ('SYSTEM "Say "hi""\n', 'Say "hi"'),
        ('SYSTEM "C:\\new\\table \\"x\\""\n', 'C:\\new\\table \\"x\\"'),  # no escapes: a backslash is one
        ("SYSTEM   You are Mario.  \n", "You are Mario."),  # unquoted: trimmed, to the end of the line
        ('SYSTEM """a\r\nb"""\r\n', "a\r\nb"),
    ],
)
def test_system_is_read_as_ollama_reads_it(modelfile, system):
    assert commands(modelfile) == [("SYSTEM", "", system)]
    assert parse_modelfile("FROM x\n" + modelfile).system == system


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ("stop ### User:", "### User:"),
        ("stop ### User: ", "### User:"),
        ('stop "### User:"', "### User:"),
        ('stop "### User: "', "### User: "),
        ('stop """### User:"""', "### User:"),
        ('stop """### User:\n"""', "### User:\n"),
        ("stop <|eot_id|>", "<|eot_id|>"),
        ('stop "\\n"', "\\n"),  # two characters, as Ollama reads it
    ],
)
def test_a_stop_string_is_read_as_ollama_reads_it(line, value):
    assert commands(f"FROM foo\nPARAMETER {line}\n") == [("FROM", "", "foo"), ("PARAMETER", "stop", value)]
    assert parse_modelfile(f"FROM foo\nPARAMETER {line}\n").parameters == {"stop": [value]}


@pytest.mark.parametrize(
    ("modelfile", "message"),
    [
        ('FROM x\nSYSTEM """This is a multiline system.""\n', 'line 2: the value opens """ but never closes it'),
        ('FROM x\nSYSTEM "\n', 'line 2: the value opens " but never closes it'),
        ("FROM x\nMESSAGE bot hello\n", "line 2: expected MESSAGE ROLE TEXT, the role one of system, user, assistant"),
        ("FROM x\nPARAMETER top-k 3\n", "line 2: expected PARAMETER NAME VALUE"),
        ("FROM x\n\nBOGUS thing\n", "line 3: 'BOGUS' is not a Modelfile command"),
    ],
)
def test_what_ollamas_parser_refuses_is_one_line_naming_the_line(modelfile, message):
    with pytest.raises(ModelfileError, match=message) as caught:
        parse_modelfile(modelfile)
    assert "\n" not in str(caught.value)


def round_trip(preset: Preset) -> tuple[Preset, list[str], str]:
    notes: list[str] = []
    text = export_modelfile(preset, default_model="./model.gguf", notes=notes)
    return parse_modelfile(text).to_preset(preset.name), notes, text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(system=ANY_TEXT, description=ANY_TEXT)
@example(system='Wrap code in """ fences.', description="")
@example(system='Say "hi"', description="")
@example(system='Use:\n"""\ncode\n"""\n', description="andon parameters that Ollama does not know:\nPARAMETER top_k 1")
@example(system="MESSAGE user hi\nTEMPLATE x\nPARAMETER temperature 2\n# c", description="")
@example(system="  edges \r\n", description="\x1b]2;title\x07")
def test_any_system_prompt_and_description_survive_export_and_import(system, description):
    preset = Preset(name="p", system=system, description=description)
    back, notes, text = round_trip(preset)
    assert back.system == system
    assert back.description == (description or "Imported from an Ollama Modelfile.")
    assert back.parameters == preset.parameters  # nothing in the text turned into a setting
    if not system or not unwritable(system):  # Ollama reads the same system prompt from the SYSTEM line
        assert not notes
    else:
        assert len(notes) == 1 and "system prompt" in notes[0] and "\nSYSTEM " not in text


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stops=st.lists(ANY_TEXT, min_size=1, max_size=4))
@example(stops=['"', '"""', "\n", "a\n", " x ", "\\n", "\x00"])
def test_any_stop_strings_survive_export_and_import_in_order(stops):
    preset = Preset(name="p", parameters=Parameters.of({"stop": stops, "temperature": 0.123456789}))
    back, notes, _ = round_trip(preset)
    assert back.parameters == preset.parameters
    assert len(notes) == sum(1 for stop in stops if unwritable(stop))


@given(text=ANY_TEXT)
def test_ollama_text_reads_back_exactly_or_says_why_not(text):
    written = ollama_text(text)
    if written is None:
        assert unwritable(text)
    else:
        assert commands(f"SYSTEM {written}\n") == [("SYSTEM", "", text)]


def test_a_model_path_with_spaces_and_andons_own_text_parameters_round_trip():
    params = Parameters.of({
        "grammar": 'root ::= "a\\"" | "\n"', "dry_sequence_breakers": ["\n", '"""', "\r"], "draft": "ngram",
        "format": {"type": "object", "properties": {"a\nb": {"type": "string"}}}, "logit_bias": {"x\ny": False},
    })  # fmt: skip
    preset = Preset(name="p", model="/models/my model.gguf", task="code", description="Mine.", parameters=params)
    back, notes, text = round_trip(preset)
    assert back == preset and not notes
    assert "FROM /models/my model.gguf\n" in text
    assert all(line.isprintable() for line in text.splitlines())  # one line each, nothing a terminal obeys


ROLES = st.sampled_from(["system", "user", "assistant"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=st.lists(st.tuples(ROLES, ANY_TEXT), max_size=4), template=ANY_TEXT)
@example(messages=[("user", "Who are you?"), ("assistant", "It's-a me,\nMario!")], template="{{ .Prompt }}")
@example(messages=[("user", 'ends with """\nx'), ("assistant", "\x1b[31m")], template='"""\n')
def test_any_example_exchange_and_template_survive_export_and_import_in_order(messages, template):
    preset = Preset(name="p", messages=[{"role": r, "content": c} for r, c in messages], template=template)
    back, notes, text = round_trip(preset)
    assert back.messages == preset.messages and back.template == template
    unheld = [c for _, c in messages if unwritable(c)]
    assert len(notes) == len(unheld) + bool(template and unwritable(template))
    seen = [(role, value) for directive, role, value in commands(text) if directive == "MESSAGE"]
    assert seen == [(r, c) for r, c in messages if not unwritable(c)]  # Ollama reads the others, in order


def test_message_lines_are_the_presets_example_exchange_and_a_template_is_kept_with_one_note():
    modelfile = (
        'FROM ./m.gguf\nTEMPLATE """{{ if .System }}<|system|>{{ .System }}{{ end }}{{ .Prompt }}"""\n'
        'MESSAGE user Is Toronto in Canada?\nMESSAGE assistant """yes"""\nMESSAGE user "Is Sacramento in Canada?"\n'
        "MESSAGE assistant no\n"
    )
    imported = parse_modelfile(modelfile)
    preset = imported.to_preset("geo")
    assert [(m.role, m.content) for m in preset.messages] == [
        ("user", "Is Toronto in Canada?"),
        ("assistant", "yes"),
        ("user", "Is Sacramento in Canada?"),
        ("assistant", "no"),
    ]
    assert preset.template == "{{ if .System }}<|system|>{{ .System }}{{ end }}{{ .Prompt }}"
    (note,) = imported.notes
    assert (
        note.startswith("line 2: TEMPLATE (Ollama's Go template) is kept for export, not used")
        and "model's own chat template" in note
    )
    exported = export_modelfile(preset, "m")
    assert 'TEMPLATE """{{ if .System }}<|system|>{{ .System }}{{ end }}{{ .Prompt }}"""\n' in exported
    assert exported.endswith(
        "MESSAGE user Is Toronto in Canada?\nMESSAGE assistant yes\n"
        "MESSAGE user Is Sacramento in Canada?\nMESSAGE assistant no\n"
    )
