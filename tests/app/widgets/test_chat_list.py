"""ChatList: the saved chats, newest first; it creates, renames, deletes and exports them."""

from __future__ import annotations

from andon.app.chat.history import History
from andon.app.tui.widgets.chat_list import ChatItem, ChatList
from textual import work
from textual.app import App, ComposeResult


class _Host(App[None]):
    def __init__(self, history: History) -> None:
        super().__init__()
        self.history = history
        self.deleted: list[bool] = []

    def compose(self) -> ComposeResult:
        yield ChatList(self.history)

    @work
    async def rename_first(self) -> None:
        lst = self.query_one(ChatList)
        await lst.rename(self.history.chats()[0])

    @work
    async def ask_to_delete_first(self) -> None:
        self.deleted.append(await self.query_one(ChatList).confirm_delete(self.history.chats()[0]))


def titles(app: App) -> list[str]:
    return [item.chat.title for item in app.query(ChatItem)]


async def test_lists_newest_first_and_highlights_the_open_chat(tmp_path):
    history = History(tmp_path / "h.db")
    first, second = history.create_chat("first", "balanced"), history.create_chat("second", "factual")
    app = _Host(history)
    async with app.run_test() as pilot:
        lst = app.query_one(ChatList)
        lst.reload(first.id)
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert titles(app) == ["second", "first"] and lst.index == 1
        new = lst.create("creative")
        lst.reload(new.id)
        await app.workers.wait_for_complete()
        assert titles(app) == ["New chat", "second", "first"] and lst.index == 0
        assert history.chat(new.id).preset == "creative" and second.id != new.id


async def test_rename_asks_in_a_dialog_and_saves_the_title(tmp_path):
    history = History(tmp_path / "h.db")
    history.create_chat("old title", "balanced")
    app = _Host(history)
    async with app.run_test() as pilot:
        app.rename_first()
        await pilot.pause()
        app.screen.query_one("#prompt-input").value = "Capitals of Asia"
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert history.chats()[0].title == "Capitals of Asia" and titles(app) == ["Capitals of Asia"]


async def test_delete_asks_first_and_export_writes_markdown(tmp_path):
    history = History(tmp_path / "h.db")
    chat = history.create_chat("Dragons", "creative")
    history.add_message(chat.id, "user", "Tell me about dragons.")
    app = _Host(history)
    async with app.run_test() as pilot:
        app.ask_to_delete_first()
        await pilot.pause()
        await pilot.press("n")
        await app.workers.wait_for_complete()
        assert app.deleted == [False] and history.chats()
        lst = app.query_one(ChatList)
        lst.export(chat)
        exported = list((tmp_path / "data" / "andon" / "exports").glob("*.md"))
        assert exported and "Tell me about dragons." in exported[0].read_text()
        assert await lst.delete(chat) == (True, None) and history.chats() == []  # deleted; none left to open
