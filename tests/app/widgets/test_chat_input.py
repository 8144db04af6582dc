"""The message box: Enter sends, Ctrl+J adds a line, a message that was not sent comes back."""

from __future__ import annotations

from andon.app.tui.widgets.message_box import ChatInput
from textual import on
from textual.app import App, ComposeResult


class _Host(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[str] = []

    def compose(self) -> ComposeResult:
        yield ChatInput()

    @on(ChatInput.Submitted)
    def _sent(self, event: ChatInput.Submitted) -> None:
        self.sent.append(event.text)


async def test_enter_sends_the_text_and_empties_the_box():
    app = _Host()
    async with app.run_test() as pilot:
        box = app.query_one(ChatInput)
        box.focus()
        await pilot.press("h", "i", "ctrl+j", "t", "h", "e", "r", "e", "enter")
        await pilot.pause()
        assert app.sent == ["hi\nthere"] and box.text == ""
        await pilot.press("space", "enter")  # nothing but blanks: not sent
        assert app.sent == ["hi\nthere"]


async def test_a_message_that_was_not_sent_comes_back_before_what_was_typed_since():
    app = _Host()
    async with app.run_test() as pilot:
        box = app.query_one(ChatInput)
        box.focus()
        await pilot.press("x", "y")
        box.restore("my long question ")
        assert box.text == "my long question xy"
