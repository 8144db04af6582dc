"""`banned_strings` while a reply is written: the text that may still become a banned phrase is
held back, with what the reply was before each of its tokens, so that a match can be undone.

After each token, `BanWatch.feed` looks at the held text: a whole banned match there is answered
with the reply position of the token where it begins (the reply rewinds to it, see
generation.Reply); otherwise every token before the first one that may still begin a match is
released to be shown, and its saved state dropped. The phrase's first token is then banned at
that position only (`banned_at`), and the bans of later positions are forgotten: they were for
another text before them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from andon.presets.bans import Bans

MAX_REWINDS = 200  # a reply that cannot go on without a banned phrase after this many ends ("banned")


@dataclass
class Mark:
    """What the reply was before one held token: `state` (the Reply's to restore), and where the
    token's text begins in the held text."""

    state: Any
    start: int


@dataclass
class Verdict:
    released: list[str] = field(default_factory=list)  # each released token's text, in order
    first: int = 0  # the reply position of the first released token
    rewind: int | None = None  # the reply position a banned match begins at


@dataclass
class BanWatch:
    bans: Bans
    held: str = ""
    first: int = 0  # the reply position of the first held token
    marks: list[Mark] = field(default_factory=list)
    banned: dict[int, set[int]] = field(default_factory=dict)  # position -> tokens banned there
    rewinds: int = 0

    def feed(self, state: Any, text: str) -> Verdict:
        """The next token's text, with the state before it: what to show, or where to rewind."""
        self.marks.append(Mark(state, len(self.held)))
        self.held += text
        at = self.bans.first_match(self.held)
        if at is not None:
            return Verdict(rewind=self.first + self._token_at(at))
        may = self.bans.may_begin(self.held)
        first = self.first
        return Verdict(self._release(len(self.marks) if may is None else self._token_at(may)), first)

    def rewind(self, position: int, token: int) -> Any:
        """Forget the tokens from `position` on, ban `token` there; the state saved before it."""
        index = position - self.first
        mark = self.marks[index]
        self.held, self.marks = self.held[: mark.start], self.marks[:index]
        self.banned = {p: ts for p, ts in self.banned.items() if p <= position}
        self.banned.setdefault(position, set()).add(token)
        self.rewinds += 1
        return mark.state

    def banned_at(self, position: int) -> list[int]:
        return sorted(self.banned.get(position, ()))

    def flush(self) -> Verdict:
        """The reply ended: what was held was not banned after all."""
        first = self.first
        return Verdict(self._release(len(self.marks)), first)

    def _token_at(self, offset: int) -> int:
        """The index of the held token whose text holds character `offset` (a token before it
        whose bytes began that character, but which showed nothing, included)."""
        i = max(i for i, mark in enumerate(self.marks) if mark.start <= offset)
        while i > 0 and self.marks[i - 1].start == self.marks[i].start:
            i -= 1
        return i

    def _release(self, keep_from: int) -> list[str]:
        """Show the text of the tokens before held index `keep_from`, one item per token (the
        reply counts its thinking's tokens by them); keep the rest."""
        cut = self.marks[keep_from].start if keep_from < len(self.marks) else len(self.held)
        starts = [m.start for m in self.marks[:keep_from]]
        out = [self.held[a:b] for a, b in zip(starts, [*starts[1:], cut], strict=False)]  # none when starts is empty
        self.held = self.held[cut:]
        self.marks = [Mark(m.state, m.start - cut) for m in self.marks[keep_from:]]
        self.first += keep_from
        return out
