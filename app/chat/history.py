"""Saved chats in SQLite under the platformdirs user data folder.

The user's message is stored before the reply starts, and the reply is stored as it streams, so a
chat killed mid-reply keeps both. Several andons may share one history: each chat has at most one
writer (the andon that claimed it or added its last message while alive), a write into a chat
another live andon owns is refused with ChatOwnedError, and a reply left "streaming" is marked
stopped only once the process writing it has ended. Every operation waits for a busy file (SQLite's
busy timeout, then a bounded retry) and fails with one HistoryError line, never a traceback.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from andon.app.chat.history_db import (
    BUSY_TIMEOUT_S,
    MIGRATIONS,
    ChatOwnedError,
    HistoryBusyError,
    HistoryError,
    guard,
    open_history,
)
from andon.app.chat.processes import ProcessId, is_alive, this_process
from andon.presets.paths import history_db

__all__ = [
    "MIGRATIONS",
    "Chat",
    "ChatOwnedError",
    "History",
    "HistoryBusyError",
    "HistoryError",
    "Status",
    "StoredMessage",
]

Status = Literal["complete", "streaming", "stopped", "error"]
T = TypeVar("T")


@dataclass
class StoredMessage:
    id: int
    role: str
    content: str
    status: Status = "complete"
    stats: dict[str, Any] = field(default_factory=dict)
    thinking: str = ""  # a reasoning model's thinking before this reply; never sent back to the model
    version: int = 1  # which of the reply's versions this is (regenerate keeps the earlier ones)
    versions: int = 1  # how many versions the reply has


@dataclass
class Chat:
    id: int
    title: str
    preset: str
    model: str = ""
    system: str | None = None  # None: the preset's system prompt
    parameters: dict[str, Any] = field(default_factory=dict)
    updated: float = 0.0


_CHAT_COLUMNS = "SELECT id, title, preset, model, system, parameters, updated FROM chats"
_OWNER = """SELECT w.instance, w.pid, w.started, w.host FROM chats c
            JOIN writers w ON w.instance = c.writer WHERE c.id = ?"""


def _escape_like(text: str) -> str:
    """Text that LIKE matches as written (its wildcards % and _ and the escape itself escaped)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


_MESSAGE_COLUMNS = """SELECT id, role, content, status, stats, thinking, version,
    (SELECT count(*) FROM versions v WHERE v.message_id = m.id) + 1 FROM messages m"""
_VERSION_FIELDS = "content, thinking, status, stats"  # what a version of a reply holds


def _message(row: tuple) -> StoredMessage:
    return StoredMessage(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5], row[6], row[7])


def search_words(text: str) -> list[str]:
    """The words a search looks for, case-folded (each must be found)."""
    return [str.casefold(w) for w in text.split()]


def first_match(messages: list[StoredMessage], text: str) -> int | None:
    """The index of the first message holding the most of the search's words (None: none holds any),
    as search_chats compares them."""
    words = search_words(text)
    found = [sum(w in m.content.casefold() for w in words) for m in messages]
    best = max(found, default=0)
    return found.index(best) if best else None


def _chat(row: tuple) -> Chat:
    return Chat(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]), row[6])


