"""The chat screen's keys are declared once (app/tui/keys.py): every binding of the app is in the
command palette with its key and in /help, and the welcome text's hints name the keys bound."""

from __future__ import annotations

from andon.app.tui import keys
from andon.app.tui.app import AndonApp
from andon.app.tui.widgets.chat_view import ChatView
from andon.app.tui.widgets.message_box import ChatInput
from andon.app.tui.widgets.panels import InspectorPanel
from textual import events
from textual.binding import Binding
from textual.widgets import Input, OptionList

from tests.app.test_tui import SIZE, make_app, notices, send


def app_bindings() -> list[Binding]:
    return [b for b in AndonApp.BINDINGS if isinstance(b, Binding)]


async def test_every_binding_is_in_the_palette_and_in_help_with_its_key(tmp_path):
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        palette = {c.help: c.title for c in app.get_system_commands(app.chat_screen)}
        await pilot.press("f1")
        await pilot.pause()
        shown = notices(app)[-1]
        assert shown.startswith("Available commands:") and "\nKeys:\n" in shown
        first: Binding | None = None  # the key a second key of the same action goes with (Esc for Ctrl+C)
        for key in keys.KEYS:
            binding, name = key.binding, keys.key_name(key.binding.key)
            assert binding in app_bindings()
            assert f" {name} " in shown.split("\nKeys:\n")[1] + " ", name
            if key.title:
                first = binding
                entry = f"{binding.tooltip} ({name})"
                assert palette.get(entry) == key.title, name
            else:  # it is named with the key before it
                assert first is not None and f"{keys.key_name(first.key)} or {name} " in shown, name


def test_the_apps_bindings_are_the_keys_declared():
    assert app_bindings() == [key.binding for key in keys.KEYS]
    assert len({b.id for b in app_bindings()}) == len(app_bindings())  # each can be remapped (keymap)
    assert len({b.key for b in app_bindings()}) == len(app_bindings())


def test_help_keys_keep_their_columns_and_fit_80_columns():
    lines = keys.help_keys().splitlines()
    assert lines[0] == "Keys:"
    assert lines[1] == "  Enter send          Ctrl+J new line       Up / Down earlier messages"
    assert lines[-1] == "  Ctrl+D quit (on an empty box)"
    assert all(len(line) <= 76 for line in lines)  # the conversation's width in an 80-column terminal
    entries = " ".join(" ".join(lines).split())
    assert "F1 this help Ctrl+P command palette (every action) Ctrl+Q quit" in entries


async def test_the_welcome_text_names_the_keys_bound(tmp_path):
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        welcome = notices(app)[0]
        assert "Type a message and press Enter (Ctrl+J adds a line). Esc or Ctrl+C stops a reply.\n" in welcome
        assert welcome.endswith(
            "F3 or Ctrl+T: presets · F4: parameters · Ctrl+N: new chat · F9: copy the reply · "
            "Ctrl+P: every action · /? or /help: commands and keys · Ctrl+Q: quit"
        )


def test_the_key_names():
    assert keys.key_name("ctrl+n") == "Ctrl+N" and keys.key_name("escape") == "Esc"
    assert keys.key_name("f10") == "F10" and keys.key_name("ctrl+j,shift+enter") == "Ctrl+J / Shift+Enter"
    assert keys.keys_of("preset.pick", "preset.next") == "F3 or Ctrl+T"


async def test_the_palettes_parameter_entry_opens_the_panel_on_that_field_in_view(tmp_path):
    app, _ = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("f4", *"mirostat_eta", "enter", "escape", "f4")  # the panel scrolled far down, closed
        await pilot.pause()
        await pilot.press("ctrl+p", *"Parameter: top_k")
        await pilot.pause(0.3)  # the palette searches on a worker
        await pilot.press("enter")
        await pilot.pause()
        await pilot.pause()
        assert app.focused is not None and app.focused.id == "param-top_k"
        assert "top_k:" in str(app.query_one("#param-help").render())  # what it does
        rows = app.query_one("#param-rows").region
        assert rows.y <= app.focused.region.y < rows.bottom  # scrolled to


