"""Streaming text into a Markdown widget: Textual's MarkdownStream, opened at the first piece and
closed once, at the end or when the widget goes (a reply's answer and its thinking use one each)."""

from __future__ import annotations

from textual.widgets import Markdown
from textual.widgets.markdown import MarkdownStream


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
