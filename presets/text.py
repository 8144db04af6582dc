"""Text that enters andon must be UTF-8: one rule for arguments, standard input and files.

Text that is not valid UTF-8 is refused, never repaired: the message names where the text came
from, the first byte that is wrong and its offset, so the user can fix it (`iconv`) knowing that
nothing was changed behind their back. File paths are not text in this sense: they are passed to
the system as the system gave them.
"""

from __future__ import annotations

from pathlib import Path

_HINT = "andon reads text as UTF-8 (convert it first, e.g. with iconv -t UTF-8)"


class TextError(ValueError):
    """Text that is not valid UTF-8; the message says where and at which byte."""

    def __init__(self, where: str, detail: str) -> None:
        self.where, self.detail = where, detail  # detail: "is not valid UTF-8: byte 0xff at offset 3; ..."
        super().__init__(f"{where} {detail}")


def decode(data: bytes, where: str) -> str:
    """`data` as UTF-8; TextError naming `where`, the byte and its offset otherwise."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TextError(
            where, f"is not valid UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start}; {_HINT}"
        ) from None


def read_text(path: Path, where: str | None = None) -> str:
    """A text file's content (OSError as open() raises it; TextError for bytes that are not UTF-8)."""
    return decode(path.read_bytes(), where or str(path))


def check(text: str, where: str) -> str:
    """A str from the system (argv, which Python decodes with surrogateescape), checked as UTF-8.

    Bytes that were not UTF-8 arrive as lone surrogates; TextError names the first one.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        char = ord(text[exc.start])
        if 0xDC80 <= char <= 0xDCFF:  # a byte that surrogateescape carried through
            offset = len(text[: exc.start].encode("utf-8", "surrogateescape"))
            raise TextError(
                where, f"is not valid UTF-8: byte 0x{char - 0xDC00:02x} at offset {offset}; {_HINT}"
            ) from None
        raise TextError(where, f"is not valid text: a lone surrogate U+{char:04X} at character {exc.start}") from None
    return text
