"""ChatView: one chat's conversation, built from its ChatSession, with a bounded number of widgets."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from andon.app.chat.history import History
from andon.app.chat.session import ChatSession
from andon.app.tui.engine_host import EngineHost
from andon.app.tui.widgets.chat_view import ChatView
from andon.app.tui.widgets.message_box import EarlierMessages, MessageBox, NoticeLine, StatusFields
from andon.presets.store import PresetStore
from textual.app import App, ComposeResult

from tests.app.fakes import FakeEngine, seeded_history

WINDOW = 6


class _Host(App[None], StatusFields):  # the status fields the view writes
    def __init__(self, session: ChatSession, host: EngineHost) -> None:
        super().__init__()
        self.session, self.host = session, host

    def compose(self) -> ComposeResult:
        yield ChatView(self.session, self.host, self, window=WINDOW)


def hosted(history: History, tmp_path: Path, **fake) -> _Host:
    session = ChatSession(history, history.chats()[0], PresetStore(tmp_path / "presets"))
    host = EngineHost(lambda o: FakeEngine(o, **fake), Path("/m.gguf"))
    host.load(host.options(session.params))
    return _Host(session, host)


def boxes(app: App) -> list[str]:
    return [b.message.content for b in app.query(MessageBox)]


def notices(app: App) -> list[str]:
    return [str(n.render()) for n in app.query(NoticeLine)]


async def test_a_long_chat_mounts_only_its_latest_messages_and_shows_earlier_ones_on_request(tmp_path):
    app = hosted(seeded_history(tmp_path / "h.db", 20), tmp_path)
    async with app.run_test() as pilot:
        assert boxes(app) == ["question 17", "answer 17", "question 18", "answer 18", "question 19", "answer 19"]
        button = app.query_one(EarlierMessages)
        assert str(button.label) == "↑ 34 earlier messages: show more"
        await pilot.click(EarlierMessages)
        await pilot.pause()
        assert len(boxes(app)) == 12 and boxes(app)[0] == "question 14"
        assert str(app.query_one(EarlierMessages).label) == "↑ 28 earlier messages: show more"


async def test_the_mounted_messages_stay_bounded_as_the_chat_grows(tmp_path):
    history = seeded_history(tmp_path / "h.db", 1)
    app = hosted(history, tmp_path)
    async with app.run_test() as pilot:
        view = app.query_one(ChatView)
        for i in range(8):
            assert await view.submit(f"message {i}")
            await app.workers.wait_for_complete()
            await pilot.pause()
        assert len(app.query(MessageBox)) == WINDOW
        assert boxes(app)[-2:] == ["message 7", "Hello from the fake model."]
        assert str(app.query_one(EarlierMessages).label) == "↑ 12 earlier messages: show more"
        assert len(view.session.messages) == 18  # all of them are kept in the history
        assert len(history.messages(view.session.chat.id)) == 18


async def test_stop_reply_returns_once_the_reply_is_saved_as_stopped(tmp_path):
    history = seeded_history(tmp_path / "h.db", 0)
    app = hosted(history, tmp_path, script=["word "] * 500, delay=0.01)
    async with app.run_test() as pilot:
        view = app.query_one(ChatView)
        assert await view.submit("go on")
        await pilot.pause(0.2)
        assert view.replying
        assert not await view.submit("and another")  # one reply at a time: the text stays in the box
        await view.stop_reply()
        reply = history.messages(view.session.chat.id)[-1]
        assert not view.replying and reply.status == "stopped" and reply.content.startswith("word")


async def test_a_message_the_history_cannot_take_is_refused_with_one_line(tmp_path):
    history = seeded_history(tmp_path / "h.db", 0, busy_timeout=0.05)
    app = hosted(history, tmp_path)
    other = sqlite3.connect(tmp_path / "h.db")
    async with app.run_test() as pilot:
        view = app.query_one(ChatView)
        other.execute("BEGIN IMMEDIATE")  # another program holds the history (a backup tool, a second andon)
        assert not await view.submit("hello")
        await pilot.pause()
        assert not app.query(MessageBox) and view.session.messages == []
        assert "not sent (your message is still in the box)" in notices(app)[-1]
        other.rollback()
        assert await view.submit("hello")
