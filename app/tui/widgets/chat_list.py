"""The saved chats, newest first, with when each was last used; a search box above narrows them.

ChatList creates, renames, deletes and exports chats. Renaming and deleting ask in a modal screen
whose answer is awaited (`push_screen_wait`), so they run inside a worker: the app's actions call
them from theirs. ChatsPane is the search box (title and message text) over the list.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, ClassVar, TypeVar

from andon.app.chat.history import Chat, History, HistoryError, StoredMessage, first_match, search_words
from andon.app.control_text import visible
from andon.app.tui.failures import guarded
from andon.app.tui.screens.dialogs import ConfirmScreen, PromptScreen
from andon.presets.paths import data_dir
from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Label, ListItem, ListView

NEW_TITLE = "New chat"
SNIPPET_LEAD = 12  # a search result's text starts about this many characters before the word found
SNIPPET_MAX = 120  # and is cut here (the list cuts it again where its width ends)
Clock = Callable[[], float]
T = TypeVar("T")


def when(updated: float, now: float) -> str:
    """A chat's last use as a person says it: "today 14:02", "yesterday 09:15", "Mon", "12 Nov", "12 Nov 2023"."""
    then, today = datetime.fromtimestamp(updated), datetime.fromtimestamp(now)
    days = (today.date() - then.date()).days
    if days == 0:
        return f"today {then:%H:%M}"
    if days == 1:
        return f"yesterday {then:%H:%M}"
    if 1 < days < 7:
        return f"{then:%a}"
    if then.year == today.year and days > 0:
        return f"{then.day} {then:%b}"
    return f"{then.day} {then:%b %Y}"  # another year, or a clock set back


def snippet(messages: list[StoredMessage], search: str) -> str:
    """A search result's matching text: the message first_match finds, on one line, from a few
    words before the first search word it holds ("" when only the title matched)."""
    index = first_match(messages, search)
    if index is None:
        return ""
    text = " ".join(messages[index].content.split())
    folded = text.casefold()
    at = min((i for i in (folded.find(w) for w in search_words(search)) if i >= 0), default=0)
    start = max(0, text.rfind(" ", 0, max(0, at - SNIPPET_LEAD)) + 1) if at > SNIPPET_LEAD else 0
    return ("…" if start else "") + text[start : start + SNIPPET_MAX]


class ChatItem(ListItem):
    def __init__(self, chat: Chat, now: float, found: str = "") -> None:
        labels = [Label(visible(chat.title), markup=False, classes="chat-title"),
                  Label(when(chat.updated, now), classes="chat-date")]  # fmt: skip
        if found:  # a search result: the text found, under the title
            labels.append(Label(visible(found), markup=False, classes="chat-snippet"))
        super().__init__(*labels)
        self.chat = chat


