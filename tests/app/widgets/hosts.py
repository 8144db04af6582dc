"""Apps that host one widget for its tests."""

from __future__ import annotations

from andon.app.chat.history import StoredMessage
from andon.app.tui.widgets.message_box import MessageBox
from textual.app import App, ComposeResult


class MessageBoxHost(App[None]):
    """One MessageBox showing `message`."""

    def __init__(self, message: StoredMessage) -> None:
        super().__init__()
        self.message = message

    def compose(self) -> ComposeResult:
        yield MessageBox(self.message)
