"""The app's actions a newcomer reaches for: every one in the command palette (with its key), any
message or code block copied, the chat list searched, hidden and shown, the theme remembered."""

from __future__ import annotations

import json

import pyperclip
from andon.app.tui.failures import log_file
from andon.app.tui.keys import palette
from andon.app.tui.ui_settings import settings_path
from andon.app.tui.widgets.chat_list import ChatItem, ChatSearch, ChatsPane
from textual import constants
from textual.widgets import OptionList

from tests.app.test_tui import SIZE, make_app, send

CODE_REPLY = ["Here:\n", "```python\n", "print(1)\n", "```\n", "and done."]


async def palette_run(pilot, text: str) -> None:
    """Ctrl+P, type, Enter: what a user does to run a command from the palette."""
    await pilot.press("ctrl+p")
    await pilot.pause()
    await pilot.press(*text)
    await pilot.pause(0.5)  # the palette searches in the background
    await pilot.press("enter")
    await pilot.pause()


async def test_the_palette_lists_every_action_with_its_key(tmp_path):
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        commands = {c.title: c.help for c in app.get_system_commands(app.chat_screen)}
        wanted = ["New chat", "Rename chat", "Delete chat", "Export chat", "Parameters", "Inspector", "Pick a preset",
                  "Regenerate", "Edit last message", "Copy reply", "Copy code block", "Copy…",
                  "Hide or show the chat list", "Search chats", "Help", "Stop", "Theme"]  # fmt: skip
        assert all(name in commands for name in wanted), set(wanted) - set(commands)
        assert commands["New chat"].endswith("(Ctrl+N)") and commands["Export chat"].endswith("(Ctrl+S)")
        assert commands["Copy…"].endswith("(F7)") and commands["Hide or show the chat list"].endswith("(Ctrl+B)")
        assert commands["Stop"].endswith("(Esc)") and commands["Parameters"].endswith("(F4)")
        # every entry names an action the chat screen has
        assert all(hasattr(app.chat_screen, f"action_{action}") for _, _, action in palette())


async def test_running_actions_from_the_palette(tmp_path):
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "first chat")
        await palette_run(pilot, "Export chat")
        exported = list((tmp_path / "data" / "andon" / "exports").glob("*.md"))
        assert exported and "first chat" in exported[0].read_text()
        await palette_run(pilot, "Hide or show the chat list")
        assert not app.query_one(ChatsPane).display
        await palette_run(pilot, "New chat")
        await app.workers.wait_for_complete()
        assert len(app.history.chats()) == 2 and app.session.messages == []
        await palette_run(pilot, "Help")
        assert any("/set parameter" in str(n.render()) for n in app.query(".notice"))


async def test_chain_order_from_the_palette_is_one_step_to_reordering_the_samplers(tmp_path):
    """`samplers` sits far down the parameter panel: the palette's "Chain order" goes straight to it."""
    from andon.app.tui.widgets.parameter_editors import StageOrder

    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        before = list(app.session.params.samplers)
        await palette_run(pilot, "Chain order")
        await pilot.pause()
        stages = app.query_one("#param-samplers", StageOrder)
        assert app.focused is stages
        stages.highlighted = 0
        await pilot.press("shift+down")
        await pilot.pause()
        assert list(app.session.params.samplers) == [before[1], before[0], *before[2:]]


