"""The saved chats, newest first. The list creates, renames, deletes and exports them.

Renaming and deleting ask in a modal screen whose answer is awaited (`push_screen_wait`), so they
run inside a worker: the app's actions call them from theirs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from andon.app.history import Chat, History
from andon.app.tui.failures import guarded
from andon.app.tui.screens import ConfirmScreen, PromptScreen
from andon.presets.paths import data_dir
from textual import on, work
from textual.message import Message
from textual.widgets import Label, ListItem, ListView

NEW_TITLE = "New chat"


class ChatItem(ListItem):
    def __init__(self, chat: Chat) -> None:
        super().__init__(Label(chat.title, markup=False))
        self.chat = chat


class ChatList(ListView):
    @dataclass
    class Chosen(Message):
        chat: Chat

    def __init__(self, history: History, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.history = history
        self.current: int | None = None  # the open chat, highlighted

    @work(exclusive=True, group="chats", exit_on_error=False)
    @guarded
    async def reload(self, current: int | None = None) -> None:
        """List the chats again (titles and order change as chats are used)."""
        if current is not None:
            self.current = current
        chats = self.history.chats()
        await self.clear()
        await self.extend(ChatItem(c) for c in chats)
        ids = [c.id for c in chats]
        if self.current in ids:
            self.index = ids.index(self.current)

    def create(self, preset: str) -> Chat:
        return self.history.create_chat(NEW_TITLE, preset)

    async def rename(self, chat: Chat) -> None:
        """Ask for a new title (run in a worker)."""
        title = await self.app.push_screen_wait(PromptScreen("Rename chat", chat.title))
        if title:
            chat.title = title
            self.history.update_chat(chat)
            self.reload()

    async def confirm_delete(self, chat: Chat) -> bool:
        """Ask before deleting (run in a worker)."""
        yes: bool = await self.app.push_screen_wait(ConfirmScreen(f"Delete the chat '{chat.title}'?"))
        return yes

    def delete(self, chat: Chat) -> Chat | None:
        """Delete the chat; the chat to open next, if there is one."""
        self.history.delete_chat(chat.id)
        rest = self.history.chats()
        return rest[0] if rest else None

    def export(self, chat: Chat) -> None:
        """Write the chat as Markdown under the data folder, and say where (or why not)."""
        folder = data_dir() / "exports"
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in chat.title)[:40] or "chat"
        path = folder / f"{chat.id}-{safe}.md"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path.write_text(self.history.to_markdown(chat.id), "utf-8")
        except OSError as exc:
            reason = exc.strerror or str(exc)
            self.notify(f"Could not write {path}: {reason}", title="Export failed", severity="error", markup=False)
            return
        self.notify(f"Exported to {path}", title="Export", markup=False)

    @on(ListView.Selected)
    @guarded
    def _chosen(self, event: ListView.Selected) -> None:
        event.stop()
        if isinstance(event.item, ChatItem):
            self.post_message(self.Chosen(event.item.chat))
