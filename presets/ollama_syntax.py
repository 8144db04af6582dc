"""Ollama's Modelfile syntax: commands read as Ollama's parser reads them, values written so they read back.

Ollama's parser (parser/parser.go) reads `DIRECTIVE value`, `PARAMETER name value` and
`MESSAGE role value`; `#` at the start of a command is a comment to the end of its line. A value
runs to the first line end (\\r or \\n) where the text so far, trimmed of spaces, tabs and line
ends, reads as one of:

- `\"\"\"...\"\"\"`: the text between, newlines included (the value goes on while it does not end
  with three quotes, so `\"\"\"` may stand inside a line but never at a line's end);
- `"..."`: the same with one quote (so no line of it may end with `"`);
- anything not opening with `"`: the trimmed text as it stands.

There are no escapes: a backslash is a backslash. Ollama drops a character that is not printable
(Go's strconv.IsPrint: a control, format or private-use character, a space other than ` `) from
a value; andon keeps it (nothing read is changed), and `ollama_text` refuses to write one, so
what andon writes Ollama reads the same. `ollama_text` tries each form and keeps the first that
reads back exactly; text no form can hold (a control character, or a line ending in `\"\"\"`) is
None, for the caller to keep elsewhere or refuse.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass

# Ollama's commands (isValidCommand); FROM is the model.
DIRECTIVES = frozenset({
    "FROM", "PARAMETER", "SYSTEM", "TEMPLATE", "ADAPTER", "LICENSE", "MESSAGE", "REQUIRES", "DRAFT", "RENDERER",
    "PARSER",
})  # fmt: skip
MESSAGE_ROLES = ("system", "user", "assistant")
_SPACE = " \t"
_TRIMMED = " \t\r\n"  # what Go's TrimSpace takes off a value (the only white space left in one)
_LINE_END = re.compile(r"\r\n|\r|\n")
_NEWLINE = re.compile(r"[\r\n]")
_PARAMETER_NAME = re.compile(r"[A-Za-z0-9_]*")
_ROLE = re.compile(r"[A-Za-z]*")
_WORD = re.compile(r"[A-Za-z]*")


class SyntaxProblem(ValueError):
    """A Modelfile Ollama's parser refuses; the message starts with `line N:`."""


@dataclass(frozen=True)
class Command:
    """One command: its line, DIRECTIVE (upper case), value as Ollama reads it, and PARAMETER's
    name or MESSAGE's role."""

    line: int
    directive: str
    value: str
    key: str = ""


@dataclass(frozen=True)
class Comment:
    """A `#` comment: its line and its text after the `#`, to the end of the line."""

    line: int
    text: str


def read_commands(text: str) -> Iterator[Command | Comment]:
    """The commands and comments of a Modelfile, in order; SyntaxProblem where Ollama's parser stops."""
    text = text.removeprefix("\ufeff")  # a byte order mark, as Ollama's reader drops it
    starts = [0, *(m.end() for m in _LINE_END.finditer(text))]
    pos, end = 0, len(text)
    while pos < end:
        char = text[pos]
        if char in _SPACE or char in "\r\n":
            pos += 1
            continue
        line = bisect_right(starts, pos)
        if char == "#":
            stop = _line_end(text, pos)
            yield Comment(line, text[pos + 1 : stop])
            pos = stop
            continue
        command, pos = _command(text, pos, line)
        yield command


def _line_end(text: str, pos: int) -> int:
    found = _NEWLINE.search(text, pos)
    return found.start() if found else len(text)


def _command(text: str, start: int, line: int) -> tuple[Command, int]:
    """The command that starts at `start`, and where the next one may start."""
    word = _WORD.match(text, start + 1)
    assert word is not None  # [A-Za-z]* always matches
    pos = word.end()
    directive = text[start:pos].upper()
    if directive not in DIRECTIVES or (pos < len(text) and text[pos] not in _SPACE + "\r\n"):
        shown = text[start : _line_end(text, start)].split()[0][:40]
        raise SyntaxProblem(
            f"line {line}: {shown!r} is not a Modelfile command (expected one of {', '.join(sorted(DIRECTIVES))})"
        )
    if pos >= len(text) or text[pos] in "\r\n":
        return Command(line, directive, ""), pos  # no value (the caller says what it needed)
    key = ""
    if directive in ("PARAMETER", "MESSAGE"):
        key, pos = _key(text, pos + 1, line, directive)
    value, pos = read_value(text, pos + 1, line)
    return Command(line, directive, value, key), pos


