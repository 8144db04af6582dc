"""The parameter panel's editors (chain order, lists as lines, the system prompt) and the
inspector on the message being typed, driven with Pilot against fake engines."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from andon.app.chat.history import History
from andon.app.tui.app import AndonApp
from andon.app.tui.widgets.message_box import ChatInput
from andon.app.tui.widgets.panels import InspectorPanel
from andon.app.tui.widgets.parameter_editors import BlockEditor, StageOrder, escape_item, text_items, unescape_item
from andon.presets.store import PresetStore
from andon.samplers import build_chain
from textual.widgets import Static

from tests.app.fakes import FakeEngine

SIZE = (100, 40)


@pytest.fixture(autouse=True)
def _isolated_log(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


def make_app(tmp_path: Path, engine_class: type[FakeEngine] = FakeEngine) -> tuple[AndonApp, list[FakeEngine]]:
    engines: list[FakeEngine] = []

    def factory(options):
        engines.append(engine_class(options))
        return engines[-1]

    app = AndonApp(factory, Path("/models/fake.gguf"), history=History(tmp_path / "h.sqlite3"),
                   store=PresetStore(tmp_path / "presets"))  # fmt: skip
    return app, engines


async def settle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def send(pilot, text: str) -> None:
    box = pilot.app.query_one(ChatInput)
    box.focus()
    box.text = text
    await pilot.press("enter")
    await settle(pilot)


async def open_panel(pilot) -> None:
    await pilot.press("f4")
    await settle(pilot)


def stored_chat(tmp_path: Path):
    return History(tmp_path / "h.sqlite3").chats()[0]


def changes_line(app) -> str:
    return str(app.query_one("#param-changes", Static).render())


async def test_moving_a_stage_changes_the_chain_the_next_reply_uses(tmp_path):
    app, engines = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_panel(pilot)
        stages = app.query_one("#param-samplers", StageOrder)
        stages.focus()
        before = list(app.session.params.samplers)
        stages.highlighted = before.index("top_k")
        await pilot.press("shift+down", "shift+down")  # past typical_p, then past top_p
        await settle(pilot)
        expected = [
            *before[: before.index("top_k")],
            "typical_p",
            "top_p",
            "top_k",
            *before[before.index("top_p") + 1 :],
        ]
        assert list(app.session.params.samplers) == expected
        assert stored_chat(tmp_path).parameters["samplers"] == expected  # saved with the chat
        assert app.focused is stages and stages.stage == "top_k"  # still on the stage it moved
        assert "chain: order changed" in changes_line(app)
        groups = [str(g.render()) for g in app.query(".param-group")]
        assert groups[before.index("top_p")] == f"{before.index('top_p') + 1}. top_k"  # the panel follows the chain
        await send(pilot, "hello")
        used = engines[0].calls[-1][1]
        chain = [s.name for s in build_chain(used.sampling(), n_vocab=100).stages]
        assert chain.index("top_p") < chain.index("top_k")  # the reply's chain runs top_p first


async def test_a_stage_is_removed_and_put_back_where_the_default_order_has_it(tmp_path):
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_panel(pilot)
        stages = app.query_one("#param-samplers", StageOrder)
        stages.focus()
        before = list(app.session.params.samplers)
        stages.highlighted = before.index("min_p")
        await pilot.press("space")
        await settle(pilot)
        assert list(app.session.params.samplers) == [s for s in before if s != "min_p"]
        left_out = [str(g.render()) for g in app.query(".param-group")][-1]
        assert left_out == "not in the chain now"  # min_p's parameters moved there
        assert stages.stage == "min_p" and "left out" in str(stages.highlighted_option.prompt)
        assert "chain: without min_p" in changes_line(app)
        await pilot.press("space")
        await settle(pilot)
        assert list(app.session.params.samplers) == before


async def test_stop_edited_as_lines_with_escapes_round_trips(tmp_path):
    app, engines = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_panel(pilot)
        stop = app.query_one("#param-stop", BlockEditor)
        stop.focus()
        stop.text = "User:\n### End\n\\n\\n\n"  # three items; the last is two newlines; a blank line is ignored
        await pilot.press("tab")  # leaving the editor applies it
        await settle(pilot)
        assert app.session.params.stop == ("User:", "### End", "\n\n")
        assert stored_chat(tmp_path).parameters["stop"] == ["User:", "### End", "\n\n"]
        assert stop.text == "User:\n### End\n\\n\\n"  # shown back one item per line, escapes visible
        await send(pilot, "hi")
        assert engines[0].calls[-1][1].stop == ("User:", "### End", "\n\n")


async def test_dry_breakers_keep_their_newline_and_quote(tmp_path):
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_panel(pilot)
        breakers = app.query_one("#param-dry_sequence_breakers", BlockEditor)
        assert breakers.text == '\\n\n:\n"\n*'  # the defaults, each whole on its own line
        breakers.focus()
        breakers.text += "\n\\t"
        await pilot.press("tab")
        await settle(pilot)
        assert app.session.params.dry_sequence_breakers == ("\n", ":", '"', "*", "\t")


async def test_a_refused_list_stays_as_typed_and_changes_nothing(tmp_path):
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_panel(pilot)
        said: list[str] = []
        app.notify = lambda message, **kwargs: said.append(message)  # type: ignore[method-assign]
        rpc = app.query_one("#param-rpc", BlockEditor)
        rpc.focus()
        rpc.text = "localhost:50052\nnot-an-endpoint"
        await pilot.press("tab")
        await settle(pilot)
        assert app.session.params.rpc == ()
        assert rpc.text == "localhost:50052\nnot-an-endpoint"  # what was typed is not lost
        assert said == ["rpc: 'not-an-endpoint' is not allowed (must be a list of host:port (port 1-65535))"]


async def test_system_prompt_edited_in_the_panel_persists_and_reaches_the_model(tmp_path):
    app, engines = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_panel(pilot)
        system = app.query_one("#param-system", BlockEditor)
        assert system.text == app.session.preset.system
        system.focus()
        system.text = "You are terse.\nAnswer in one line."
        await pilot.press("tab")
        await settle(pilot)
        assert stored_chat(tmp_path).system == "You are terse.\nAnswer in one line."
        assert "system prompt changed" in changes_line(app)
        await send(pilot, "hello")
        assert engines[0].calls[-1][0][0] == {"role": "system", "content": "You are terse.\nAnswer in one line."}
        await send(pilot, "/show system")
        assert "Answer in one line." in str(list(app.query(".notice"))[-1].render())


async def test_banned_strings_are_entered_one_per_line_at_80x24_and_a_pattern_reads_as_typed(tmp_path):
    """The panel says first how a list is written (four lines of help at 80x24 hold it all), and
    a pattern's backslashes show as typed in /set parameter, not doubled."""
    app, engines = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await send(pilot, "/set parameter banned_strings vast re:\\bmysterious\\b")
        await open_panel(pilot)
        bans = app.query_one("#param-banned_strings", BlockEditor)
        assert bans.text == "vast\nre:\\bmysterious\\b"
        bans.focus()
        await settle(pilot)
        help_box = app.query_one("#param-help", Static)
        assert str(help_box.render()).startswith("banned_strings, one per line: Phrases the reply never contains")
        assert help_box.get_content_height(help_box.size, help_box.size, help_box.size.width) <= 4
        bans.text += "\nas an AI\n\\\\d"  # two more phrases; a literal backslash before d is written twice
        await pilot.press("tab")  # leaving the list applies it
        await settle(pilot)
        assert app.session.params.banned_strings == ("vast", "re:\\bmysterious\\b", "as an AI", "\\d")
        await send(pilot, "hi")
        assert engines[0].calls[-1][1].banned_strings == ("vast", "re:\\bmysterious\\b", "as an AI", "\\d")


