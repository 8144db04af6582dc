"""What the "Copy…" picker offers: every message of a chat and every code block in it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from andon.app.chat.history import StoredMessage
from markdown_it import MarkdownIt

WHO = {"user": "You", "assistant": "Assistant", "system": "System"}
LINE = 70  # characters of a first line shown in the picker


@dataclass(frozen=True)
class CopyChoice:
    kind: Literal["message", "reply", "code"]
    label: str  # who wrote it, or the code's language
    first_line: str
    text: str  # what is copied


def code_blocks(markdown: str) -> list[tuple[str, str]]:
    """The code blocks of a Markdown text, in order, as (language, code): fenced and indented ones."""
    tokens = MarkdownIt("commonmark").parse(markdown)
    blocks = [t for t in tokens if t.type in ("fence", "code_block")]
    return [(t.info.split()[0] if t.info.strip() else "", t.content) for t in blocks]


def first_line(text: str) -> str:
    """The first line with words (a code fence's ``` line is skipped), cut to LINE characters."""
    lines = [part.strip() for part in text.splitlines() if part.strip()]
    line = next((x for x in lines if not x.startswith(("```", "~~~"))), lines[0] if lines else "")
    return line if len(line) <= LINE else line[: LINE - 1] + "…"


def copy_choices(messages: Iterable[StoredMessage]) -> list[CopyChoice]:
    """Each message with text, oldest first, each followed by the code blocks of a reply."""
    choices: list[CopyChoice] = []
    for message in messages:
        if not message.content.strip():
            continue
        who = WHO.get(message.role, message.role)
        kind: Literal["message", "reply"] = "reply" if message.role == "assistant" else "message"
        choices.append(CopyChoice(kind, who, first_line(message.content), message.content))
        if message.role == "assistant":
            for language, code in code_blocks(message.content):
                choices.append(CopyChoice("code", language or "code", first_line(code), code))
    return choices
