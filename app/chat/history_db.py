"""The chat history's SQLite file: checked before it is touched, migrated, and waited for when busy.

Opening never changes a file andon cannot use: a damaged file, one from a newer andon or one that
is not a database is read through a read-only connection first, and reported with the way out.
Schema changes are an append-only list of migrations (as in simonw/llm): never edit one that has
shipped, add the next.
"""

from __future__ import annotations

import functools
import os
import shutil
import sqlite3
import tempfile
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


def _m6(db: sqlite3.Connection) -> None:
    # a regenerated reply keeps its earlier versions: the message row holds the version shown (the
    # one the conversation goes on from, numbered `version`), this table the others
    db.execute(
        """CREATE TABLE versions (
            id INTEGER PRIMARY KEY,
            message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
            number INTEGER NOT NULL,
            content TEXT NOT NULL,
            thinking TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL DEFAULT 'complete',
            stats TEXT NOT NULL DEFAULT '{}',
            created REAL NOT NULL
        )"""
    )
    db.execute("CREATE INDEX versions_message ON versions(message_id, number)")
    db.execute("ALTER TABLE messages ADD COLUMN version INTEGER NOT NULL DEFAULT 1")


def _m7(db: sqlite3.Connection) -> None:
    # when a chat was last opened in the app (NULL: never since this schema): andon reopens it
    db.execute("ALTER TABLE chats ADD COLUMN viewed REAL")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_m1, _m2, _m3, _m4, _m5, _m6, _m7]

_MOVE_ASIDE = "move it aside (andon then starts a new history) or set XDG_DATA_HOME to use another folder"


def open_history(path: Path, busy_timeout: float = BUSY_TIMEOUT_S) -> sqlite3.Connection:
    """A connection to a checked, migrated history; HistoryError (file untouched) when it cannot be."""
    if path.exists() or path.is_symlink():
        guard(path, lambda: check_usable(path, busy_timeout))
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


# --- the checks made before a file is opened for writing: each reads, none writes -----------------

_SIDE_FILES = ("-wal", "-shm", "-journal")
_HEADER = b"SQLite format 3\x00"


def check_usable(path: Path, busy_timeout: float) -> None:
    """HistoryError unless the file is one this andon can open for writing: a writable file whose
    pages are all sound and whose schema is one this andon made (or migrates). Nothing is written."""
    _check_file(path)
    try:
        db = sqlite3.connect(read_only_uri(path), uri=True, timeout=busy_timeout, isolation_level=None)
        try:
            check_contents(path, db)
        finally:
            db.close()
    except sqlite3.OperationalError as exc:
        # a journal left by a crash (or a WAL file without its index) needs a write to be read:
        # SQLite recovers a copy of them in a folder of andon's own instead
        if getattr(exc, "sqlite_errorname", "") not in ("SQLITE_CANTOPEN", "SQLITE_READONLY_ROLLBACK"):
            raise
        _check_copy(path, busy_timeout)
    _check_writable(path)


def _check_file(path: Path) -> None:
    """The file itself, before SQLite reads it: a regular file, not empty, not cut short."""
    if path.is_dir():
        raise _unusable(path, "is a folder, not a file")
    if not path.is_file():
        raise _unusable(path, "is not a regular file")
    if _side(path, "-wal").exists() or _side(path, "-journal").exists():
        return  # a crash left the newest pages beside the file: SQLite's own check judges them
    size = path.stat().st_size
    if size == 0:
        raise _unusable(path, "is empty (0 bytes), not a chat history")
    with path.open("rb") as fh:
        header = fh.read(100)
    if not header.startswith(_HEADER[: len(header)]):
        return  # SQLite names it: not a database
    if len(header) < 100:
        raise _damaged(path, f"it is cut short: {size} bytes, less than an SQLite header")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    pages_valid = header[24:28] == header[92:96] and pages > 0
    if page_size and (size % page_size or (pages_valid and pages * page_size > size)):
        raise _damaged(path, f"it is cut short: {size} bytes, not the {pages * page_size} its header gives")


def _check_writable(path: Path) -> None:
    """The file, its side files and its folder must be writable: andon writes each of them.

    The write bits are looked at as well as access(2): root may write a file marked read-only.
    """
    for item in (path, *(_side(path, s) for s in _SIDE_FILES), path.parent):
        if item.exists() and not (os.access(item, os.W_OK) and item.stat().st_mode & 0o222):
            what = "" if item == path else (" (its folder" if item == path.parent else f" (its {item.name}") + ")"
            raise HistoryError(
                f"the chat history {path} is read-only{what}; andon has not changed it: make it writable "
                "(chmod u+w) or set XDG_DATA_HOME to use another folder"
            )


def _check_copy(path: Path, busy_timeout: float) -> None:
    """Check a copy of the file and its journal or WAL file, recovered by SQLite where andon may write."""
    with tempfile.TemporaryDirectory(prefix="andon-check-") as folder:
        copy = Path(folder) / "history.sqlite3"
        for suffix in ("", "-wal", "-journal"):
            if _side(path, suffix).exists():
                shutil.copyfile(_side(path, suffix), _side(copy, suffix))
        db = sqlite3.connect(copy, timeout=busy_timeout, isolation_level=None)
        try:
            check_contents(path, db)
        finally:
            db.close()


