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


class _Recalling(App[None]):
    """The box with earlier messages (newest first), as the chat screen gives them."""

    def __init__(self, earlier: list[str]) -> None:
        super().__init__()
        self.earlier = earlier
        self.sent: list[str] = []

    def compose(self) -> ComposeResult:
        yield ChatInput(earlier=lambda: iter(self.earlier))

    @on(ChatInput.Submitted)
    def _sent(self, event: ChatInput.Submitted) -> None:
        self.sent.append(event.text)


async def test_up_on_an_empty_box_recalls_earlier_messages_and_down_comes_back_to_the_empty_box():
    app = _Recalling(["third", "second", "third", "first"])  # a message sent twice is recalled once
    async with app.run_test(size=(80, 24)) as pilot:
        box = app.query_one(ChatInput)
        box.focus()
        shown = []
        for key in ["up", "up", "up", "up", "down", "down", "down", "down"]:
            await pilot.press(key)
            shown.append(box.text)
        assert shown == ["third", "second", "first", "first", "second", "third", "", ""]


async def test_a_recalled_message_edited_is_sent_as_edited_and_the_history_keeps_the_original():
    app = _Recalling(["what is 2+2?"])
    async with app.run_test(size=(80, 24)) as pilot:
        box = app.query_one(ChatInput)
        box.focus()
        await pilot.press("up", "backspace", *" and 3+3?")
        await pilot.press("up", "down")  # an edited message: the arrows do not throw the edit away
        assert box.text == "what is 2+2 and 3+3?"
        await pilot.press("enter")
        assert app.sent == ["what is 2+2 and 3+3?"] and app.earlier == ["what is 2+2?"]
        await pilot.press("up")
        assert box.text == "what is 2+2?"


async def test_up_in_a_box_with_text_moves_the_cursor_and_recalls_nothing():
    app = _Recalling(["earlier"])
    async with app.run_test(size=(80, 24)) as pilot:
        box = app.query_one(ChatInput)
        box.focus()
        await pilot.press("a", "ctrl+j", "b", "up", "x")
        assert box.text == "ax\nb"


async def test_ctrl_d_on_an_empty_box_quits_and_on_text_deletes_a_character():
    app = _Recalling([])
    async with app.run_test(size=(80, 24)) as pilot:
        box = app.query_one(ChatInput)
        box.focus()
        await pilot.press("a", "b", "left", "ctrl+d")
        assert box.text == "a" and app.is_running
        await pilot.press("backspace", "ctrl+d")
        await pilot.pause()
    assert app.return_code == 0 and not app.is_running
