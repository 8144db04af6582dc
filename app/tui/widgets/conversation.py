"""A conversation on screen: its latest messages mounted, older ones a press away.

Only the latest `window` messages (and andon's notices) are live widgets, so the cost of a token
(Textual lays out every mounted widget when the reply grows) and the memory stay the same however
long the chat is. The button above them stands for the rest and mounts them back on request.
"""

from __future__ import annotations

from typing import Any

from andon.app.chat.history import StoredMessage
from andon.app.control_text import visible
from andon.app.tui.failures import guarded
from andon.app.tui.widgets.message_box import EarlierMessages, MessageBox, NoticeLine
from textual import on
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Button

WINDOW = 20  # messages (and notices) kept mounted: about two screens


class Conversation(VerticalScroll):
    def __init__(self, *, window: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.base_window = self.window = window or WINDOW
        self.hidden = 0  # messages above the first one mounted

    def messages(self) -> list[StoredMessage]:
        """All the conversation's messages, oldest first."""
        return []

    def compose(self) -> ComposeResult:
        visible = self.messages()
        self.window = self.base_window
        self.hidden = max(0, len(visible) - self.window)
        if self.hidden:
            yield EarlierMessages(self.hidden)
        for message in visible[self.hidden :]:
            yield MessageBox(message)

    def say(self, text: str, error: bool = False) -> NoticeLine:
        """A line from andon in the conversation (it may quote a model's or a user's text: its
        control characters are shown, never sent to the terminal)."""
        line = NoticeLine(visible(text), error)
        self.mount(line)
        self.call_after_refresh(self._trim)
        self.scroll_end(animate=False)
        return line

    async def add(self, widget: Widget) -> None:
        """Mount a message at the end; the oldest beyond the window go."""
        await self.mount(widget)
        await self._trim()

    async def _trim(self) -> None:
        """Unmount the oldest messages beyond the window; the button above stands for them."""
        items = [c for c in self.children if not isinstance(c, EarlierMessages)]
        extra = items[: max(0, len(items) - self.window)]
        if not extra:
            return
        self.hidden += sum(isinstance(w, MessageBox) for w in extra)
        await self.remove_children(extra)
        await self._show_hidden()

    async def _show_hidden(self) -> None:
        button = self.query(EarlierMessages)
        if not self.hidden:
            await button.remove()
        elif button:
            button.first().label = EarlierMessages.label_for(self.hidden)
        else:
            await self.mount(EarlierMessages(self.hidden), before=0)

    @on(Button.Pressed, "#earlier")
    @guarded
    async def _show_earlier(self, event: Button.Pressed) -> None:
        event.stop()
        count = min(self.base_window, self.hidden)
        earlier = self.messages()[self.hidden - count : self.hidden]
        self.hidden -= count
        self.window += count  # kept until the next message is sent
        await self.mount_all([MessageBox(m) for m in earlier], after=event.button)
        await self._show_hidden()
        self.scroll_home(animate=False)
