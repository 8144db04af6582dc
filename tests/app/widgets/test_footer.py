"""The footer shows its keys at launch even when the terminal reports andon unfocused (issue 11: a
tmux pane with focus-events on and no focused client left it blank until a key changed bindings)."""

from __future__ import annotations

from typing import ClassVar

from andon.app.tui.widgets.footer import KeysFooter
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer, TextArea


class _Host(App[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f3", "bell", "Presets"),
        Binding("ctrl+n", "app.bell", "New chat"),  # another action: the footer shows one key per action
    ]

    def __init__(self, footer: Footer) -> None:
        super().__init__()
        self.footer = footer

    def on_load(self) -> None:
        self.set_reactive(App.app_focus, False)  # the terminal said "focus out" before the first frame

    def compose(self) -> ComposeResult:
        yield TextArea()
        yield self.footer


def described(footer: Footer) -> set[str]:
    return {getattr(key, "description", "") for key in footer.query("FooterKey")}


async def test_keys_are_drawn_at_launch_while_the_terminal_reports_no_focus():
    plain = _Host(Footer())
    async with plain.run_test() as pilot:
        await pilot.pause()
        assert described(plain.footer) == set()  # Textual's own footer: blank (the bug as seen)
    app = _Host(KeysFooter())
    async with app.run_test() as pilot:
        await pilot.pause()
        await pilot.pause()
        assert described(app.footer) >= {"Presets", "New chat"}
