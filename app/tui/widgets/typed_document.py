"""The message box's document: the text exactly as typed or pasted, drawn with its control
characters visible.

Textual's TextArea keeps a Document that splits lines at every character Python calls a line
break (form feed, \\x1c-\\x1e, NEL...), so a pasted form feed came back as a newline, and that
draws each line as it is, so a pasted escape sequence reached the terminal and was obeyed.
TypedDocument breaks lines at CR, LF and CRLF only (the line breaks a terminal pastes; each is
a newline in the text) and keeps every other character. The lines it gives the text area to
measure and draw show each control character as one visible character (`one_cell`: ␛ for ESC),
the same length as the text, so the cursor, the selection and the wrapping stay where the
characters are; `text` and any range of it are the characters themselves.
"""

from __future__ import annotations

import re

from andon.app.control_text import one_cell
from textual.widgets.text_area import Document, EditResult, Location

LINE_BREAK = re.compile(r"\r\n|\r|\n")


class TypedDocument(Document):
    """A TextArea document whose `text` is exactly what was typed (line breaks as newlines)."""

    def __init__(self, text: str) -> None:
        super().__init__("")
        self._newline = "\n"
        self._set(text)

    def _set(self, text: str) -> None:
        self._typed = LINE_BREAK.split(text)  # the characters, one line per item
        self._lines = [one_cell(line) for line in self._typed]  # as shown: what Document's methods read

    @property
    def text(self) -> str:
        return "\n".join(self._typed)

    def get_text_range(self, start: Location, end: Location) -> str:
        top, bottom = sorted((start, end))
        return self.text[self.get_index_from_location(top) : self.get_index_from_location(bottom)]

    def replace_range(self, start: Location, end: Location, text: str) -> EditResult:
        top, bottom = sorted((start, end))
        first, last = self.get_index_from_location(top), self.get_index_from_location(bottom)
        whole, inserted = self.text, "\n".join(LINE_BREAK.split(text))
        self._set(whole[:first] + inserted + whole[last:])
        return EditResult(self.get_location_from_index(first + len(inserted)), whole[first:last])
