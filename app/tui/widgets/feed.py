"""A model's text on screen: Markdown that never controls the terminal, streamed into with
Textual's MarkdownStream, opened at the first piece and closed once, at the end or when the widget
goes (a reply's answer and its thinking use one each)."""

from __future__ import annotations

from andon.app.control_text import visible
from textual.await_complete import AwaitComplete
from textual.widgets import Markdown
from textual.widgets.markdown import MarkdownStream


class ModelMarkdown(Markdown):
    """Markdown of text andon did not write (a reply, its thinking): its control characters are
    shown (`visible`: ESC as ^[), never sent to the terminal. Textual passes ESC through as it is,
    so a reply could otherwise retitle the terminal (OSC 2), set its clipboard (OSC 52) or clear
    the screen. The text given (and stored) is unchanged; only what is drawn differs."""

    def update(self, markdown: str) -> AwaitComplete:
        return super().update(visible(markdown))

    def append(self, markdown: str) -> AwaitComplete:
        return super().append(visible(markdown))


class MarkdownFeed:
    def __init__(self, view: Markdown) -> None:
        self.view = view
        self._stream: MarkdownStream | None = None  # open while text streams

    @property
    def started(self) -> bool:
        return self._stream is not None

    async def write(self, text: str) -> None:
        """Add streamed text; Textual's stream batches it to the frame rate."""
        if self._stream is None:
            self._stream = Markdown.get_stream(self.view)
        await self._stream.write(text)

    async def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            await stream.stop()