def _key(text: str, pos: int, line: int, directive: str) -> tuple[str, int]:
    """PARAMETER's name or MESSAGE's role, and where its value starts."""
    while pos < len(text) and text[pos] in _SPACE:
        pos += 1
    pattern = _PARAMETER_NAME if directive == "PARAMETER" else _ROLE
    found = pattern.match(text, pos)
    assert found is not None
    key, pos = found.group(), found.end()
    if directive == "PARAMETER" and (not key or pos >= len(text) or text[pos] not in _SPACE):
        raise SyntaxProblem(
            f"line {line}: expected PARAMETER NAME VALUE (a name of letters, digits and _, a space, then the value)"
        )
    if directive == "MESSAGE" and (key not in MESSAGE_ROLES or pos >= len(text) or text[pos] not in _SPACE):
        raise SyntaxProblem(f"line {line}: expected MESSAGE ROLE TEXT, the role one of {', '.join(MESSAGE_ROLES)}")
    return key, pos


def read_value(text: str, pos: int, line: int = 1) -> tuple[str, int]:
    """The value that starts at `pos` as Ollama reads it, and the position after its line end."""
    while pos < len(text) and text[pos] in _SPACE:
        pos += 1
    start = pos
    while True:
        found = _NEWLINE.search(text, pos)
        stop = found.start() if found else len(text)
        value = _unquote(text, start, _trimmed_end(text, start, stop))
        if value is not None:
            return value, stop + (1 if found else 0)
        if found is None:
            quote = '"""' if text.startswith('"""', start) else '"'
            raise SyntaxProblem(f"line {line}: the value opens {quote} but never closes it (with {quote})")
        pos = stop + 1


def _trimmed_end(text: str, start: int, stop: int) -> int:
    while stop > start and text[stop - 1] in _TRIMMED:
        stop -= 1
    return stop


def _unquote(text: str, start: int, stop: int) -> str | None:
    """Ollama's unquote of text[start:stop]: None while a quote it opens is not closed."""
    size = stop - start
    if size >= 3 and text.startswith('"""', start):
        return text[start + 3 : stop - 3] if size >= 6 and text.endswith('"""', start, stop) else None
    if size >= 1 and text[start] == '"':
        return text[start + 1 : stop - 1] if size >= 2 and text[stop - 1] == '"' else None
    return text[start:stop]


def ollama_text(value: str, forms: str = "bare,quoted,triple") -> str | None:
    """`value` as a Modelfile value Ollama (and andon) reads back exactly, trying `forms` in order:
    bare, "quoted", \"\"\"triple quoted\"\"\"; None when no form can hold it (see `unwritable`)."""
    if unwritable(value):
        return None
    written = {"bare": value, "quoted": f'"{value}"', "triple": f'"""{value}"""'}
    for form in forms.split(","):
        text = written[form]
        if form == "bare" and (not value or _NEWLINE.search(value)):
            continue
        try:
            if read_value(text + "\n", 0) == (value, len(text) + 1):
                return text
        except SyntaxProblem:  # `"` + `"` + `"`... opens a triple quote that never closes
            continue
    return None


def unwritable(value: str) -> str:
    """Why no Modelfile value can hold this text, as Ollama reads it ("" when one can)."""
    for index, char in enumerate(value):
        if not (char.isprintable() or char in "\t\r\n"):
            return f"it holds U+{ord(char):04X} ({_place(value, index)}), which Ollama's reader drops"
    for found in _NEWLINE.finditer(value):
        if value.endswith('"""', 0, _trimmed_end(value, 0, found.start())):
            line = len(_LINE_END.findall(value, 0, found.start())) + 1
            return f'its line {line} ends with """, which closes a value for Ollama'
    return ""


def _place(text: str, index: int) -> str:
    """Where text[index] is: `character N`, or `line L, column C` in text of several lines."""
    line_start = max(text.rfind("\n", 0, index), text.rfind("\r", 0, index)) + 1
    if not _NEWLINE.search(text):
        return f"character {index + 1}"
    return f"line {len(_LINE_END.findall(text, 0, line_start)) + 1}, column {index - line_start + 1}"
