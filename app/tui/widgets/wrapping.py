"""Text that wraps as it reads: andon's notices (/help, /show modelfile, /show info) and a
message's header break where a reader expects, not wherever the width ends.

Textual wraps at any space and starts each wrapped line at the left edge: at 80 columns /help's
descriptions ran under its commands and a Modelfile's comment went on without its `#`. Here a
line wraps under its own description, a comment keeps `# ` on each line, a row of entries (the
keys in /help) breaks between entries, and a header breaks between its fields.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable

from rich.cells import cell_len
from textual.content import Content
from textual.css.styles import RulesMap
from textual.strip import Strip
from textual.style import Style
from textual.visual import RenderOptions, Visual, VisualType
from textual.widgets import Label

CELL = re.compile(r"\S+(?: \S+)*")  # words apart by one space: one entry of a line, or one column
COMMENT = re.compile(r"\s*#+ ?")
NARROWEST = 20  # below this, Textual's own wrapping (no indents to keep)
FIELDS = " · "


def hang(text: str, width: int) -> str:
    """Each line of `text` wrapped to `width` so that every piece still reads as part of its entry."""
    return "\n".join(part for line in text.split("\n") for part in _hang_line(line, width))


def _hang_line(line: str, width: int) -> list[str]:
    if cell_len(line) <= width or width < NARROWEST:
        return [line]
    comment = COMMENT.match(line)
    if comment:  # a comment: `# ` again on each line
        return _wrap(line, width, comment.group())
    cells = list(CELL.finditer(line))
    indent = " " * (len(line) - len(line.lstrip(" ")))
    if len(cells) > 2:  # a row of entries: broken between them
        over = next(c for c in cells if c.end() > width)
        if over is not cells[0]:
            return [line[: over.start()].rstrip(), *_hang_line(indent + line[over.start() :], width)]
    if len(cells) == 2 and cells[1].start() <= width // 2:  # NAME  description: it wraps under itself
        return _wrap(line, width, " " * cells[1].start())
    return _wrap(line, width, indent)


def _wrap(line: str, width: int, prefix: str) -> list[str]:
    return textwrap.wrap(line, width, subsequent_indent=prefix, break_on_hyphens=False) or [line]


def fields(text: str, width: int) -> str:
    """A line of fields apart by " · ", broken between fields where it is wider than `width`: each
    further line starts with the "· " that joined it."""
    if cell_len(text) <= width or width < NARROWEST:
        return text
    lines = [""]
    for i, field in enumerate(text.split(FIELDS)):
        piece = field if i == 0 else FIELDS + field
        if lines[-1] and cell_len(lines[-1] + piece) > width:
            lines.append(piece.lstrip())
        else:
            lines[-1] += piece
    return "\n".join(part for line in lines for part in _wrap(line, width, "  "))


class Wrapped(Visual):
    """Text drawn with the line breaks `wrap(text, width)` gives it at the width it has; str() is
    the text as given (what the widget says, for tests and copies)."""

    def __init__(self, text: str, wrap: Callable[[str, int], str]) -> None:
        self.text = text
        self.wrap = wrap
        self._last: tuple[int, Content] | None = None

    def __str__(self) -> str:
        return self.text

    def _at(self, width: int) -> Content:
        if self._last is None or self._last[0] != width:
            self._last = (width, Content(self.wrap(self.text, width)))
        return self._last[1]

    def render_strips(self, width: int, height: int | None, style: Style, options: RenderOptions) -> list[Strip]:
        return self._at(width).render_strips(width, height, style, options)

    def get_optimal_width(self, rules: RulesMap, container_width: int) -> int:
        return Content(self.text).get_optimal_width(rules, container_width)

    def get_height(self, rules: RulesMap, width: int) -> int:
        return self._at(width).get_height(rules, width)


class FieldsLine(Label):
    """A line of fields (a message's header: who, tokens, how it ended) that breaks between fields."""

    def __init__(self, text: str, *, classes: str | None = None) -> None:
        super().__init__(Wrapped(text, fields), classes=classes, markup=False)

    def update(self, content: VisualType = "", *, layout: bool = True) -> None:
        super().update(Wrapped(str(content), fields), layout=layout)
