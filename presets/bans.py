"""`banned_strings`: phrases a reply must never contain, as one compiled pattern.

An item is literal text, matched without regard to case, or after `re:` a regular expression
(Python's `re` syntax, case-sensitive unless it says `(?i)`) whose matches have a bounded length.
The bound is what lets the engine keep only a short tail of the reply in question: a match can
begin at most `longest` characters before the end of the text written so far.

The items are joined into one alternation and matched with the `regex` library, whose partial
matches tell which end of the text may still become a banned phrase (what streaming holds back).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from re import _parser as re_parser  # type: ignore[attr-defined]  # the width of a pattern's matches

import regex

PREFIX = "re:"
MAX_CHARS = 100  # the longest text one item may match
ALLOWED = f"allowed: text, or {PREFIX} and a regular expression matching 1 to {MAX_CHARS} characters"


@dataclass(frozen=True)
class Bans:
    """The banned items of one reply as one pattern; `longest` is the longest text it can match."""

    items: tuple[str, ...]
    pattern: regex.Pattern[str]
    longest: int

    @classmethod
    def of(cls, items: Sequence[str]) -> Bans | None:
        """The pattern for these items (already checked by `check`); None when there are none."""
        return _compiled(tuple(items)) if items else None

    def first_match(self, text: str) -> int | None:
        """Where the first whole banned match in `text` begins, if any."""
        found = self.pattern.search(text)
        return None if found is None else found.start()

    def may_begin(self, text: str) -> int | None:
        """Where the first text begins that may still become a banned match as more is written
        (a partial match reaching the end of `text`), if any."""
        found = self.pattern.search(text, partial=True)
        return None if found is None or found.start() >= len(text) else found.start()

    def completed_by(self, text: str, pieces: Sequence[str]) -> list[int]:
        """The indices of `pieces` (token texts) that, written after `text`, complete a banned
        match that `text` alone does not hold: the tokens a reply cannot keep at this position."""
        while (at := self.first_match(text)) is not None:  # a match written before the bans were set
            text = text[at + 1 :]
        own = _matching(self, tuple(pieces))  # a match inside the token's own text
        start = self.may_begin(text)
        if start is None:
            return list(own)
        tail = text[start:]  # no match can begin before the first partial one
        return sorted({*own, *(i for i, piece in enumerate(pieces) if self.pattern.search(tail + piece))})


@lru_cache(maxsize=4)
def _matching(bans: Bans, pieces: tuple[str, ...]) -> tuple[int, ...]:
    """The indices of the pieces that hold a banned match themselves (once per list and vocabulary)."""
    return tuple(i for i, piece in enumerate(pieces) if bans.pattern.search(piece))


@lru_cache(maxsize=16)
def _compiled(items: tuple[str, ...]) -> Bans:
    """One alternation of every item (compiled once for the replies that share a list)."""
    sources = [_source(item) for item in items]
    pattern = regex.compile("|".join(f"(?:{s})" for s, _ in sources))
    return Bans(items, pattern, max(width for _, width in sources))


def check(items: Sequence[str]) -> tuple[str, ...]:
    """The items unchanged, or ValueError: one line naming the item and what is allowed."""
    for item in items:
        _source(item)
    return tuple(items)


def _source(item: str) -> tuple[str, int]:
    """(the item as a regular expression, the longest text it matches); ValueError if refused."""
    shown = repr(item if len(item) <= 40 else item[:37] + "...")
    if not item.startswith(PREFIX):
        if not item:
            raise ValueError(f"banned_strings: an empty string bans nothing ({ALLOWED})")
        if len(item) > MAX_CHARS:
            raise ValueError(f"banned_strings: {shown} is longer than {MAX_CHARS} characters ({ALLOWED})")
        return f"(?i:{regex.escape(item)})", len(item)
    source = item[len(PREFIX) :]
    try:
        regex.compile(source)
        low, high = re_parser.parse(source).getwidth()
    except (regex.error, re_parser.error, RecursionError, OverflowError) as exc:
        raise ValueError(f"banned_strings: {shown} is not a regular expression ({exc}) ({ALLOWED})") from None
    if high > MAX_CHARS:
        raise ValueError(f"banned_strings: {shown} can match more than {MAX_CHARS} characters ({ALLOWED})")
    if low == 0:
        raise ValueError(f"banned_strings: {shown} can match empty text ({ALLOWED})")
    return source, high
