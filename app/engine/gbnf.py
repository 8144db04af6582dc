"""What andon reads of a GBNF grammar's shape, beside llama.cpp's own parser.

llama.cpp checks a grammar's syntax (app/engine/grammar.py asks it), but it reads nesting by recursion
(20,000 nested parentheses, or a long chain of rules that each start with the next, crash it)
and it accepts a grammar that no text can match (`root ::= "a" root` never ends, `"\\x00"` or
an empty `[...]` match no token): a reply under such a grammar runs to its length limit or ends
empty. This module measures the nesting first (`nesting_depth`, any text), then reads the rules
of a grammar llama.cpp accepted (`read`) and finds the first rule no text can complete
(`dead_end`) and whether every sentence is empty (`only_empty`).

The reader follows llama.cpp's parser (llama-grammar.cpp): a group `( ... )` becomes a rule of
its own, as there, so every question below is a pass over a flat table of rules, without
recursion.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["text", "empty", "never", "rule"]
_WORD = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
_SIMPLE_ESCAPES = {"t": 9, "r": 13, "n": 10, "\\": 92, '"': 34, "[": 91, "]": 93}
_HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}
_MAX_CHAR = 0x10FFFF
# llama.cpp: a repetition's count above this is refused ({m,}) or read as unbounded ({,n})
MAX_REPETITION = 2000


@dataclass(frozen=True)
class Item:
    """One element of a sequence, repeated min..max times (max None: no limit).

    kind: "text" gives at least one character, "empty" gives none, "never" matches nothing
    (a NUL or an empty [...]; llama.cpp gives no token a NUL), "rule" is the rule `rule`."""

    kind: Kind
    rule: str = ""
    min: int = 1
    max: int | None = 1


@dataclass
class Grammar:
    """Rules by name, each a list of alternatives (sequences of items); a group is a rule named
    `owner(n)` whose `owner` is the rule written around it."""

    rules: dict[str, list[list[Item]]] = field(default_factory=dict)
    owner: dict[str, str] = field(default_factory=dict)

    def named(self, rule: str) -> str:
        """The name a person wrote for a rule or for the group inside it."""
        return self.owner.get(rule, rule)


class _Unreadable(Exception):
    """Text the reader does not follow (llama.cpp says what is wrong with it)."""


class BadCount(Exception):
    """A count {m,n} with n < m: llama.cpp would loop for a long time on it (its count wraps)."""


def nesting_depth(text: str) -> int:
    """The deepest nesting of parentheses, outside strings, [...], <...> and comments (any text)."""
    depth = deepest = i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c in '"[':
            close = '"' if c == '"' else "]"
            i += 1
            while i < n and text[i] != close:
                i += 2 if text[i] == "\\" else 1
        elif c == "#":
            while i < n and text[i] not in "\r\n":
                i += 1
        elif c == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif c == ")":
            depth = max(0, depth - 1)
        i += 1
    return deepest


def read(text: str) -> Grammar | None:
    """The rules of a grammar llama.cpp accepts; None for text this reader does not follow.
    BadCount for a count llama.cpp would not finish reading."""
    try:
        return _Reader(text).grammar()
    except (_Unreadable, ValueError, IndexError):
        return None


class _Reader:
    """llama.cpp's GBNF syntax, read with an explicit stack of open groups (no recursion)."""

    def __init__(self, text: str) -> None:
        self.text, self.pos = text, 0
        self.out = Grammar()
        self.groups = 0

    def grammar(self) -> Grammar:
        self.space(newline=True)
        while self.pos < len(self.text):
            self.rule()
        return self.out

    def peek(self, k: int = 0) -> str:
        p = self.pos + k
        return self.text[p] if p < len(self.text) else ""

    def space(self, newline: bool) -> None:
        t = self.text
        while self.pos < len(t) and (t[self.pos] in " \t#" or (newline and t[self.pos] in "\r\n")):
            if t[self.pos] == "#":
                while self.pos < len(t) and t[self.pos] not in "\r\n":
                    self.pos += 1
            else:
                self.pos += 1

    def name(self) -> str:
        start = self.pos
        while self.peek() and self.peek() in _WORD:
            self.pos += 1
        if self.pos == start:
            raise _Unreadable
        return self.text[start : self.pos]

    def rule(self) -> None:
        name = self.name()
        self.space(newline=False)
        if self.text[self.pos : self.pos + 3] != "::=":
            raise _Unreadable
        self.pos += 3
        self.space(newline=True)
        self.out.rules[name] = self.alternatives(name)
        if self.peek() == "\r":
            self.pos += 2 if self.peek(1) == "\n" else 1
        elif self.peek() == "\n":
            self.pos += 1
        elif self.peek():
            raise _Unreadable
        self.space(newline=True)

    def alternatives(self, name: str) -> list[list[Item]]:
        """A rule's body up to its end; groups opened inside it become rules of their own."""
        stack: list[tuple[str, list[list[Item]]]] = [(name, [[]])]
        while True:
            rule, alts = stack[-1]
            nested = len(stack) > 1
            c = self.peek()
            if c == "|":
                self.pos += 1
                self.space(newline=True)
                alts.append([])
            elif c == "(":
                self.pos += 1
                self.space(newline=True)
                self.groups += 1
                group = f"{name}({self.groups})"
                self.out.owner[group] = name
                alts[-1].append(Item("rule", group))
                stack.append((group, [[]]))
            elif c == ")" and nested:
                self.pos += 1
                self.out.rules[rule] = alts
                stack.pop()
                self.space(newline=len(stack) > 1)
            elif c in ("*", "+", "?", "{"):
                self.repeat(alts[-1])
                self.space(newline=nested)
            elif c and (c in '"[.<!' or c in _WORD):
                alts[-1].append(self.atom())
                self.space(newline=nested)
            elif nested:
                raise _Unreadable  # an open group at the end of the line or the text
            else:
                return alts

    def atom(self) -> Item:
        c = self.peek()
        if c == '"':
            self.pos += 1
            chars = []
            while self.peek() != '"':
                chars.append(self.char())
            self.pos += 1
            if not chars:
                return Item("empty")
            return Item("never" if 0 in chars else "text")
        if c == "[":
            return self.char_class()
        if c == ".":
            self.pos += 1
            return Item("text")
        if c in "<!":
            end = self.text.index(">", self.pos)
            self.pos = end + 1
            return Item("text")
        return Item("rule", self.name())

    def char(self) -> int:
        """One character of a string or a [...], escapes decoded (llama.cpp's parse_char)."""
        c = self.peek()
        if not c:
            raise _Unreadable
        if c != "\\":
            self.pos += 1
            return ord(c)
        e = self.peek(1)
        if e in _HEX_ESCAPES:
            size = _HEX_ESCAPES[e]
            digits = self.text[self.pos + 2 : self.pos + 2 + size]
            self.pos += 2 + size
            return int(digits, 16)
        if e in _SIMPLE_ESCAPES:
            self.pos += 2
            return _SIMPLE_ESCAPES[e]
        raise _Unreadable

    def char_class(self) -> Item:
        """[...] or [^...]: "never" where it matches no character but NUL."""
        self.pos += 1
        negated = self.peek() == "^"
        if negated:
            self.pos += 1
        ranges: list[tuple[int, int]] = []
        while self.peek() != "]":
            low = high = self.char()
            if self.peek() == "-" and self.peek(1) not in ("]", ""):
                self.pos += 1
                high = self.char()
            ranges.append((low, high))
        self.pos += 1
        if negated:
            covered = _covered(ranges)
            matches = any(hi >= 1 for _, hi in _gaps(covered))
        else:
            matches = any(hi >= max(lo, 1) for lo, hi in ranges)
        return Item("text" if matches else "never")

    def repeat(self, sequence: list[Item]) -> None:
        if not sequence:
            raise _Unreadable
        c = self.peek()
        self.pos += 1
        if c in "*+?":
            low, high = {"*": (0, None), "+": (1, None), "?": (0, 1)}[c]
        else:
            low, high = self.counts()
        last = sequence[-1]
        sequence[-1] = Item(last.kind, last.rule, low, high)

    def counts(self) -> tuple[int, int | None]:
        """{m}, {m,} or {m,n}, as llama.cpp reads them (n above MAX_REPETITION: no limit)."""
        self.space(newline=False)
        low = self.number()
        self.space(newline=False)
        high: int | None = low
        if self.peek() == ",":
            self.pos += 1
            self.space(newline=False)
            high = self.number() if self.peek().isdigit() else None
            self.space(newline=False)
        if self.peek() != "}":
            raise _Unreadable
        self.pos += 1
        if high is not None and high < low:
            raise BadCount(f"{{{low},{high}}}")
        if high is not None and high > MAX_REPETITION:
            high = None
        return low, high

    def number(self) -> int:
        start = self.pos
        while self.peek().isdigit():
            self.pos += 1
        if self.pos == start:
            raise _Unreadable
        return int(self.text[start : self.pos])


