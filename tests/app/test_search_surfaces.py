"""Beam search's and MBR's parameters from every place a parameter is set (--set, /set parameter,
the parameter panel, a Modelfile), and what the app shows while a search goes on and when it chose."""

from __future__ import annotations

import threading
import time

import pytest
from andon.app.engine.engine import Delta, Done, Usage
from andon.app.tui.widgets.message_box import MessageBox
from andon.presets import Parameters
from andon.presets.commands import parse_assignments, parse_set_parameter
from andon.presets.modelfile import export_modelfile, parse_modelfile
from andon.presets.preset import Preset

from tests.app.fakes import FakeEngine
from tests.app.test_cli import andon, assert_user_error
from tests.app.test_tui import make_app, notices, send

SIZE = (80, 24)
SEARCH = {"num_beams": 4, "length_penalty": 0.5, "early_stopping": True, "mbr_samples": 0, "mbr_utility": "bleu"}


def test_set_and_slash_set_carry_every_search_parameter():
    assert parse_assignments(["num_beams=4", "length_penalty=0.5", "early_stopping=true", "mbr_utility=bleu"]) == {
        "num_beams": 4,
        "length_penalty": 0.5,
        "early_stopping": True,
        "mbr_utility": "bleu",
    }
    assert parse_set_parameter("num_beams 4") == ("num_beams", 4)
    assert parse_set_parameter("mbr_samples 8") == ("mbr_samples", 8)
    assert parse_set_parameter("early_stopping true") == ("early_stopping", True)


@pytest.mark.parametrize("values", [SEARCH, {"mbr_samples": 8, "mbr_utility": "bleu", "length_penalty": 2.0}])
def test_a_modelfile_keeps_the_search_parameters_in_andons_section(values):
    """Ollama has none of them: they go to andon's comment section and come back as they were."""
    mine = Preset.model_validate({"name": "searching", "parameters": Parameters.of(values)})
    text = export_modelfile(mine, default_model="./model.gguf")
    lines = set(text.splitlines())
    changed = {k: v for k, v in values.items() if Parameters.of({}).to_plain([k])[k] != v}
    assert all(any(line.startswith(f"# PARAMETER {name} ") for line in lines) for name in changed)
    back = parse_modelfile(text)
    assert Parameters.of(back.parameters) == mine.parameters and not back.notes


@pytest.mark.parametrize(
    ("setting", "words"),
    [
        ("num_beams=0", "andon: num_beams: 0 is not allowed"),
        ("num_beams=1000", "andon: num_beams: 1000 is not allowed"),
        ("mbr_samples=-1", "andon: mbr_samples: -1 is not allowed"),
        ("mbr_utility=ter", "andon: mbr_utility: 'ter' is not allowed"),
        ("length_penalty=long", "andon: length_penalty"),
        ("early_stopping=maybe", "andon: early_stopping"),
    ],
)
def test_set_refuses_a_bad_value_in_one_line_and_exits_2(setting, words):
    assert_user_error(andon("ask", "hi", "--set", setting), words)


def test_set_refuses_beams_with_mbr_in_one_line_and_exits_2():
    assert_user_error(andon("ask", "hi", "--set", "num_beams=4", "--set", "mbr_samples=4"), "cannot be used together")


class SearchingEngine(FakeEngine):
    """Searches as the engine does: empty Deltas with a growing token count while the beams grow
    (held at `hold` until the test has looked), then the chosen reply and Done with candidates."""

    hold: threading.Event

    def stream(self, messages, params, cancelled=None, chain=None):
        if params.num_beams == 1 and not params.mbr_samples:
            yield from super().stream(messages, params, cancelled, chain)
            return
        self.calls.append((list(messages), params))
        start = time.perf_counter()
        for n in range(1, 8):
            time.sleep(0.12)  # a step's time: the app is told (FLUSH_EVERY_S) of each
            yield Delta("", n, time.perf_counter() - start)
            if n == 4:
                self.hold.wait(10)
        yield Delta("The sea is blue.", 5, time.perf_counter() - start)
        candidates = [{"text": "The sea is blue.", "score": -0.5, "tokens": [1, 2, 3, 4, 5], "finish_reason": "stop"}]
        yield Done("The sea is blue.", "stop", Usage(10, 10, 5, 0.01, 30.0), 1, candidates=candidates)


async def wait_for(pilot, check, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        await pilot.pause(0.05)
    assert check()


@pytest.mark.parametrize(("command", "label"), [("/set parameter num_beams 4", "4 beams"),
                                                ("/set parameter mbr_samples 8", "8 samples")])  # fmt: skip
async def test_the_reply_header_shows_the_search_going_on_then_the_chosen_reply(tmp_path, monkeypatch, command, label):
    monkeypatch.setattr("tests.app.test_tui.FakeEngine", SearchingEngine)
    hold = threading.Event()
    monkeypatch.setattr(SearchingEngine, "hold", hold, raising=False)
    app, engines = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, command)
        name, value = command.split()[2:]
        assert getattr(app.session.params, name) == int(value)
        app.query_one("ChatInput").text = "Tell me about the sea."
        await pilot.press("enter")
        box = lambda: list(app.query(MessageBox))[-1]  # noqa: E731
        await wait_for(pilot, lambda: f"{label} · 4 tokens" in box().header_text())
        assert box().header_text() == f"Assistant · … · {label} · 4 tokens"
        hold.set()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert box().header_text().startswith(f"Assistant · best of {label} · 5 tokens")
        assert app.session.messages[-1].content == "The sea is blue."
        assert getattr(engines[-1].calls[-1][1], name) == int(value)  # the engine was asked to search
    hold.set()


async def test_slash_set_refuses_beams_with_mbr_in_one_line_and_keeps_the_value(tmp_path):
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "/set parameter num_beams 4")
        await send(pilot, "/set parameter mbr_samples 4")
        assert notices(app)[-1].startswith("error: num_beams 4 and mbr_samples 4 cannot be used together")
        assert app.session.params.num_beams == 4 and app.session.params.mbr_samples == 0


async def test_the_parameter_panel_sets_num_beams_and_refuses_zero(tmp_path):
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f4")
        await pilot.pause()
        for value in ("3", "0"):
            field = app.query_one("#param-num_beams")
            field.value = value
            field.focus()
            await pilot.press("enter")
            await pilot.pause()
        assert app.session.params.num_beams == 3  # 0 refused, 3 kept
        assert app.query_one("#param-num_beams").value == "3"
        assert app.query_one("#param-num_beams").parent.has_class("changed")