async def test_the_copy_picker_copies_an_older_message_and_a_code_block(tmp_path, monkeypatch):
    copied: list[str] = []
    said: list[str] = []
    monkeypatch.setattr(pyperclip, "copy", copied.append)
    app, _ = make_app(tmp_path, script=CODE_REPLY)
    async with app.run_test(size=SIZE) as pilot:
        app.notify = lambda message, **kwargs: said.append(message)  # type: ignore[method-assign]
        await send(pilot, "the first question")
        await send(pilot, "the second question")
        await pilot.press("f7")
        await pilot.pause()
        options = app.screen.query_one(OptionList)
        prompts = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        assert prompts[0] == "You: the first question" and prompts[1] == "Assistant: Here:"
        assert prompts[2].endswith("└ python: print(1)") and len(prompts) == 6
        assert options.highlighted == 5  # the latest, until the user moves
        await pilot.press("home", "enter")
        await pilot.pause()
        assert copied == ["the first question"] and said[-1] == "Message copied to the system clipboard."
        await pilot.press("f7")
        await pilot.pause()
        await pilot.press("home", "down", "down", "enter")
        await pilot.pause()
        assert copied[-1] == "print(1)\n" and said[-1] == "Code block copied to the system clipboard."
        await palette_run(pilot, "Copy…")  # the same picker from the palette
        await pilot.press("up", "enter")  # the last reply is one above its code block
        await pilot.pause()
        assert copied[-1] == "".join(CODE_REPLY) and said[-1] == "Reply copied to the system clipboard."
        await pilot.press("f7")
        await pilot.pause()
        await pilot.press("escape")  # nothing copied
        await pilot.pause()
        assert len(copied) == 3 and app.is_running


async def test_ctrl_b_hides_and_shows_the_chat_list(tmp_path):
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        pane = app.query_one(ChatsPane)
        assert pane.display and pane.region.width > 0
        await pilot.press("ctrl+b")
        await pilot.pause()
        assert not pane.display and pane.region.width == 0
        assert app.query_one("#conversation").region.x == 0  # the conversation takes the room
        await pilot.press("ctrl+b")
        await pilot.pause()
        assert pane.display and pane.region.width > 0


async def test_a_narrow_terminal_starts_without_the_chat_list_and_ctrl_f_shows_it_for_a_search(tmp_path):
    app, _ = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await send(pilot, "Dragons at sea")
        await pilot.press("ctrl+n")
        await send(pilot, "Capitals of Asia")
        pane = app.query_one(ChatsPane)
        assert not pane.display
        await pilot.press("ctrl+f")
        await pilot.pause()
        assert pane.display and isinstance(app.focused, ChatSearch)
        await pilot.press(*"dragon")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert [i.chat.title for i in app.query(ChatItem)] == ["Dragons at sea"]
        await pilot.press("enter")  # opens it; the message box takes the focus
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.session.chat.title == "Dragons at sea" and app.focused is app.query_one("#input")
        assert not pane.display  # shown for the search only: the conversation has the room back
        await pilot.press("ctrl+b")
        await pilot.pause()
        assert pane.display
        await pilot.press("ctrl+f", *"capitals", "escape")  # Esc leaves a list shown by Ctrl+B shown
        await pilot.pause()
        assert pane.display and app.focused is app.query_one("#input")


async def test_the_theme_chosen_in_the_palette_is_there_after_a_restart(tmp_path):
    first, _ = make_app(tmp_path)
    async with first.run_test(size=SIZE) as pilot:
        await palette_run(pilot, "Theme")
        await pilot.press(*"nord")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause()
        assert first.theme == "nord"
    assert json.loads(settings_path().read_text())["theme"] == "nord"
    second, _ = make_app(tmp_path)
    async with second.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert second.theme == "nord"


async def test_a_damaged_or_unknown_saved_theme_is_the_default_and_one_log_line(tmp_path):
    default = constants.DEFAULT_THEME
    path = settings_path()
    path.parent.mkdir(parents=True)
    for content in ["{not json", '{"theme": "no-such-theme"}', '["nord"]', '{"theme": 7}']:
        path.write_text(content)
        log_file().unlink(missing_ok=True)
        app, _ = make_app(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await send(pilot, "hello")  # the app works as always
            assert app.theme == default and app.session.messages[-1].role == "assistant"
        lines = log_file().read_text().splitlines()
        assert len(lines) == 1 and str(path) in lines[0], (content, lines)
        assert path.read_text() == content  # nothing the user stored was rewritten
