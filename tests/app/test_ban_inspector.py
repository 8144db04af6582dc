"""The inspector shows banned_strings as a stage (`bans`): the candidates that would complete a
banned phrase after the reply written so far, which a reply rewinds from, are removed before the
chain, as the engine removes them when it writes the reply."""

from __future__ import annotations

import json
import re

import pytest
from andon.app.engine.engine import Done, Engine
from andon.app.engine.inspection import inspect_next
from andon.app.study.inspector import inspect_chat
from andon.presets import Parameters
from andon.presets.bans import Bans

from tests.app.test_banned_strings import SEA
from tests.app.test_cli import andon


def reference(items: list[str], text: str, pieces: list[str]) -> list[int]:
    """The pieces after which `text + piece` holds a match of an item that ends inside the piece,
    tried at every start with Python's `re` (a phrase in any case, `re:` as written)."""
    patterns = [re.compile(i[3:]) if i.startswith("re:") else re.compile(re.escape(i), re.I) for i in items]
    out = []
    for k, piece in enumerate(pieces):
        whole = text + piece
        ends = (m.end() for p in patterns for at in range(len(whole)) if (m := p.match(whole, at)))
        if any(end > len(text) for end in ends):
            out.append(k)
    return out


@pytest.mark.parametrize(
    ("items", "text"),
    [
        (["delve"], ""),
        (["bustling", "vast and"], "Once upon a time, in the bustl"),
        (["vast and"], "The sea is a Vast"),
        (["re:\\bshivers?\\b", "tapestry"], "a rich tap"),
        (["delve"], "we delve into it and de"),  # a match written before the bans: only new ones count
    ],
)
def test_the_tokens_that_complete_a_banned_phrase_are_those_a_reference_finds(items, text):
    pieces = ["ing", " bustling", "estry", "estr", " and", " AND more", " delve", "lve", "x", "", " shiver", "s", "."]
    pieces += ["e", "estry!", " shivers down"]
    got = Bans.of(items).completed_by(text, pieces)  # type: ignore[union-attr]
    assert got == reference(items, text, pieces)


def greedy_reply(engine: Engine) -> list[int]:
    events = list(engine.stream(SEA, Parameters.of({"temperature": 0.0, "seed": 1, "num_predict": 12})))
    done = events[-1]
    assert isinstance(done, Done) and "vast and" in done.text  # "The sea is a vast and mysterious ..."
    return done.tokens


@pytest.mark.model
def test_inspecting_with_bans_removes_the_phrase_s_token_before_the_chain(engine: Engine):
    reply = greedy_reply(engine)
    texts = [engine.token_text(t) for t in reply]
    k = texts.index(" vast")
    before = [*engine.chat_tokens(SEA), *reply[:k]]
    params = Parameters.of({"temperature": 0.0, "banned_strings": ["VAST"]})
    result = inspect_next(engine, before, params, top=5, reply=reply[:k])
    names = [s.name for s in result.stages]
    assert names[:2] == ["input", "bans"] and names[-1] == "temperature"
    vast = reply[k]
    assert result.stages[0].probs[vast] > 0.5 and vast not in result.stages[1].probs  # likeliest, yet banned
    banned = Bans.of(["VAST"]).completed_by("".join(texts[:k]), engine.vocab.texts)  # type: ignore[union-attr]
    assert vast in banned and result.stages[1].kept == engine.n_vocab - len(banned)
    # the rest keep their odds against each other (the input renormalised without the banned tokens)
    a, b = [t for t in result.shown if t in result.stages[1].probs][:2]
    p_in, p_ban = result.stages[0].probs, result.stages[1].probs
    assert p_ban[a] / p_ban[b] == pytest.approx(p_in[a] / p_in[b], rel=1e-4)
    # what a reply with the ban writes there is the inspector's choice (greedy: its top candidate)
    events = list(engine.stream(SEA, Parameters.of({"temperature": 0.0, "seed": 1, "num_predict": 12,
                                                    "banned_strings": ["VAST"]})))  # fmt: skip
    written = events[-1].tokens  # type: ignore[union-attr]
    assert written[:k] == reply[:k] and written[k] == max(result.final.probs, key=result.final.probs.get)
    # without bans there is no such stage
    assert "bans" not in [s.name for s in inspect_next(engine, before, Parameters.of({}), reply=reply[:k]).stages]


@pytest.mark.model
def test_a_phrase_begun_by_the_reply_bans_the_token_that_would_complete_it(engine: Engine):
    reply = greedy_reply(engine)
    texts = [engine.token_text(t) for t in reply]
    k = texts.index(" and")  # after "... a vast"
    params = Parameters.of({"banned_strings": ["vast and"]})
    result = inspect_next(engine, [*engine.chat_tokens(SEA), *reply[:k]], params, top=5, reply=reply[:k])
    assert reply[k] in result.stages[0].probs and reply[k] not in result.stages[1].probs


@pytest.mark.model
def test_andon_inspect_shows_the_bans_stage():
    r = andon("inspect", "Write two sentences about the sea.", "--set", "banned_strings=The", "--json", "--top", "5")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert [s["name"] for s in data["stages"]][:2] == ["input", "bans"]
    the = [c for c in data["candidates"] if c["text"] == "The"]
    assert the and the[0]["p"]["input"] > 0 and the[0]["p"]["bans"] == 0
    table = andon("inspect", "Write two sentences about the sea.", "--set", "banned_strings=The", "--top", "5")
    assert table.returncode == 0 and "bans" in table.stdout.splitlines()[-1]  # kept after each stage: ... bans N


@pytest.mark.model
def test_the_app_s_inspector_at_80_columns_shows_bans_and_adaptive_p_without_wrapping(engine: Engine):
    """The panel's table at 80 columns (78 cells): bans and adaptive-p made the default chain's rows
    wrap; the stages' names are shortened there, the row keeps every stage and the ban's ✗."""
    reply = greedy_reply(engine)
    k = [engine.token_text(t) for t in reply].index(" vast")
    balanced = {"repeat_penalty": 1.1, "top_p": 0.95, "min_p": 0.05}  # the app's default preset
    params = Parameters.of({**balanced, "temperature": 0.7, "banned_strings": ["vast"], "adaptive_target": 0.5})
    messages = [*SEA, {"role": "assistant", "content": "".join(engine.token_texts(reply))}]
    text = inspect_chat(engine, messages, reply, params, position=k, width=78)
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("token"))
    table = lines[lines.index(header) : lines.index(header) + 11]  # the header and 10 candidates
    assert max(len(line) for line in table) <= 78
    assert header.split()[1:] == ["input", "bans", "penalty", "top_k", "top_p", "min_p", "temp", "adapt_p"]
    vast = next(line for line in lines if line.startswith(" vast "))
    assert vast.split()[2] == "✗"  # removed by the bans, the first stage after the input
    # the CLI's table (no width) keeps the whole names
    whole = inspect_chat(engine, messages, reply, params, position=k)
    assert "temperature" in whole and "adaptive_p" in whole