class ChatList(ListView):
    @dataclass
    class Chosen(Message):
        chat: Chat

    def __init__(self, history: History, clock: Clock = time.time, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.history = history
        self.clock = clock
        self.current: int | None = None  # the open chat, highlighted
        self.search = ""  # only the chats with these words (title or messages) are listed

    @work(exclusive=True, group="chats", exit_on_error=False)
    @guarded
    async def reload(self, current: int | None = None) -> None:
        """List the chats again (titles and order change as chats are used)."""
        if current is not None:
            self.current = current
        search = self.search.strip()
        # on a thread: searching a long history takes a while, and typing goes on meanwhile
        found = await asyncio.to_thread(self._find, search)
        chats = [chat for chat, _ in found]
        now = self.clock()
        await self.clear()
        if chats:
            await self.extend(ChatItem(c, now, text) for c, text in found)
        elif search:
            await self.append(ListItem(Label(f"No chat has “{search}”", markup=False), disabled=True))
        ids = [c.id for c in chats]
        self.index = ids.index(self.current) if self.current in ids else (0 if chats else None)

    def _find(self, search: str) -> list[tuple[Chat, str]]:
        """The chats listed, each with the text a search found in it ("" without a search)."""
        if not search:
            return [(chat, "") for chat in self.history.chats()]
        return [(chat, snippet(self.history.messages(chat.id), search)) for chat in self.history.search_chats(search)]

    def filter(self, text: str) -> None:
        """List only the chats with each word of `text` in their title or messages ("" lists all)."""
        self.search = text
        self.reload()

    def first_chat(self) -> Chat | None:
        """The highlighted chat, else the first one listed."""
        items = [self.highlighted_child, *self.query(ChatItem)]
        return next((i.chat for i in items if isinstance(i, ChatItem)), None)

    def create(self, preset: str) -> Chat:
        return self.history.create_chat(NEW_TITLE, preset)

    async def rename(self, chat: Chat) -> None:
        """Ask for a new title (run in a worker); the chat takes it once it is stored."""
        title = await self.app.push_screen_wait(PromptScreen("Rename chat", chat.title))
        if title:
            renamed = replace(chat, title=title)
            if await self._stored(self.history.update_chat, renamed, "Not renamed", "keeps its title"):
                vars(chat).update(vars(renamed))  # the same Chat object: the open chat's session holds it
            self.reload()

    async def confirm_delete(self, chat: Chat) -> bool:
        """Ask before deleting (run in a worker)."""
        question = f"Delete the chat '{escape(visible(chat.title))}'?"  # the dialog reads markup: a title is text
        yes: bool = await self.app.push_screen_wait(ConfirmScreen(question))
        return yes

    async def delete(self, chat: Chat) -> tuple[bool, Chat | None]:
        """Delete the chat: whether it was, and the chat to open next if there is one."""
        if not await self._stored(self.history.delete_chat, chat.id, "Not deleted", "is kept as it was"):
            self.reload()
            return False, None
        try:
            rest = await asyncio.to_thread(self.history.chats)
        except HistoryError:
            rest = []  # deleted; a new chat opens instead
        return True, rest[0] if rest else None

    async def _stored(self, change: Callable[[T], None], what: T, title: str, kept: str) -> bool:
        """Make a change in the history on a thread (a busy one is waited for while the screen goes
        on); when it cannot be made, one line says why and that the chat `kept` (nothing changed)."""
        try:
            await asyncio.to_thread(change, what)
        except HistoryError as exc:
            reason = str(exc)[:1].upper() + str(exc)[1:]
            self.notify(f"Nothing changed: the chat {kept}. {reason}", title=title, severity="error", markup=False)
            return False
        return True

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


class ChatSearch(Input):
    """The search box over the chat list: Enter opens the first chat listed, Down goes to the list."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("down", "app.focus_next", "To the list", show=False),
        Binding("escape", "done", "Clear the search", show=False),
    ]

    @dataclass
    class Done(Message):
        """Esc in the search box: it was cleared, the message box may take the focus back."""

    @guarded
    def action_done(self) -> None:
        self.value = ""
        self.post_message(self.Done())


class ChatsPane(Vertical):
    """The search box and the chat list under it (the list is hidden and shown as one with it)."""

    def __init__(self, history: History, clock: Clock = time.time, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.list = ChatList(history, clock, id="chat-list")

    def compose(self) -> ComposeResult:
        yield ChatSearch(placeholder="Search chats (Ctrl+F)", id="chat-search", compact=True)
        yield self.list

    @on(Input.Changed, "#chat-search")
    @guarded
    def _search(self, event: Input.Changed) -> None:
        event.stop()
        self.list.filter(event.value)

    @on(Input.Submitted, "#chat-search")
    @guarded
    def _open_first(self, event: Input.Submitted) -> None:
        event.stop()
        chat = self.list.first_chat()
        if chat is not None:
            self.post_message(ChatList.Chosen(chat))

    def focus_search(self) -> None:
        self.query_one(ChatSearch).focus()
