"""The chat list's search box and dates: typing narrows the chats (title or message text), each chat
says when it was last used, Enter in the box opens the first chat listed."""

from __future__ import annotations

from datetime import datetime

from andon.app.chat.history import History
from andon.app.tui.widgets.chat_list import ChatItem, ChatList, ChatsPane, when
from textual import on
from textual.app import App, ComposeResult
from textual.widgets import Label

NOW = datetime(2025, 11, 12, 15, 30).timestamp()  # a Wednesday


def at(*fields: int) -> float:
    return datetime(*fields).timestamp()  # type: ignore[arg-type]


def test_dates_read_as_a_person_says_them():
    assert when(at(2025, 11, 12, 14, 2), NOW) == "today 14:02"
    assert when(at(2025, 11, 12, 0, 0), NOW) == "today 00:00"
    assert when(at(2025, 11, 11, 23, 59), NOW) == "yesterday 23:59"
    assert when(at(2025, 11, 10, 9, 0), NOW) == "Mon"
    assert when(at(2025, 11, 6, 9, 0), NOW) == "Thu"  # six days ago: still its weekday
    assert when(at(2025, 11, 5, 9, 0), NOW) == "5 Nov"  # a week ago: the date
    assert when(at(2025, 1, 2, 9, 0), NOW) == "2 Jan"
    assert when(at(2024, 11, 12, 9, 0), NOW) == "12 Nov 2024"
    assert when(at(2026, 1, 1, 9, 0), NOW) == "1 Jan 2026"  # a clock set back: the full date


def test_history_search_matches_title_and_message_text_in_any_case(tmp_path):
    history = History(tmp_path / "h.db")
    capitals = history.create_chat("Capitals of Asia", "factual")
    python = history.create_chat("Untitled", "code")
    history.add_message(python.id, "user", "How do I SORT a list in Python?")
    summer = history.create_chat("Été à Paris", "creative")
    assert [c.id for c in history.search_chats("asia")] == [capitals.id]
    assert [c.id for c in history.search_chats("sort list")] == [python.id]  # every word, anywhere
    assert [c.id for c in history.search_chats("sort asia")] == []
    assert [c.id for c in history.search_chats("ÉTÉ")] == [summer.id]  # not only ASCII letters
    assert [c.id for c in history.search_chats("   ")] == [c.id for c in history.chats()]
    assert history.search_chats("cap%") == history.search_chats("a_ia") == []  # no wildcards: plain characters
    odd = history.create_chat(r"100% of C:\temp_files", "balanced")
    assert [c.id for c in history.search_chats(r"100% c:\TEMP_")] == [odd.id]


class _Host(App[None]):
    def __init__(self, history: History) -> None:
        super().__init__()
        self.history = history
        self.chosen: list[int] = []

    def compose(self) -> ComposeResult:
        yield ChatsPane(self.history, clock=lambda: NOW)

    def on_mount(self) -> None:
        self.query_one(ChatList).reload()

    @on(ChatList.Chosen)
    def _chosen(self, event: ChatList.Chosen) -> None:
        self.chosen.append(event.chat.id)


def listed(app: App) -> list[tuple[str, str]]:
    return [(str(i.query(Label)[0].render()), str(i.query(Label)[1].render())) for i in app.query(ChatItem)]


def seeded(tmp_path) -> tuple[History, dict[str, int]]:
    history = History(tmp_path / "h.db")
    ids = {}
    for title, when_used in [("Capitals of Asia", at(2025, 11, 3, 10, 0)), ("Dragon story", at(2025, 11, 10, 8, 0)),
                             ("Python help", at(2025, 11, 12, 14, 2))]:  # fmt: skip
        chat = history.create_chat(title, "balanced")
        history.db.execute("UPDATE chats SET updated=? WHERE id=?", (when_used, chat.id))
        ids[title] = chat.id
    history.db.execute("INSERT INTO messages (chat_id, role, content, created) VALUES (?, 'user', ?, 0)",
                       (ids["Python help"], "how do I sort a list?"))  # fmt: skip
    return history, ids


async def test_each_chat_shows_when_it_was_last_used(tmp_path):
    history, _ = seeded(tmp_path)
    app = _Host(history)
    async with app.run_test() as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert listed(app) == [("Python help", "today 14:02"), ("Dragon story", "Mon"), ("Capitals of Asia", "3 Nov")]


async def test_typing_in_the_search_box_narrows_the_list_and_enter_opens_the_first(tmp_path):
    history, ids = seeded(tmp_path)
    app = _Host(history)
    async with app.run_test() as pilot:
        await app.workers.wait_for_complete()
        app.query_one("#chat-search").focus()
        await pilot.press(*"DRAG")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert [t for t, _ in listed(app)] == ["Dragon story"]
        await pilot.press(*["backspace"] * 4, *"sort")  # in a message, not the title
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert [t for t, _ in listed(app)] == ["Python help"]
        await pilot.press("enter")
        await pilot.pause()
        assert app.chosen == [ids["Python help"]]
        await pilot.press(*"zebra")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert listed(app) == [] and "No chat has “sortzebra”" in str(app.query(Label).last().render())
        await pilot.press("escape")  # clears the search: every chat again
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert len(listed(app)) == 3


async def test_down_from_the_search_box_goes_into_the_list(tmp_path):
    history, ids = seeded(tmp_path)
    app = _Host(history)
    async with app.run_test() as pilot:
        await app.workers.wait_for_complete()
        app.query_one("#chat-search").focus()
        await pilot.press("down")
        assert isinstance(app.focused, ChatList)
        await pilot.press("down", "enter")
        await pilot.pause()
        assert app.chosen == [ids["Dragon story"]]