def read_only_uri(path: Path) -> str:
    """A URI that reads the file and changes nothing beside it.

    `readonly_shm` reads another connection's WAL index without writing to it. A read-only
    connection to a WAL database still creates its -wal and -shm files; when no -wal file exists no
    connection has the database open, so it can be read as immutable instead.
    """
    with path.open("rb") as fh:
        header = fh.read(20)
    wal_mode = len(header) == 20 and header[:16] == _HEADER and header[18] == 2
    idle = not _side(path, "-wal").exists()
    return f"{path.resolve().as_uri()}?mode=ro&readonly_shm=1" + ("&immutable=1" if wal_mode and idle else "")


def check_contents(path: Path, db: sqlite3.Connection) -> None:
    """Read the database without writing: a schema this andon knows, every page sound."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise HistoryError(
            f"the chat history {path} was written by a newer andon (schema version {version}; this andon "
            f"knows up to {len(MIGRATIONS)}); andon has not changed it: use the newer andon, or {_MOVE_ASIDE}"
        )
    if version < 0:
        raise _damaged(path, f"its schema version is {version}")
    problems = [row[0] for row in db.execute("PRAGMA quick_check(3)")]
    if problems != ["ok"]:
        lines = (ln for p in problems for ln in p.splitlines() if not ln.startswith("***"))
        raise sqlite3.DatabaseError(f"damaged: {'; '.join(lines)}")
    if version == 0 and (others := sorted(_tables(db))):  # andon makes its tables in an empty database only
        raise _unusable(path, f"is another program's database, not a chat history (its tables: {', '.join(others)})")
    wrong = schema_problems(db, version)
    if wrong:
        raise _damaged(path, "; ".join(wrong[:3]) + ("; …" if len(wrong) > 3 else ""))


Column = tuple[str, bool, str | None, bool]  # declared type, NOT NULL, default, part of the primary key
Tables = dict[str, dict[str, Column]]


def _tables(db: sqlite3.Connection) -> Tables:
    """Each table's columns, by lower-case name (SQLite's names ignore case)."""
    names = db.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite%'").fetchall()
    return {
        name.lower(): {
            col[1].lower(): (col[2].upper(), bool(col[3]), col[4], bool(col[5]))
            for col in db.execute("SELECT * FROM pragma_table_info(?)", (name,))
        }
        for (name,) in names
    }


def _foreign_keys(db: sqlite3.Connection, table: str) -> set[tuple[str, str, str, str]]:
    rows = db.execute('SELECT "table", "from", "to", on_delete FROM pragma_foreign_key_list(?)', (table,))
    return {(t.lower(), f.lower(), (to or "").lower(), on_delete.upper()) for t, f, to, on_delete in rows}


@functools.cache
def expected_schema(version: int) -> tuple[Tables, dict[str, set[tuple[str, str, str, str]]]]:
    """The tables (and their foreign keys) that the first `version` migrations make."""
    db = sqlite3.connect(":memory:", isolation_level=None)
    try:
        for migration in MIGRATIONS[:version]:
            migration(db)
        tables = _tables(db)
        return tables, {t: _foreign_keys(db, t) for t in tables}
    finally:
        db.close()


def _declared(column: Column) -> str:
    type_, not_null, default, key = column
    words = [type_ or "untyped", "PRIMARY KEY" if key else "", "NOT NULL" if not_null else ""]
    return " ".join(w for w in [*words, f"DEFAULT {default}" if default is not None else ""] if w)


def schema_problems(db: sqlite3.Connection, version: int) -> list[str]:
    """What differs from the schema of this version that andon relies on (extra tables and
    columns with a default are allowed: andon never reads them)."""
    tables, keys = expected_schema(version)
    found = _tables(db)
    problems: list[str] = []
    for table, columns in tables.items():
        have = found.get(table)
        if have is None:
            problems.append(f"the table {table} is missing")
            continue
        for name, column in columns.items():
            if name not in have:
                problems.append(f"the column {table}.{name} is missing")
            elif have[name] != column:
                problems.append(f"the column {table}.{name} is {_declared(have[name])}, not {_declared(column)}")
        for name, (_, not_null, default, key) in have.items():
            if name not in columns and not_null and default is None and not key:
                problems.append(f"the column {table}.{name} needs a value andon does not know")
        if not keys[table] <= _foreign_keys(db, table):
            problems.append(f"the table {table} lost its link to {', '.join(sorted(k[0] for k in keys[table]))}")
    return problems


def _side(path: Path, suffix: str) -> Path:
    return Path(f"{path}{suffix}")


def _damaged(path: Path, detail: str) -> HistoryError:
    return HistoryError(f"the chat history {path} is damaged ({detail}); andon has not changed it: {_MOVE_ASIDE}")


def _unusable(path: Path, what: str) -> HistoryError:
    return HistoryError(f"the chat history {path} {what}; andon has not changed it: {_MOVE_ASIDE}")


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
