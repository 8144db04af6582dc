"""The first frame: a message box to type in while the rest of andon is still being read.

The chat screen needs most of andon (the history's views, Markdown, the parameter registry,
pydantic, numpy, the engine's client): reading it takes longer than drawing a box. So `andon`
draws this screen first, from Textual alone, and reads the rest behind it (AndonApp.fast_start).
What is typed here shows here as typed and is given, key by key in order, to the chat screen's
message box once it is there (AndonApp.input_ready): Enter typed now sends then. Nothing else
happens on this screen; it is gone within a fraction of a second.
"""

from __future__ import annotations

from andon.app.tui.keys import PLACEHOLDER
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Static, TextArea


class StartScreen(Screen[None]):
    DEFAULT_CSS = """
    StartScreen #start-chat { height: 1fr; padding: 1 2; color: $text-muted; }
    StartScreen #start-input { height: auto; max-height: 10; min-height: 3; border: round $accent; }
    """

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("andon", id="start-chat")
            yield TextArea(id="start-input", placeholder=PLACEHOLDER, soft_wrap=True, show_line_numbers=False)

    def echo(self, text: str) -> None:
        """Show a key typed before the chat screen is ready (it is kept and replayed there)."""
        box = self.query_one("#start-input", TextArea)
        if text == "\b":
            box.action_delete_left()
        else:
            box.insert(text)
