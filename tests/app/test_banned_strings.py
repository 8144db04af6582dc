"""banned_strings (issue 24): phrases the reply never contains. The embedded model writes "vast"
about the sea under greedy decoding; banned, it is taken back before it is ever shown, the reply
goes on from the token where it began, and the text before it is the same as without the ban."""

from __future__ import annotations

import re

import pytest
from andon.app.engine.engine import Delta, Done, Engine, ReplyNotice
from andon.presets import Parameters
from andon.presets.commands import parse_assignments, parse_set_parameter
from andon.presets.modelfile import export_modelfile, parse_modelfile
from andon.presets.preset import Preset
from andon.samplers.errors import ParameterError

from tests.app.test_cli import andon, assert_user_error

SEA = [{"role": "user", "content": "Write two sentences about the sea."}]
PHRASE = "vast"  # SmolLM2 writes "The sea is a vast and mysterious realm, ..." at temperature 0


def reply(engine: Engine, **settings) -> tuple[Done, str, list[str]]:
    """The Done, the text the deltas showed as they streamed, and the notices."""
    values = {"temperature": 0.0, "seed": 1, "num_predict": 60, **settings}
    events = list(engine.stream(SEA, Parameters.of(values)))
    done = events[-1]
    assert isinstance(done, Done)
    shown = [e.text for e in events if isinstance(e, Delta)]
    for k in range(len(shown)):  # what was on the screen at every moment
        assert PHRASE not in "".join(shown[: k + 1]).lower() or PHRASE not in settings.get("banned_strings", [])
    return done, "".join(shown), [e.text for e in events if isinstance(e, ReplyNotice)]


# --- where the parameter is set ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "why"),
    [
        ("re:.*", "can match more than 100 characters"),
        ("re:[a-z]+", "can match more than 100 characters"),
        ("re:a?", "can match empty text"),
        ("re:(delve", "is not a regular expression"),
        ("", "an empty string bans nothing"),
    ],
)
def test_an_unbounded_or_broken_pattern_is_refused_in_one_line(item, why):
    with pytest.raises(ParameterError) as err:
        Parameters.of({"banned_strings": ["delve", item]})
    message = str(err.value)
    assert message.startswith("banned_strings: ") and why in message and "\n" not in message
    assert "re: and a regular expression matching 1 to 100 characters" in message  # what is allowed


def test_andon_ask_refuses_an_unbounded_pattern_before_any_work():
    result = andon("ask", "hi", "--set", "banned_strings=re:.*")
    assert_user_error(result, "andon: banned_strings: 're:.*' can match more than 100 characters")


def test_the_list_is_given_as_stop_is_on_every_surface():
    # --set: repeated adds, as for stop; a JSON list is a list
    assert parse_assignments(["banned_strings=as an AI", "banned_strings=re:delv(e|ing)"]) == {
        "banned_strings": ("as an AI", "re:delv(e|ing)")
    }
    assert parse_assignments(['banned_strings=["a b", "c"]'])["banned_strings"] == ("a b", "c")
    # /set parameter: words, quotes keep spaces
    assert parse_set_parameter('banned_strings "as an AI" delve') == ("banned_strings", ("as an AI", "delve"))
    # a preset's Modelfile keeps it (andon's own parameter, in its comment section) and reads it back
    mine = Preset.model_validate(
        {"name": "plain", "parameters": Parameters.of({"banned_strings": ["as an AI", "re:\\bdelv\\w{0,3}"]})}
    )
    back = parse_modelfile(export_modelfile(mine, default_model="./model.gguf"))
    assert Parameters.of(back.parameters).banned_strings == ("as an AI", "re:\\bdelv\\w{0,3}")


def test_several_parameter_lines_of_a_modelfile_add_up_as_stop_lines_do():
    # a Modelfile written by hand, Ollama's way: one line a phrase; each one is kept, none replaced
    modelfile = 'FROM foo\nPARAMETER banned_strings delve\nPARAMETER banned_strings "as an AI"\nPARAMETER stop END\n'
    back = Parameters.of(parse_modelfile(modelfile).parameters)
    assert back.banned_strings == ("delve", "as an AI")
    assert back.stop == ("END",)


# --- with the embedded model ------------------------------------------------------------------------


@pytest.mark.model
def test_a_phrase_the_model_writes_is_taken_back_and_the_reply_goes_on(engine):
    free, _, _ = reply(engine)
    at = free.text.lower().index(PHRASE)  # the embedded model writes it
    banned, shown, notices = reply(engine, banned_strings=["VAST"])  # any case
    assert PHRASE not in banned.text.lower() and not notices
    assert shown == banned.text  # nothing shown was taken back
    assert banned.text[:at] == free.text[:at]  # the same reply up to where the phrase began
    assert len(banned.text) > at + 20 and banned.finish_reason in ("stop", "length")  # and it went on
    assert banned.usage.rewinds >= 1


@pytest.mark.model
def test_a_pattern_is_taken_back_every_time(engine):
    pattern = r"re:\b(vast|sea)\b"
    for seed in range(4):
        done, shown, _ = reply(engine, banned_strings=[pattern], temperature=0.8, seed=seed)
        assert not re.search(r"\b(vast|sea)\b", done.text), done.text
        assert shown == done.text and done.text  # the reply went on


@pytest.mark.model
def test_a_ban_that_leaves_no_way_on_ends_with_a_clear_finish(engine, monkeypatch):
    # the grammar allows only "Hello": every way to begin it is banned in turn, then nothing is left
    done, shown, notices = reply(engine, banned_strings=["hello"], grammar='root ::= "Hello"')
    assert (done.finish_reason, shown) == ("grammar", "") and "allows none of the model's tokens" in notices[0]
    # a reply that keeps finding another way into a ban ends after MAX_REWINDS of them
    monkeypatch.setattr("andon.app.engine.generation.MAX_REWINDS", 5)
    done, shown, notices = reply(engine, banned_strings=["re:[a-zA-Z]"])
    assert done.finish_reason == "banned" and done.usage.rewinds == 5 and not re.search("[a-zA-Z]", shown)
    assert notices == [
        'banned_strings: the reply could not go on without a banned phrase: it ends here (finish reason "banned")'
    ]


@pytest.mark.model
def test_the_chain_s_state_is_that_of_the_rewound_position(engine):
    """With mirostat (a state carried from token to token) and a seeded draw, banning a phrase
    leaves the reply before it exactly as without the ban: nothing advanced twice."""
    settings = {"temperature": 0.7, "mirostat": 2, "seed": 7}
    free, _, _ = reply(engine, **settings)
    words = re.findall(r"[a-z]{5,}", free.text.lower())
    target = words[3]
    at = free.text.lower().index(target)
    banned, _, _ = reply(engine, banned_strings=[target], **settings)
    assert target not in banned.text.lower()
    assert banned.text[:at] == free.text[:at]


@pytest.mark.model
def test_two_phrases_the_model_would_write_at_one_place_are_both_kept_out(engine):
    """After "The sea is a" the model writes "vast", then, that banned, "mysterious": both stay
    banned there (each rewind adds to the position's bans) and the reply goes on."""
    done, shown, _ = reply(engine, banned_strings=["vast", r"re:myster\w{0,5}"])
    assert "vast" not in done.text.lower() and "myster" not in done.text.lower()
    assert done.finish_reason in ("stop", "length") and len(done.text) > 40 and shown == done.text
