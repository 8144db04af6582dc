"""A reply's thinking (a reasoning model's), shown apart from its answer: dimmed, above it.

While the thinking streams it is open under "Thinking…" (as oterm shows it); once the answer
begins it folds to one line, which Enter or a click opens again. The widget owns its text and its
Markdown stream, as MessageBox does for the answer.
"""

from __future__ import annotations

from andon.app.tui.failures import guarded
from andon.app.tui.widgets.feed import MarkdownFeed, ModelMarkdown
from textual.widgets import Collapsible

STREAMING_TITLE = "Thinking…"


def done_title(text: str) -> str:
    words = len(text.split())
    return f"Thinking · {words} word{'s' if words != 1 else ''}"


class Thoughts(Collapsible):
    """The thinking before one reply's answer: folded once there is an answer, open while it streams."""

    DEFAULT_CSS = """
    Thoughts {
        background: transparent;
        border-top: none;
        padding: 0;
        margin: 0 0 1 0;
    }
    Thoughts CollapsibleTitle {
        padding: 0;
        color: $text-muted;
        text-style: italic;
    }
    Thoughts Contents {
        padding: 0 0 0 2;
    }
    Thoughts Markdown.thinking-text {
        color: $text-muted;
        text-style: italic;
        background: transparent;
        margin: 0;
        padding: 0;
    }
    """

    def __init__(self, text: str = "", *, streaming: bool = False) -> None:
        self.view = ModelMarkdown(text, classes="thinking-text")  # its control characters shown
        super().__init__(self.view, title=STREAMING_TITLE if streaming else done_title(text), collapsed=not streaming)
        self._feed = MarkdownFeed(self.view)  # open while the thinking streams

    async def write(self, text: str) -> None:
        """Add streamed thinking; Textual's stream batches it to the frame rate."""
        await self._feed.write(text)

    def fold(self) -> None:
        """The answer has begun: fold the thinking to its one line."""
        self.collapsed = True
        self.title = "Thinking"

    async def done(self, text: str, answered: bool) -> None:
        """The reply ended: its stored thinking rendered once, folded if there is an answer."""
        await self._feed.close()
        await self.view.update(text)
        self.title = done_title(text)
        self.collapsed = answered

    @guarded
    async def on_unmount(self) -> None:
        await self._feed.close()