class History:
    """One andon's connection to the history; it registers as a writer until `close()`."""

    def __init__(self, path: Path | None = None, busy_timeout: float = BUSY_TIMEOUT_S) -> None:
        self.path = path if path is not None else history_db()
        self.lock = threading.RLock()  # the reply worker writes from its own thread
        self.process = this_process()
        self.instance = secrets.token_hex(8)  # tells apart two Histories of one process
        self.db = open_history(self.path, busy_timeout)
        try:
            self._write(self._register)
        except HistoryError:
            self.db.close()
            raise

    def _register(self, db: sqlite3.Connection) -> None:
        p = self.process
        db.execute(
            "INSERT INTO writers (instance, pid, started, host, opened) VALUES (?, ?, ?, ?, ?)",
            (self.instance, p.pid, p.started, p.host, time.time()),
        )

    def close(self) -> None:
        """Give up this andon's chats; a reply it was still writing is kept, marked stopped."""

        def leave(db: sqlite3.Connection) -> None:
            db.execute("UPDATE messages SET status='stopped' WHERE writer=? AND status='streaming'", (self.instance,))
            db.execute("UPDATE chats SET writer=NULL WHERE writer=?", (self.instance,))
            db.execute("DELETE FROM writers WHERE instance=?", (self.instance,))

        with suppress(HistoryError):  # a process that has ended counts as gone anyway
            self._write(leave)
        self.db.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- every operation goes through these two ---------------------------------------------------

    def _read(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        with self.lock:
            return guard(self.path, lambda: operation(self.db))

    def _write(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        """One transaction that takes the write lock first, so a busy file fails before any change."""

        def transaction() -> T:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                result = operation(self.db)
                self.db.execute("COMMIT")
            except BaseException:
                if self.db.in_transaction:
                    with suppress(sqlite3.Error):
                        self.db.execute("ROLLBACK")
                raise
            return result

        with self.lock:
            return guard(self.path, transaction)

    # --- who writes which chat --------------------------------------------------------------------

    def _other_writer(self, db: sqlite3.Connection, chat_id: int) -> ProcessId | None:
        row = db.execute(_OWNER, (chat_id,)).fetchone()
        if row is None or row[0] == self.instance:
            return None
        process = ProcessId(row[1], row[2], row[3])
        return process if is_alive(process) else None

    def _may_write(self, db: sqlite3.Connection, chat_id: int) -> None:
        other = self._other_writer(db, chat_id)
        if other is not None:
            raise ChatOwnedError(
                f"this chat is being written by another andon (process {other.pid} on {other.host}); "
                "nothing was changed: start a new chat, or close the other andon first"
            )

    def claim_chat(self, chat_id: int) -> bool:
        """Make this andon the chat's writer; False when another live andon owns it or it is gone."""

        def claim(db: sqlite3.Connection) -> bool:
            if db.execute("SELECT 1 FROM chats WHERE id=?", (chat_id,)).fetchone() is None:
                return False
            if self._other_writer(db, chat_id) is not None:
                return False
            db.execute("UPDATE chats SET writer=? WHERE id=?", (self.instance, chat_id))
            return True

        return self._write(claim)

    def release_chat(self, chat_id: int) -> None:
        """Stop owning the chat (another andon may then claim it)."""
        self._write(
            lambda db: db.execute("UPDATE chats SET writer=NULL WHERE id=? AND writer=?", (chat_id, self.instance))
        )

    def writer_pid(self, chat_id: int) -> int | None:
        """The process id of another live andon that owns the chat, or None."""
        other = self._read(lambda db: self._other_writer(db, chat_id))
        return other.pid if other else None

    def recover_interrupted(self) -> int:
        """Replies left "streaming" by an andon that has ended: keep their text, mark them stopped.

        A reply another live andon is writing is left alone. Returns how many were marked.
        """

        def recover(db: sqlite3.Connection) -> int:
            rows = db.execute("SELECT instance, pid, started, host FROM writers WHERE instance != ?", (self.instance,))
            dead = [(r[0],) for r in rows.fetchall() if not is_alive(ProcessId(r[1], r[2], r[3]))]
            db.executemany("DELETE FROM writers WHERE instance=?", dead)
            live = "SELECT instance FROM writers"
            db.execute(f"UPDATE chats SET writer=NULL WHERE writer IS NOT NULL AND writer NOT IN ({live})")
            cur = db.execute(
                f"UPDATE messages SET status='stopped' WHERE status='streaming' "
                f"AND (writer IS NULL OR writer NOT IN ({live}))"
            )
            return cur.rowcount

        return self._write(recover)

    # --- chats --------------------------------------------------------------------------------

    def create_chat(self, title: str, preset: str, model: str = "", system: str | None = None) -> Chat:
        """A new chat, owned by this andon."""
        now = time.time()

        def create(db: sqlite3.Connection) -> int:
            cur = db.execute(
                "INSERT INTO chats (title, preset, model, system, created, updated, writer) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (title, preset, model, system, now, now, self.instance),
            )
            return int(cur.lastrowid or 0)

        return Chat(self._write(create), title, preset, model, system, {}, now)

    def chats(self) -> list[Chat]:
        rows = self._read(lambda db: db.execute(f"{_CHAT_COLUMNS} ORDER BY updated DESC, id DESC").fetchall())
        return [_chat(r) for r in rows]

    def last_viewed(self) -> list[Chat]:
        """The chats, the one last opened in the app first (then the newest, as `chats` lists them)."""
        sql = f"{_CHAT_COLUMNS} ORDER BY viewed IS NULL, viewed DESC, updated DESC, id DESC"
        return [_chat(r) for r in self._read(lambda db: db.execute(sql).fetchall())]

    def mark_viewed(self, chat_id: int) -> None:
        """Remember that the chat was opened now (andon reopens it next time); any andon may."""
        self._write(lambda db: db.execute("UPDATE chats SET viewed=? WHERE id=?", (time.time(), chat_id)))

    def copy_chat(self, chat_id: int, title: str) -> Chat:
        """A copy of the chat (its settings and messages; a reply still streaming kept as stopped),
        made in one transaction, owned by nobody: it exists whole or not at all."""
        return self._write(lambda db: self._copy(db, chat_id, title))[0]

    def clear_chat(self, chat_id: int, copy_title: str) -> tuple[Chat | None, int]:
        """Move the chat's messages into a copy of it titled `copy_title` (see copy_chat), in one
        transaction: the copy holds exactly the messages cleared, as stored at that moment. Returns
        the copy and how many messages it holds; (None, 0) when the chat has none. ChatOwnedError
        when another live andon writes the chat: then nothing is copied or cleared."""

        def clear(db: sqlite3.Connection) -> tuple[Chat | None, int]:
            self._may_write(db, chat_id)
            if db.execute("SELECT 1 FROM messages WHERE chat_id=? LIMIT 1", (chat_id,)).fetchone() is None:
                return None, 0
            copy, count = self._copy(db, chat_id, copy_title)
            db.execute("DELETE FROM messages WHERE chat_id=?", (chat_id,))
            return copy, count

        return self._write(clear)

    def _copy(self, db: sqlite3.Connection, chat_id: int, title: str) -> tuple[Chat, int]:
        """Inside a transaction: the new chat and how many messages were copied into it."""
        now = time.time()
        cur = db.execute(
            "INSERT INTO chats (title, preset, model, system, parameters, created, updated) "
            "SELECT ?, preset, model, system, parameters, ?, ? FROM chats WHERE id=?",
            (title, now, now, chat_id),
        )
        new = int(cur.lastrowid or 0)
        ids = [row[0] for row in db.execute("SELECT id FROM messages WHERE chat_id=? ORDER BY id", (chat_id,))]
        for old in ids:  # each message, then its other versions under the copy's id
            copied = db.execute(
                "INSERT INTO messages (chat_id, role, content, status, stats, thinking, version, created) "
                "SELECT ?, role, content, CASE status WHEN 'streaming' THEN 'stopped' ELSE status END, "
                "stats, thinking, version, created FROM messages WHERE id=?",
                (new, old),
            ).lastrowid
            db.execute(
                f"INSERT INTO versions (message_id, number, {_VERSION_FIELDS}, created) "
                f"SELECT ?, number, {_VERSION_FIELDS}, created FROM versions WHERE message_id=? ORDER BY number",
                (copied, old),
            )
        return _chat(db.execute(f"{_CHAT_COLUMNS} WHERE id=?", (new,)).fetchone()), len(ids)

    def chat(self, chat_id: int) -> Chat | None:
        row = self._read(lambda db: db.execute(f"{_CHAT_COLUMNS} WHERE id=?", (chat_id,)).fetchone())
        return _chat(row) if row else None

    def search_chats(self, text: str) -> list[Chat]:
        """Chats, newest first, where each word of `text` is in the title or in a message (any case)."""
        words = search_words(text)
        # SQLite's LIKE ignores the case of ASCII letters only, and runs in C (15 ms against 45 ms
        # over 10,000 messages): a word with other letters is compared case-folded by Python
        terms, values = [], []
        for word in words:
            test = "{} LIKE ? ESCAPE '\\'" if word.isascii() else "instr(fold({}), ?) > 0"
            in_messages = f"SELECT chat_id FROM messages WHERE {test.format('content')}"
            terms.append(f"({test.format('title')} OR id IN ({in_messages}))")
            value = f"%{_escape_like(word)}%" if word.isascii() else word
            values += [value, value]

        def search(db: sqlite3.Connection) -> list[tuple]:
            db.create_function("fold", 1, str.casefold, deterministic=True)
            sql = f"{_CHAT_COLUMNS} WHERE {' AND '.join(terms) or '1'} ORDER BY updated DESC, id DESC"
            return db.execute(sql, values).fetchall()

        return [_chat(r) for r in self._read(search)]

    def update_chat(self, chat: Chat) -> None:
        """Save the chat's title and settings; `chat.updated` changes only once they are saved."""
        now = time.time()

        def update(db: sqlite3.Connection) -> None:
            self._may_write(db, chat.id)
            db.execute(
                "UPDATE chats SET title=?, preset=?, model=?, system=?, parameters=?, updated=? WHERE id=?",
                (chat.title, chat.preset, chat.model, chat.system, json.dumps(chat.parameters), now, chat.id),
            )

        self._write(update)
        chat.updated = now

    def delete_chat(self, chat_id: int) -> None:
        def delete(db: sqlite3.Connection) -> None:
            self._may_write(db, chat_id)
            db.execute("DELETE FROM chats WHERE id=?", (chat_id,))

        self._write(delete)

    # --- messages -----------------------------------------------------------------------------

    def messages(self, chat_id: int) -> list[StoredMessage]:
        rows = self._read(
            lambda db: db.execute(f"{_MESSAGE_COLUMNS} WHERE chat_id=? ORDER BY id", (chat_id,)).fetchall()
        )
        return [_message(r) for r in rows]

    def add_message(
        self, chat_id: int, role: str, content: str, status: Status = "complete", title: str | None = None
    ) -> StoredMessage:
        """Append a message (and retitle the chat, if `title` is given) in one transaction.

        This andon becomes the chat's writer; ChatOwnedError if another live andon is.
        """

        def add(db: sqlite3.Connection) -> int:
            self._may_write(db, chat_id)
            now = time.time()
            cur = db.execute(
                "INSERT INTO messages (chat_id, role, content, status, created, writer) VALUES (?, ?, ?, ?, ?, ?)",
                (chat_id, role, content, status, now, self.instance if status == "streaming" else None),
            )
            db.execute(
                "UPDATE chats SET updated=?, writer=?, title=COALESCE(?, title) WHERE id=?",
                (now, self.instance, title, chat_id),
            )
            return int(cur.lastrowid or 0)

        return StoredMessage(self._write(add), role, content, status)

    def update_message(
        self,
        message_id: int,
        content: str,
        status: Status | None = None,
        stats: dict[str, Any] | None = None,
        thinking: str | None = None,
    ) -> None:
        """Save a message's content (and its status, stats and thinking where given)."""
        sets, values = ["content=?"], [content]
        if thinking is not None:
            sets.append("thinking=?")
            values.append(thinking)
        if status is not None:
            sets.append("status=?")
            values.append(status)
        if stats is not None:
            sets.append("stats=?")
            values.append(json.dumps(stats))

        def update(db: sqlite3.Connection) -> None:
            row = db.execute("SELECT chat_id FROM messages WHERE id=?", (message_id,)).fetchone()
            if row is not None:
                self._may_write(db, row[0])
                db.execute(f"UPDATE messages SET {', '.join(sets)} WHERE id=?", (*values, message_id))

        self._write(update)

    # --- a reply's versions (regenerate) and a reply taken up again (continue) -------------------

    def new_version(self, message_id: int) -> StoredMessage:
        """Keep the reply's version shown among its versions and empty the message for a new one,
        written by this andon (an empty version, a reply that wrote nothing, is not kept)."""

        def add(db: sqlite3.Connection) -> StoredMessage:
            shown = self._shown(db, message_id)
            if shown.content or shown.thinking:
                self._keep_shown(db, shown)
                number = shown.versions + 1
            else:  # the versions after it move down into its place
                db.execute(
                    "UPDATE versions SET number=number-1 WHERE message_id=? AND number>?", (message_id, shown.version)
                )
                number = shown.versions
            self._take(db, message_id, ("", "", "streaming", "{}"), number, streaming=True)
            return self._shown(db, message_id)

        return self._write(add)

    def show_version(self, message_id: int, number: int) -> StoredMessage:
        """Make the reply's version `number` the one shown (and sent to the model from now on)."""

        def show(db: sqlite3.Connection) -> StoredMessage:
            shown = self._shown(db, message_id)
            row = db.execute(
                f"SELECT {_VERSION_FIELDS} FROM versions WHERE message_id=? AND number=?", (message_id, number)
            ).fetchone()
            if row is None or shown.status == "streaming":
                return shown
            self._keep_shown(db, shown)
            db.execute("DELETE FROM versions WHERE message_id=? AND number=?", (message_id, number))
            self._take(db, message_id, row, number)
            return self._shown(db, message_id)

        return self._write(show)

    def reopen_reply(self, message_id: int) -> None:
        """The reply is being written again by this andon (continue): "streaming", its text kept."""

        def reopen(db: sqlite3.Connection) -> None:
            chat_id = self._chat_of(db, message_id)
            db.execute("UPDATE messages SET status='streaming', writer=? WHERE id=?", (self.instance, message_id))
            db.execute("UPDATE chats SET updated=?, writer=? WHERE id=?", (time.time(), self.instance, chat_id))

        self._write(reopen)

    def _chat_of(self, db: sqlite3.Connection, message_id: int) -> int:
        """The message's chat, which this andon may write (ChatOwnedError if not; KeyError: gone)."""
        row = db.execute("SELECT chat_id FROM messages WHERE id=?", (message_id,)).fetchone()
        if row is None:
            raise KeyError(message_id)
        self._may_write(db, row[0])
        return int(row[0])

    def _shown(self, db: sqlite3.Connection, message_id: int) -> StoredMessage:
        self._chat_of(db, message_id)
        return _message(db.execute(f"{_MESSAGE_COLUMNS} WHERE id=?", (message_id,)).fetchone())

    def _keep_shown(self, db: sqlite3.Connection, shown: StoredMessage) -> None:
        """Keep the version shown among the reply's other versions, under its number."""
        db.execute(
            f"INSERT INTO versions (message_id, number, {_VERSION_FIELDS}, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (shown.id, shown.version, shown.content, shown.thinking, shown.status, json.dumps(shown.stats),
             time.time()),
        )  # fmt: skip

    def _take(
        self, db: sqlite3.Connection, message_id: int, fields: tuple, number: int, streaming: bool = False
    ) -> None:
        """The message shows these fields (content, thinking, status, stats) as its version `number`."""
        db.execute(
            "UPDATE messages SET content=?, thinking=?, status=?, stats=?, version=?, writer=? WHERE id=?",
            (*fields, number, self.instance if streaming else None, message_id),
        )

    def delete_messages_from(self, chat_id: int, message_id: int) -> None:
        """Remove a message and everything after it (for regenerate and edit-and-resend)."""

        def delete(db: sqlite3.Connection) -> None:
            self._may_write(db, chat_id)
            db.execute("DELETE FROM messages WHERE chat_id=? AND id>=?", (chat_id, message_id))

        self._write(delete)

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
            note += f" *(version {m.version} of {m.versions})*" if m.versions > 1 else ""
            out += [f"## {label}{note}", ""]
            if m.thinking:  # folded where Markdown renders HTML (GitHub), plain text elsewhere
                out += ["<details><summary>Thinking</summary>", "", m.thinking, "", "</details>", ""]
            out += [m.content, ""]
        return "\n".join(out)
