"""Control characters made visible: text from a model or a paste is never terminal control.

A reply can hold escape sequences (OSC 2 retitles the terminal, OSC 52 sets the clipboard, a cursor
move hides text). Wherever andon shows such text on a terminal it goes through `visible`: C0 controls
but newline and tab, DEL and the C1 controls become caret or `<U+XXXX>` notation, so what was there
is seen and nothing is obeyed. Stored and piped text stays byte-exact; only what is shown changes.
"""

from __future__ import annotations

import re

# C0 controls except tab (0x09) and newline (0x0a), DEL, and the C1 controls.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")


def _show(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return "^" + chr(code + 0x40)  # ESC -> ^[, CR -> ^M, as `cat -v` and terminals write them
    if code == 0x7F:
        return "^?"
    return f"<U+{code:04X}>"


def visible(text: str) -> str:
    """`text` with every control character but newline and tab written out visibly.

    A carriage return that ends a line (Windows line ends) is dropped rather than shown.
    """
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(_show, text.replace("\r\n", "\n"))


def _picture(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)  # Unicode's control pictures: ESC -> ␛, NUL -> ␀
    return "\u2421" if code == 0x7F else "\ufffd"  # DEL -> ␡; a C1 control has no picture


def one_cell(text: str) -> str:
    """`text` with every control character but newline and tab drawn as one visible character
    (␛ for ESC), so that it keeps its length: for an editor whose cursor counts characters
    (the app's message box). Where the length may change, `visible` reads better."""
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(_picture, text)


def has_control(text: str) -> bool:
    """Whether `text` holds a character `visible` would rewrite."""
    return _CONTROL.search(text) is not None
