"""Saved chats in SQLite under the platformdirs user data folder.

Schema changes are an append-only list of migrations (as in simonw/llm): never edit one that has
shipped, add the next. The user's message is stored before the reply starts, and the reply is
stored as it streams, so a chat killed mid-reply keeps both.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from andon.presets.paths import history_db

Status = Literal["complete", "streaming", "stopped", "error"]


def _m1(db: sqlite3.Connection) -> None:
    db.executescript(
        """
        CREATE TABLE chats (
            id INTEGER PRIMARY KEY,
            title TEXT NOT NULL,
            preset TEXT NOT NULL,
            model TEXT NOT NULL DEFAULT '',
            system TEXT,
            created REAL NOT NULL,
            updated REAL NOT NULL
        );
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            chat_id INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
            role TEXT NOT NULL,
            content TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'complete',
            created REAL NOT NULL
        );
        CREATE INDEX messages_chat ON messages(chat_id, id);
        """
    )


def _m2(db: sqlite3.Connection) -> None:
    # this chat's parameter changes on top of its preset, as JSON
    db.execute("ALTER TABLE chats ADD COLUMN parameters TEXT NOT NULL DEFAULT '{}'")


def _m3(db: sqlite3.Connection) -> None:
    # reply statistics (tokens, tokens/s, finish reason, seed) as JSON
    db.execute("ALTER TABLE messages ADD COLUMN stats TEXT NOT NULL DEFAULT '{}'")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_m1, _m2, _m3]


@dataclass
class StoredMessage:
    id: int
    role: str
    content: str
    status: Status = "complete"
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass
class Chat:
    id: int
    title: str
    preset: str
    model: str = ""
    system: str | None = None  # None: the preset's system prompt
    parameters: dict[str, Any] = field(default_factory=dict)
    updated: float = 0.0


def _locked(method):
    def wrapper(self, *args, **kwargs):
        with self.lock:
            return method(self, *args, **kwargs)

    wrapper.__name__ = method.__name__
    wrapper.__doc__ = method.__doc__
    return wrapper


_CHAT_COLUMNS = "SELECT id, title, preset, model, system, parameters, updated FROM chats"


def _chat(row: tuple) -> Chat:
    return Chat(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]), row[6])


class HistoryError(Exception):
    """The chat history cannot be opened; the file is left as it is."""


class History:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else history_db()
        self.lock = threading.RLock()  # the reply worker writes from its own thread
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self.db.execute("PRAGMA foreign_keys = ON")
            self.db.execute("PRAGMA journal_mode = WAL")
            self.migrate()
        except (sqlite3.DatabaseError, OSError) as exc:
            raise HistoryError(
                f"cannot open the chat history {self.path}: {exc}. andon has not changed it; "
                "move it aside to start a new history, or set XDG_DATA_HOME to use another folder"
            ) from None

    def migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.db:
                self.db.execute("BEGIN")
                migration(self.db)
                self.db.execute(f"PRAGMA user_version = {number}")

    def close(self) -> None:
        self.db.close()

    # --- chats --------------------------------------------------------------------------------

    @_locked
    def create_chat(self, title: str, preset: str, model: str = "", system: str | None = None) -> Chat:
        now = time.time()
        cur = self.db.execute(
            "INSERT INTO chats (title, preset, model, system, created, updated) VALUES (?, ?, ?, ?, ?, ?)",
            (title, preset, model, system, now, now),
        )
        return Chat(int(cur.lastrowid or 0), title, preset, model, system, {}, now)

    @_locked
    def chats(self) -> list[Chat]:
        rows = self.db.execute(f"{_CHAT_COLUMNS} ORDER BY updated DESC, id DESC").fetchall()
        return [_chat(r) for r in rows]

    @_locked
    def chat(self, chat_id: int) -> Chat | None:
        row = self.db.execute(f"{_CHAT_COLUMNS} WHERE id=?", (chat_id,)).fetchone()
        return _chat(row) if row else None

    @_locked
    def update_chat(self, chat: Chat) -> None:
        chat.updated = time.time()
        self.db.execute(
            "UPDATE chats SET title=?, preset=?, model=?, system=?, parameters=?, updated=? WHERE id=?",
            (chat.title, chat.preset, chat.model, chat.system, json.dumps(chat.parameters), chat.updated, chat.id),
        )

    @_locked
    def delete_chat(self, chat_id: int) -> None:
        self.db.execute("DELETE FROM chats WHERE id=?", (chat_id,))

    # --- messages -----------------------------------------------------------------------------

    @_locked
    def messages(self, chat_id: int) -> list[StoredMessage]:
        rows = self.db.execute(
            "SELECT id, role, content, status, stats FROM messages WHERE chat_id=? ORDER BY id", (chat_id,)
        ).fetchall()
        return [StoredMessage(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows]

    @_locked
    def add_message(self, chat_id: int, role: str, content: str, status: Status = "complete") -> StoredMessage:
        cur = self.db.execute(
            "INSERT INTO messages (chat_id, role, content, status, created) VALUES (?, ?, ?, ?, ?)",
            (chat_id, role, content, status, time.time()),
        )
        self.db.execute("UPDATE chats SET updated=? WHERE id=?", (time.time(), chat_id))
        return StoredMessage(int(cur.lastrowid or 0), role, content, status)

    @_locked
    def update_message(
        self, message_id: int, content: str, status: Status | None = None, stats: dict[str, Any] | None = None
    ) -> None:
        sets, values = ["content=?"], [content]
        if status is not None:
            sets.append("status=?")
            values.append(status)
        if stats is not None:
            sets.append("stats=?")
            values.append(json.dumps(stats))
        self.db.execute(f"UPDATE messages SET {', '.join(sets)} WHERE id=?", (*values, message_id))

    @_locked
    def delete_messages_from(self, chat_id: int, message_id: int) -> None:
        """Remove a message and everything after it (for regenerate and edit-and-resend)."""
        self.db.execute("DELETE FROM messages WHERE chat_id=? AND id>=?", (chat_id, message_id))

    @_locked
    def clear_messages(self, chat_id: int) -> None:
        self.db.execute("DELETE FROM messages WHERE chat_id=?", (chat_id,))

    @_locked
    def recover_interrupted(self) -> int:
        """Replies left 'streaming' by a killed andon: keep their text, mark them stopped."""
        cur = self.db.execute("UPDATE messages SET status='stopped' WHERE status='streaming'")
        return cur.rowcount

    def to_markdown(self, chat_id: int) -> str:
        chat = self.chat(chat_id)
        if chat is None:
            raise KeyError(chat_id)
        out = [
            f"# {chat.title}",
            "",
            f"*preset: {chat.preset}" + (f", model: {chat.model}*" if chat.model else "*"),
            "",
        ]
        for m in self.messages(chat_id):
            label = {"user": "You", "assistant": "Assistant", "system": "System"}.get(m.role, m.role)
            note = " *(stopped)*" if m.status == "stopped" else ""
            out += [f"## {label}{note}", "", m.content, ""]
        return "\n".join(out)