async def test_a_changed_list_is_counted_in_the_changes_line(tmp_path):
    """The list's items are in its row; written whole in the changes line they pushed its end out."""
    app, _ = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await send(pilot, '/set parameter banned_strings vast "as an AI" re:\\bmysterious\\b')
        await send(pilot, "/set parameter adaptive_target 0.5")
        await send(pilot, "/set think high")
        await open_panel(pilot)
        line = changes_line(app)
        assert "banned_strings 3 items, preset has none" in line and "adaptive_target 0.5" in line
        assert "as an AI" not in line and "mysterious" not in line
        assert "as an AI" in app.query_one("#param-banned_strings", BlockEditor).text  # the row has them


def test_escapes_round_trip_every_item():
    items = ["\n", "a\\nb", "tab\there", "\r\n", "\x00", "é ✓", "\\", "re:\\bx\\b", "\\\\b", "a\\\\", "\\\n", "\\x41"]
    for item in items:
        assert "\n" not in escape_item(item)
        assert unescape_item(escape_item(item)) == item
    assert text_items("\n".join(escape_item(i) for i in items)) == items
    assert unescape_item("C:\\path\\q") == "C:\\path\\q"  # an unknown escape stays as typed
    assert escape_item("re:\\bx\\b") == "re:\\bx\\b" and escape_item("\\n") == "\\\\n"  # doubled only if needed


