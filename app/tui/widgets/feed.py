"""A model's text on screen: Markdown that never controls the terminal, streamed into with
Textual's MarkdownStream, opened at the first piece and closed once, at the end or when the widget
goes (a reply's answer and its thinking use one each).

The text is shown as written: each of the model's line breaks is a line break (as `ollama run`
and LM Studio show a reply: a poem's lines stay lines), and a reply that
is JSON (format json, a schema) is a JSON code block, pretty-printed once it is complete.
"""

from __future__ import annotations

import json
import re

from andon.app.control_text import visible
from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from textual.await_complete import AwaitComplete
from textual.widgets import Markdown
from textual.widgets.markdown import MarkdownStream


def keeping_breaks() -> MarkdownIt:
    """Textual's Markdown parser ("gfm-like") with each soft break a line break: markdown-it's
    `breaks` option, which its HTML renderer reads, made a rule of the parse that Textual reads."""
    parser = MarkdownIt("gfm-like", {"breaks": True})
    parser.core.ruler.push("breaks", _soft_breaks_as_hard)
    return parser


def _soft_breaks_as_hard(state: StateCore) -> None:
    for token in state.tokens:
        for child in token.children or ():
            if child.type == "softbreak":
                child.type = "hardbreak"


def pretty_json(text: str) -> str | None:
    """A text that is all one JSON object or array, indented by 2 as `jq` shows it; else None."""
    stripped = text.strip()
    if not stripped.startswith(("{", "[")):
        return None
    try:
        value = json.loads(stripped)
    except ValueError:
        return None
    return json.dumps(value, indent=2, ensure_ascii=False) if isinstance(value, dict | list) else None


def json_block(code: str) -> str:
    """`code` as a Markdown JSON code block, its fence longer than any run of backticks in it."""
    fence = "`" * max([3, *(len(run) + 1 for run in re.findall("`+", code))])
    return f"{fence}json\n{code}\n{fence}"


class ModelMarkdown(Markdown):
    """Markdown of text andon did not write (a reply, its thinking): its control characters are
    shown (`visible`: ESC as ^[), never sent to the terminal. Textual passes ESC through as it is,
    so a reply could otherwise retitle the terminal (OSC 2), set its clipboard (OSC 52) or clear
    the screen. The text given (and stored) is unchanged; only what is drawn differs.

    A reply asked for in JSON (`json_reply`: format json or a schema) streams into a JSON code block;
    any text that is all JSON is drawn pretty-printed.
    """

    def __init__(self, markdown: str = "", *, json_reply: bool = False, classes: str | None = None) -> None:
        super().__init__(markdown, classes=classes, parser_factory=keeping_breaks)
        self.json_reply = json_reply

    def update(self, markdown: str) -> AwaitComplete:
        pretty = pretty_json(markdown)
        if pretty is not None or (self.json_reply and markdown.strip()):
            markdown = json_block(markdown.strip() if pretty is None else pretty)
        return super().update(visible(markdown))

    def append(self, markdown: str) -> AwaitComplete:
        if self.json_reply and not self.source:
            markdown = "```json\n" + markdown.lstrip()  # closed, and indented, when the reply is complete
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
