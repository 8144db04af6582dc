"""The chat history as the app uses it, driven with Pilot: a rename or delete the history cannot
take changes nothing on screen or on disk, and a send, a regenerate and /clear act on the chat as
stored at that moment, with what another andon wrote into it since it was opened."""

from __future__ import annotations

import re
import sqlite3

import pytest
from andon.app.chat.history import History
from andon.app.tui.widgets.chat_list import ChatItem, ChatList
from andon.app.tui.widgets.message_box import ChatInput, MessageBox

from tests.app.test_tui import SIZE, make_app, notices, send

HOLDS = ["BEGIN IMMEDIATE", "BEGIN EXCLUSIVE"]  # another program's long write transaction


def toasts(app) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app._notifications]


def listed(app) -> list[str]:
    """The titles the chat list shows."""
    return [str(item.query_one(".chat-title").render()) for item in app.query(ChatItem)]


def stored_titles(path) -> list[str]:
    with History(path) as h:
        return [c.title for c in h.chats()]


def busy_app(tmp_path):
    app, engines = make_app(tmp_path)
    app.history = app.chat_screen.history = History(tmp_path / "h.sqlite3", busy_timeout=0.05)
    return app, engines


@pytest.mark.parametrize("hold", HOLDS)
async def test_a_rename_the_busy_history_refuses_keeps_the_stored_title(tmp_path, hold):
    app, _ = busy_app(tmp_path)
    other = sqlite3.connect(tmp_path / "h.sqlite3", isolation_level=None)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "a question about cats")
        title = app.session.chat.title
        other.execute(hold)
        await pilot.press("f2")
        await pilot.pause()
        app.screen.query_one("#prompt-input").value = "Dogs instead"
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.is_running
        assert app.session.chat.title == title and listed(app) == [title]
        [line] = [t for t in toasts(app) if t.startswith("Not renamed")]
        assert "Nothing changed: the chat keeps its title" in line and "is busy" in line
        other.execute("ROLLBACK")
        assert stored_titles(tmp_path / "h.sqlite3") == [title]
        await pilot.press("f2")  # once the other program is done, the rename is stored and shown
        await pilot.pause()
        app.screen.query_one("#prompt-input").value = "Dogs instead"
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.session.chat.title == "Dogs instead" and listed(app) == ["Dogs instead"]
    assert stored_titles(tmp_path / "h.sqlite3") == ["Dogs instead"]


@pytest.mark.parametrize("hold", HOLDS)
async def test_a_delete_the_busy_history_refuses_keeps_the_chat_open_and_listed(tmp_path, hold):
    app, _ = busy_app(tmp_path)
    other = sqlite3.connect(tmp_path / "h.sqlite3", isolation_level=None)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "first chat")
        await pilot.press("ctrl+n")
        await pilot.pause()
        await send(pilot, "second chat")
        chat = app.session.chat
        other.execute(hold)
        await pilot.press("f8")
        await pilot.pause()
        await pilot.press("y")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.is_running and app.session.chat.id == chat.id
        assert listed(app) == ["second chat", "first chat"]
        assert [m.content for m in app.session.messages] == ["second chat", "Hello from the fake model."]
        assert len(app.query(MessageBox)) == 2  # the conversation is still on screen
        [line] = [t for t in toasts(app) if t.startswith("Not deleted")]
        assert "Nothing changed: the chat is kept as it was" in line and "is busy" in line
        other.execute("ROLLBACK")
        assert stored_titles(tmp_path / "h.sqlite3") == ["second chat", "first chat"]
        await send(pilot, "still here?")  # the chat goes on
        assert app.session.messages[-1].content == "Hello from the fake model."


def their_chat(path, *contents: str) -> tuple[History, int]:
    """Another andon (a History of its own on the same file) with a chat it writes."""
    other = History(path)
    chat = other.create_chat("their chat", "balanced")
    for i, content in enumerate(contents):
        other.add_message(chat.id, "user" if i % 2 == 0 else "assistant", content)
    return other, chat.id


async def open_theirs(pilot, chat_id: int) -> None:
    app = pilot.app
    chat = app.history.chat(chat_id)
    app.chat_screen.chats.post_message(ChatList.Chosen(chat))
    await pilot.pause()
    assert app.session.chat.id == chat_id


def shown(app) -> list[str]:
    return [box.message.content for box in app.query(MessageBox)]


async def test_a_send_answers_the_chat_as_stored_with_what_another_andon_added(tmp_path):
    other, chat_id = their_chat(tmp_path / "h.sqlite3", "Name a colour.", "Blue.")
    app, engines = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_theirs(pilot, chat_id)  # read-only here while the other andon writes it
        other.add_message(chat_id, "user", "And a fruit?")
        other.add_message(chat_id, "assistant", "A pear.")
        other.close()  # it ends: the chat may be written here now
        await send(pilot, "And a tree?")
        prompt = [m["content"] for m in engines[-1].calls[-1][0] if m["role"] != "system"]
        assert prompt == ["Name a colour.", "Blue.", "And a fruit?", "A pear.", "And a tree?"]
        expected = [*prompt, "Hello from the fake model."]
        assert [m.content for m in app.session.messages] == expected
        assert shown(app) == expected  # what the reply answered is on screen too
        assert [m.content for m in app.history.messages(chat_id)] == expected


async def test_a_regenerate_replaces_the_reply_as_stored_now(tmp_path):
    other, chat_id = their_chat(tmp_path / "h.sqlite3", "Name a colour.", "Blue.")
    app, engines = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_theirs(pilot, chat_id)
        other.add_message(chat_id, "user", "And a fruit?")
        other.add_message(chat_id, "assistant", "A pear.")
        other.close()
        await pilot.press("ctrl+r")
        await app.workers.wait_for_complete()
        await pilot.pause()
        prompt = [m["content"] for m in engines[-1].calls[-1][0] if m["role"] != "system"]
        assert prompt == ["Name a colour.", "Blue.", "And a fruit?"]  # "A pear." is the reply written again
        expected = [*prompt, "Hello from the fake model."]
        assert [m.content for m in app.history.messages(chat_id)] == expected
        assert shown(app) == expected


async def test_clear_copies_and_counts_the_chat_as_stored(tmp_path):
    other, chat_id = their_chat(tmp_path / "h.sqlite3", "Name a colour.", "Blue.")
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_theirs(pilot, chat_id)
        other.add_message(chat_id, "user", "And a fruit?")
        other.add_message(chat_id, "assistant", "A pear.")
        other.close()
        await send(pilot, "/clear")
        said = notices(app)[-1]
        count = int(re.search(r"Cleared session context \((\d+) messages\)", said).group(1))
        copy = next(c for c in app.history.chats() if c.title == "their chat (before /clear)")
        kept = [m.content for m in app.history.messages(copy.id)]
        assert kept == ["Name a colour.", "Blue.", "And a fruit?", "A pear."] and count == len(kept) == 4
        assert app.history.messages(chat_id) == [] and app.session.messages == [] and shown(app) == []
        app.query_one(ChatInput).text = "/clear"  # again: nothing is left to clear
        await pilot.press("enter")
        await pilot.pause()
        assert "Nothing to clear" in notices(app)[-1]