@dataclass
class TextEngine(FakeEngine):
    """A fake whose tokens are characters: a prompt reads back as text, and each prefill is kept."""

    script: list[str] = field(default_factory=lambda: [chr(i) for i in range(128)])
    prefilled: list[list[int]] = field(default_factory=list)

    def chat_tokens(self, messages, think=True):
        text = "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages) + "<assistant>"
        return [ord(c) for c in text]

    def prefill(self, tokens):
        self.prefilled.append(list(tokens))
        return len(tokens)

    def constraint_for(self, params):
        return None


def prompt_text(engine: TextEngine) -> str:
    return "".join(chr(t) for t in engine.prefilled[-1])


def inspector_title(app) -> str:
    return str(app.query_one("#inspector-table", Static).render()).splitlines()[0]


async def test_inspector_inspects_the_message_being_typed_when_asked(tmp_path):
    app, engines = make_app(tmp_path, TextEngine)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("f5")
        await settle(pilot)
        assert "empty chat" in inspector_title(app)
        await send(pilot, "Hello")
        engine = engines[0]
        box = app.query_one(ChatInput)
        box.focus()
        await pilot.press(*"What is 2+2?")
        await settle(pilot)
        count = len(engine.prefilled)
        assert "reply to the chat as it is" in inspector_title(app)  # typing alone does not inspect
        await pilot.press("f6")
        await settle(pilot)
        assert len(engine.prefilled) == count + 1
        reply = app.session.messages[-1].content
        assert prompt_text(engine).endswith(
            f"<user>Hello</user><assistant>{reply}</assistant><user>What is 2+2?</user><assistant>"
        )
        assert inspector_title(app).startswith('Next token after: "What is 2+2?"')
        assert box.text == "What is 2+2?" and [m.role for m in app.session.messages] == ["user", "assistant"]
        box.text = ""
        await pilot.press("f6")
        await settle(pilot)
        assert prompt_text(engine).endswith(f"<user>Hello</user><assistant>{reply}</assistant><assistant>")
        assert "reply to the chat as it is (the input box is empty)" in inspector_title(app)
        assert isinstance(app.query_one(InspectorPanel), InspectorPanel)


async def test_an_edit_not_applied_stays_with_its_chat(tmp_path):
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "first chat")
        first = app.session.chat.id
        await open_panel(pilot)
        stop = app.query_one("#param-stop", BlockEditor)
        stop.focus()
        stop.text = "END"  # not applied: the cursor has not left the editor
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert app.session.chat.id != first and app.session.params.stop == ()  # not given to the new chat
        assert app.query_one("#param-stop", BlockEditor).text == ""  # the new chat's value is shown
        history = History(tmp_path / "h.sqlite3")
        assert all("stop" not in chat.parameters for chat in history.chats())