async def test_f4_and_a_few_letters_reach_temperature(tmp_path):
    """The issue's case: temperature was 22 Tabs away."""
    app, _ = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("f4")
        await pilot.pause()
        await pilot.press(*"temperature", "enter")
        assert app.focused is not None and app.focused.id == "param-temperature"
        await pilot.press(*"0.3", "enter")  # the value is selected as the field takes the focus: typed over
        await pilot.pause()
        assert app.session.params.temperature == 0.3


async def test_up_on_an_empty_box_recalls_this_chats_messages_then_the_other_chats(tmp_path):
    app, _ = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await send(pilot, "in the first chat")
        await pilot.press("ctrl+n")
        await pilot.pause()
        await send(pilot, "in the second chat")
        box = app.query_one(ChatInput)
        await pilot.press("up")
        assert box.text == "in the second chat"
        await pilot.press("up")
        assert box.text == "in the first chat"
        await pilot.press("down", "down")
        assert box.text == ""


async def test_up_recalls_a_slash_command_typed_in_this_andon_in_the_order_typed(tmp_path):
    """A mistyped /set is fixed with Up, as in `ollama run` and shells: commands are recalled too."""
    app, _ = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await send(pilot, "a message")
        await send(pilot, "/set parameter tempurature 0.5")
        box = app.query_one(ChatInput)
        await pilot.press("up")
        assert box.text == "/set parameter tempurature 0.5"
        await pilot.press("up")
        assert box.text == "a message"
        await pilot.press("down")
        assert box.text == "/set parameter tempurature 0.5"


async def test_f5_focuses_the_inspectors_list_its_arrows_choose_and_typing_goes_to_the_box(tmp_path):
    app, _ = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await send(pilot, "hello")
        await pilot.press("f5")
        await pilot.pause()
        tokens = app.query_one("#inspector-tokens", OptionList)
        assert app.focused is tokens and tokens.highlighted == 0
        app.query_one(InspectorPanel).set_tokens(["Hello", " from", " the"])  # the fake's replies keep no ids
        await pilot.press("down", "down")
        assert tokens.highlighted == 2
        await pilot.press(*"hi")
        assert app.query_one(ChatInput).text == "hi" and app.focused is app.query_one(ChatInput)
        await pilot.press("f5")  # closed: the message box keeps the focus
        assert app.focused is app.query_one(ChatInput)


async def test_tab_reaches_the_chat_and_it_scrolls_with_the_keys(tmp_path):
    app, _ = make_app(tmp_path, script=["line\n\n"] * 40)
    async with app.run_test(size=(80, 24)) as pilot:
        await send(pilot, "a long reply please")
        chat = app.query_one(ChatView)
        await pilot.press("tab")
        assert app.focused is chat
        bottom = chat.scroll_y
        assert bottom == chat.max_scroll_y > 0
        for key, moved in [("pageup", lambda y: y < bottom), ("home", lambda y: y == 0), ("down", lambda y: y == 1),
                           ("end", lambda y: y == bottom), ("up", lambda y: y == bottom - 1)]:  # fmt: skip
            await pilot.press(key)
            await pilot.pause(0.5)  # a page scrolls with an animation
            assert moved(chat.scroll_y), key
        await pilot.press("tab", "tab")  # round to it again, past the message box
        assert app.focused is chat


async def test_letters_typed_at_once_after_f4_go_to_the_panels_filter(tmp_path):
    """F4 and "temp" in one write (a terminal delivers keys typed quickly together): the letters filter
    the panel, none is left in the message box."""
    app, _ = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        for key in ["f4", *"temp"]:
            app.post_message(events.Key(key, None if key == "f4" else key))
        for _ in range(5):
            await pilot.pause(0.05)
        assert app.query_one(ChatInput).text == ""
        assert app.query_one("#parameter-filter", Input).value == "temp"
