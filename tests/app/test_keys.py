"""The chat screen's keys are declared once (app/tui/keys.py): every binding of the app is in the
command palette with its key and in /help, and the welcome text's hints name the keys bound."""

from __future__ import annotations

from andon.app.tui import keys
from andon.app.tui.app import AndonApp
from textual.binding import Binding

from tests.app.test_tui import SIZE, make_app, notices


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
    assert lines[1] == "  Enter send          Ctrl+J new line       Esc or Ctrl+C stop the reply"
    assert lines[-2] == "  Ctrl+F search chats Ctrl+B hide/show the chat list   F1 this help"
    assert lines[-1] == "  Ctrl+P command palette (every action)     Ctrl+Q quit"
    assert all(len(line) <= 78 for line in lines)


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