def _covered(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted((lo, hi) for lo, hi in ranges if lo <= hi):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _gaps(covered: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The characters 0..U+10FFFF that `covered` leaves out, as ranges."""
    gaps, start = [], 0
    for lo, hi in covered:
        if lo > start:
            gaps.append((start, lo - 1))
        start = max(start, hi + 1)
    if start <= _MAX_CHAR:
        gaps.append((start, _MAX_CHAR))
    return gaps


# --- questions about the rules ------------------------------------------------------------------


def _fixpoint(g: Grammar, holds_for_item: dict[Kind, bool], needs_all: bool) -> set[str]:
    """The rules for which a property holds, by counting (linear in the grammar's size).

    needs_all: an alternative has it when every item that must occur (min > 0) has it (a rule
    that can end, or can be empty); else when one item that may occur (max != 0) has it.
    """
    waiting: list[int] = []  # per alternative: how many items it still waits for
    owners: list[str] = []
    users: dict[str, list[int]] = defaultdict(list)
    ready: deque[int] = deque()
    for name, alternatives in g.rules.items():
        for sequence in alternatives:
            index = len(waiting)
            owners.append(name)
            count = 0
            for item in sequence:
                counts = item.min > 0 if needs_all else item.max != 0
                if not counts:
                    continue
                if item.kind == "rule":
                    users[item.rule].append(index)
                    count += 1
                elif holds_for_item[item.kind] != needs_all:
                    count = -1  # decided by this item alone
                    break
            if needs_all:
                waiting.append(count if count >= 0 else 1 << 60)
                if count == 0:
                    ready.append(index)
            else:
                waiting.append(0 if count < 0 else 1)  # one item is enough
                if count < 0:
                    ready.append(index)
    holds: set[str] = set()
    while ready:
        rule = owners[ready.popleft()]
        if rule in holds:
            continue
        holds.add(rule)
        for index in users.get(rule, []):
            waiting[index] -= 1
            if waiting[index] == 0:
                ready.append(index)
    return holds


def can_end(g: Grammar) -> set[str]:
    """Rules some finite text completes (the others never end)."""
    return _fixpoint(g, {"text": True, "empty": True, "never": False, "rule": False}, needs_all=True)


def reachable(g: Grammar, root: str) -> list[str]:
    """Rules a sentence of `root` may enter, root first, in the order they are met."""
    seen, order, todo = {root}, [root], deque([root])
    while todo:
        for sequence in g.rules.get(todo.popleft(), []):
            for item in sequence:
                if item.kind == "rule" and item.max != 0 and item.rule not in seen:
                    seen.add(item.rule)
                    order.append(item.rule)
                    todo.append(item.rule)
    return order


@dataclass(frozen=True)
class DeadEnd:
    """A rule that no text completes, and what each of its alternatives waits for."""

    rule: str  # as written (a group is named by its rule)
    needs: tuple[str, ...]  # rules that never end, which it cannot do without
    impossible: bool  # an alternative needs a NUL or an empty [...] (no token gives them)
    part: bool = False  # a group inside `rule`, not the whole rule


def dead_end(g: Grammar, root: str = "root") -> DeadEnd | None:
    """The first rule a reply may enter that no text completes (root first, a named rule before a
    group), else the first alternative that no text completes; None if there is none."""
    ends = can_end(g)
    entered = reachable(g, root)
    dead = [r for r in entered if r not in ends]
    if dead:
        rule = next((r for r in dead if r not in g.owner), dead[0])
        needs, impossible = _blockers(g, g.rules.get(rule, []), ends)
        return DeadEnd(g.named(rule), needs, impossible, rule in g.owner)
    for rule in entered:
        for sequence in g.rules.get(rule, []):
            needs, impossible = _blockers(g, [sequence], ends)
            if needs or impossible:
                return DeadEnd(g.named(rule), needs, impossible, part=True)
    return None


def _blockers(g: Grammar, sequences: list[list[Item]], ends: set[str]) -> tuple[tuple[str, ...], bool]:
    """What keeps these sequences from ending: the named rules that never end (looking inside
    groups), and whether one needs a character no token gives."""
    needs: list[str] = []
    impossible = False
    todo, seen = list(sequences), set()
    while todo:
        for item in todo.pop():
            if item.min == 0:
                continue
            if item.kind == "never":
                impossible = True
            elif item.kind == "rule" and item.rule not in ends:
                if item.rule in g.owner and item.rule not in seen:  # a group: what it needs
                    seen.add(item.rule)
                    todo.extend(g.rules.get(item.rule, []))
                elif item.rule not in g.owner and item.rule not in needs:
                    needs.append(item.rule)
    return tuple(needs), impossible


def endless(g: Grammar, root: str = "root") -> list[str]:
    """Rules a reply may enter that always contain themselves again (a cycle of required rules
    that never end), in the order they are met from root."""
    ends = can_end(g)
    dead = [r for r in reachable(g, root) if r not in ends]
    needs = {
        r: {i.rule for s in g.rules.get(r, []) for i in s if i.kind == "rule" and i.min > 0 and i.rule not in ends}
        for r in dead
    }
    cyclic = []
    for rule in dead:
        seen, todo = set(), list(needs[rule])
        while todo:
            nxt = todo.pop()
            if nxt == rule:
                cyclic.append(rule)
                break
            if nxt not in seen:
                seen.add(nxt)
                todo.extend(needs.get(nxt, ()))
    return cyclic


def only_empty(g: Grammar, root: str = "root") -> bool:
    """Whether every sentence of `root` is empty text (a reply could only be empty)."""
    ends = can_end(g)

    def usable(item: Item) -> bool:
        return item.kind != "never" and (item.kind != "rule" or item.rule in ends)

    # alternatives that can be completed, without the optional items that could not be
    completed = Grammar(
        {
            name: [[i for i in s if usable(i)] for s in alts if all(i.min == 0 or usable(i) for i in s)]
            for name, alts in g.rules.items()
        },
        g.owner,
    )
    gives_text = _fixpoint(completed, {"text": True, "empty": False, "never": False, "rule": False}, needs_all=False)
    return root in ends and root not in gives_text


def leading_depth(g: Grammar) -> int:
    """The longest chain of rules that each begin with the next (llama.cpp follows it by recursion).

    A rule begins with each rule met before its first item that cannot be empty. A cycle is left
    recursion, which llama.cpp refuses itself; it is not followed here."""
    nullable = _fixpoint(g, {"text": False, "empty": True, "never": False, "rule": False}, needs_all=True)
    starts: dict[str, list[str]] = {}
    for name, alternatives in g.rules.items():
        firsts: list[str] = []
        for sequence in alternatives:
            for item in sequence:
                if item.kind == "rule":
                    firsts.append(item.rule)
                if item.min > 0 and not (item.kind == "empty" or (item.kind == "rule" and item.rule in nullable)):
                    break
        starts[name] = firsts
    depth: dict[str, int] = {}
    for top in g.rules:
        if top in depth:
            continue
        stack: list[tuple[str, int]] = [(top, 0)]
        on_path = {top}
        while stack:
            rule, i = stack[-1]
            nexts = starts.get(rule, [])
            if i < len(nexts):
                stack[-1] = (rule, i + 1)
                nxt = nexts[i]
                if nxt not in depth and nxt not in on_path and nxt in g.rules:
                    stack.append((nxt, 0))
                    on_path.add(nxt)
                continue
            depth[rule] = 1 + max((depth.get(n, 0) for n in nexts if n not in on_path), default=0)
            stack.pop()
            on_path.discard(rule)
    return max(depth.values(), default=0)
