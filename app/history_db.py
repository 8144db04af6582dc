"""The chat history's SQLite file: checked before it is touched, migrated, and waited for when busy.

Opening never changes a file andon cannot use: a damaged file, one from a newer andon or one that
is not a database is read through a read-only connection first, and reported with the way out.
Schema changes are an append-only list of migrations (as in simonw/llm): never edit one that has
shipped, add the next.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

BUSY_TIMEOUT_S = 1.5  # SQLite's own wait for a lock, per attempt
ATTEMPTS = 3  # then andon tries again after a pause, up to this many attempts in all
PAUSE_S = 0.25


class HistoryError(Exception):
    """The chat history cannot be used; the message names the file and what to do."""


class HistoryBusyError(HistoryError):
    """Another program held the chat history for longer than andon waits."""


class ChatOwnedError(HistoryError):
    """Another running andon writes this chat; this one may read it but not write into it."""


def _m1(db: sqlite3.Connection) -> None:
    # one statement at a time: executescript would commit the migration's transaction midway
    db.execute(
        """CREATE TABLE chats (
            id INTEGER PRIMARY KEY,
            title TEXT NOT NULL,
            preset TEXT NOT NULL,
            model TEXT NOT NULL DEFAULT '',
            system TEXT,
            created REAL NOT NULL,
            updated REAL NOT NULL
        )"""
    )
    db.execute(
        """CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            chat_id INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
            role TEXT NOT NULL,
            content TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'complete',
            created REAL NOT NULL
        )"""
    )
    db.execute("CREATE INDEX messages_chat ON messages(chat_id, id)")


def _m2(db: sqlite3.Connection) -> None:
    # this chat's parameter changes on top of its preset, as JSON
    db.execute("ALTER TABLE chats ADD COLUMN parameters TEXT NOT NULL DEFAULT '{}'")


def _m3(db: sqlite3.Connection) -> None:
    # reply statistics (tokens, tokens/s, finish reason, seed) as JSON
    db.execute("ALTER TABLE messages ADD COLUMN stats TEXT NOT NULL DEFAULT '{}'")


def _m4(db: sqlite3.Connection) -> None:
    # one writer per chat: each open History registers as a writer (its process and a random id);
    # a chat names the writer that owns it, a streaming reply the writer writing it
    db.execute(
        """CREATE TABLE writers (
            instance TEXT PRIMARY KEY,
            pid INTEGER NOT NULL,
            started TEXT NOT NULL,
            host TEXT NOT NULL,
            opened REAL NOT NULL
        )"""
    )
    db.execute("ALTER TABLE chats ADD COLUMN writer TEXT")
    db.execute("ALTER TABLE messages ADD COLUMN writer TEXT")


def _m5(db: sqlite3.Connection) -> None:
    # a reasoning model's thinking, kept apart from the reply's content (never sent back to the model)
    db.execute("ALTER TABLE messages ADD COLUMN thinking TEXT NOT NULL DEFAULT ''")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_m1, _m2, _m3, _m4, _m5]

_MOVE_ASIDE = "move it aside (andon then starts a new history) or set XDG_DATA_HOME to use another folder"


def open_history(path: Path, busy_timeout: float = BUSY_TIMEOUT_S) -> sqlite3.Connection:
    """A connection to a checked, migrated history; HistoryError (file untouched) when it cannot be."""
    if path.exists():
        guard(path, lambda: check_readable(path, busy_timeout))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HistoryError(
            f"cannot create the folder of the chat history {path.parent}: {exc.strerror} "
            "(a file stands where a folder should be?); set XDG_DATA_HOME to use another folder"
        ) from None

    def connect() -> sqlite3.Connection:
        db = sqlite3.connect(path, timeout=busy_timeout, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA foreign_keys = ON")
            db.execute("PRAGMA journal_mode = WAL")
            migrate(db)
        except BaseException:
            db.close()
            raise
        return db

    return guard(path, connect)


def read_only_uri(path: Path) -> str:
    """A URI that reads the file and creates nothing beside it.

    A read-only connection to a WAL database creates its -wal and -shm files; when no -wal file
    exists no connection has the database open, so it can be read as immutable instead.
    """
    with path.open("rb") as fh:
        header = fh.read(20)
    wal_mode = len(header) == 20 and header[:16] == b"SQLite format 3\x00" and header[18] == 2
    idle = not Path(f"{path}-wal").exists()
    return f"{path.resolve().as_uri()}?mode=ro" + ("&immutable=1" if wal_mode and idle else "")


def check_readable(path: Path, busy_timeout: float) -> None:
    """Read the file without writing: SQLite, a schema this andon knows, every page sound."""
    db = sqlite3.connect(read_only_uri(path), uri=True, timeout=busy_timeout, isolation_level=None)
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise HistoryError(
                f"the chat history {path} was written by a newer andon (schema version {version}; this andon "
                f"knows up to {len(MIGRATIONS)}); andon has not changed it: use the newer andon, or {_MOVE_ASIDE}"
            )
        problems = [row[0] for row in db.execute("PRAGMA quick_check(3)")]
        if problems != ["ok"]:
            lines = (ln for p in problems for ln in p.splitlines() if not ln.startswith("***"))
            raise sqlite3.DatabaseError(f"damaged: {'; '.join(lines)}")
    finally:
        db.close()


def migrate(db: sqlite3.Connection) -> None:
    if db.execute("PRAGMA user_version").fetchone()[0] >= len(MIGRATIONS):
        return  # up to date: no write lock needed
    db.execute("BEGIN IMMEDIATE")  # one process migrates; the others wait, then find it done
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
            migration(db)
            db.execute(f"PRAGMA user_version = {number}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def is_busy(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    return isinstance(exc, sqlite3.OperationalError) and code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def guard(path: Path, operation: Callable[[], T], attempts: int = ATTEMPTS) -> T:
    """Run a database operation; retry it while the file is busy; a HistoryError for any failure."""
    for attempt in range(1, attempts + 1):
        try:
            return operation()
        except sqlite3.Error as exc:
            if is_busy(exc) and attempt < attempts:
                time.sleep(PAUSE_S * attempt)
                continue
            raise translate(path, exc) from None
        except OSError as exc:
            raise HistoryError(f"cannot use the chat history {path}: {exc.strerror or exc}") from None
    raise AssertionError("unreachable")  # pragma: no cover


def translate(path: Path, exc: sqlite3.Error) -> HistoryError:
    """The one line a user reads for a failed database operation."""
    if is_busy(exc):
        return HistoryBusyError(
            f"the chat history {path} is busy: another program (another andon, a backup or an SQLite tool) "
            "has held it for several seconds; close that program or wait for it, then try again"
        )
    name = getattr(exc, "sqlite_errorname", "")
    reason = str(exc)
    if name in ("SQLITE_CORRUPT", "SQLITE_NOTADB") or reason.startswith("damaged"):
        detail = reason.removeprefix("damaged: ")
        what = "is not an SQLite database" if name == "SQLITE_NOTADB" else f"is damaged ({detail})"
        return HistoryError(f"the chat history {path} {what}; andon has not changed it: {_MOVE_ASIDE}")
    if name == "SQLITE_FULL":
        return HistoryError(f"cannot write the chat history {path}: the disk is full; free some space")
    if name.startswith("SQLITE_READONLY") or name.startswith("SQLITE_CANTOPEN") or name == "SQLITE_PERM":
        return HistoryError(f"cannot open the chat history {path} for writing ({reason}); check the file and folder")
    return HistoryError(f"cannot use the chat history {path}: {reason}")
