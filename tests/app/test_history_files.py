"""A history file andon cannot use is refused in one line and left exactly as it was: its bytes,
its time, its -wal/-shm/-journal files, and no new file beside it, whether andon opens it as the
app starts (`andon`, through `main`) or as a History."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from andon.app.chat.history import MIGRATIONS, History, HistoryBusyError, HistoryError
from andon.app.main import main

Shape = Callable[[Path], None]  # makes the file at the path into one damaged shape
Snapshot = dict[str, tuple[str, int]]


def history_path(tmp_path: Path) -> Path:
    """Where `andon` looks for its history under the test's XDG_DATA_HOME (see conftest)."""
    return tmp_path / "data" / "andon" / "history.sqlite3"


def snapshot(folder: Path) -> Snapshot:
    """Every file in the folder: its md5 and its modification time (ns)."""
    found = {}
    for item in sorted(folder.iterdir()):
        data = hashlib.md5(item.read_bytes()).hexdigest() if item.is_file() else "folder"
        found[item.name] = (data, item.stat().st_mtime_ns)
    return found


def good(path: Path, chats: int = 3) -> None:
    """A sound history of the current schema with a few chats, closed (no -wal left)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with History(path) as h:
        for i in range(chats):
            chat = h.create_chat(f"chat {i}", "balanced")
            h.add_message(chat.id, "user", f"question {i} " * 100)
            h.add_message(chat.id, "assistant", f"answer {i} " * 100)


def edit(path: Path, *statements: str, schema: bool = False) -> None:
    """Run statements on the file with a plain sqlite3 connection (writable_schema for schema edits)."""
    db = sqlite3.connect(path, isolation_level=None)
    if schema:
        db.execute("PRAGMA writable_schema = ON")
    for statement in statements:
        db.execute(statement)
    db.close()


def drop_table(table: str) -> Shape:
    return lambda path: (good(path), edit(path, f"DROP TABLE {table}"))[-1]


def drop_column(table: str, column: str) -> Shape:
    return lambda path: (good(path), edit(path, f"ALTER TABLE {table} DROP COLUMN {column}"))[-1]


def retype(table: str, declared: str, wrong: str) -> Shape:
    """The table's declaration says `wrong` where andon's says `declared` (its rows kept as they are)."""
    sql = f"UPDATE sqlite_master SET sql = replace(sql, '{declared}', '{wrong}') WHERE name = '{table}'"
    return lambda path: (good(path), edit(path, sql, schema=True))[-1]


def version(number: int) -> Shape:
    return lambda path: (good(path), edit(path, f"PRAGMA user_version = {number}"))[-1]


def cut(keep: Callable[[int], int]) -> Shape:
    def make(path: Path) -> None:
        good(path, 30)
        data = path.read_bytes()
        path.write_bytes(data[: keep(len(data))])

    return make


def written(data: bytes) -> Shape:
    def make(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    return make


def folder(path: Path) -> None:
    path.mkdir(parents=True)
    (path / "inside.txt").write_text("kept")


def read_only(path: Path) -> None:
    good(path)
    path.chmod(0o444)


def read_only_folder(path: Path) -> None:
    good(path)
    path.parent.chmod(0o555)


def other_program(path: Path) -> None:
    """A database of another program's, with its own table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    edit(path, "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)", "INSERT INTO notes VALUES (1, 'mine')")


def crashed_with_a_wal(path: Path) -> None:
    """A history whose table was dropped by a program that then crashed: the change is in its -wal."""
    good(path)
    script = (
        "import os, sqlite3, sys\n"
        "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "db.execute('PRAGMA journal_mode = WAL')\n"
        "db.execute('DROP TABLE writers')\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(path)], check=True)
    assert Path(f"{path}-wal").exists()


def crashed_with_a_journal(path: Path) -> None:
    """A history in rollback-journal mode left mid-write by a crash (a hot journal), messages dropped."""
    good(path)
    edit(path, "PRAGMA journal_mode = DELETE", "DROP TABLE messages")
    script = (
        "import os, sqlite3, sys\n"
        "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "db.execute('PRAGMA cache_size = 1')\n"
        "db.execute('BEGIN')\n"
        "for i in range(2000): db.execute('INSERT INTO chats (title, preset, created, updated) "
        "VALUES (?, ?, 0, 0)', ('x' * 200, 'balanced'))\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(path)], check=True)
    assert Path(f"{path}-journal").exists()


SHAPES: dict[str, tuple[Shape, str]] = {
    # name: (how the file is made, what the one line must say)
    "no chats table": (drop_table("chats"), "the table chats is missing"),
    "no messages table": (drop_table("messages"), "the table messages is missing"),
    "no writers table": (drop_table("writers"), "the table writers is missing"),
    "no thinking column": (drop_column("messages", "thinking"), "the column messages.thinking is missing"),
    "no parameters column": (drop_column("chats", "parameters"), "the column chats.parameters is missing"),
    "no pid column": (drop_column("writers", "pid"), "the column writers.pid is missing"),
    "content is a blob": (retype("messages", "content TEXT", "content BLOB"), "messages.content is BLOB NOT NULL"),
    "title is an integer": (retype("chats", "title TEXT", "title INTEGER"), "chats.title is INTEGER NOT NULL"),
    "id is not the key": (retype("chats", "id INTEGER PRIMARY KEY", "id INTEGER"), "chats.id is INTEGER, not"),
    "a newer schema": (version(len(MIGRATIONS) + 1), "was written by a newer andon"),
    "a far newer schema": (version(999), "schema version 999"),
    "a negative schema": (version(-1), "its schema version is -1"),
    "not a database": (written(b"Hello, this is a text file.\n" * 200), "is not an SQLite database"),
    "another format": (written(b"SQLite format 2\x00" + b"x" * 5000), "is not an SQLite database"),
    "cut to 50 bytes": (cut(lambda n: 50), "is damaged (it is cut short: 50 bytes, less than an SQLite header)"),
    "a few bytes of text": (written(b"hello"), "is not an SQLite database"),
    "cut in half": (cut(lambda n: n // 2), "is damaged"),
    "cut by a page": (cut(lambda n: n - 4096), "is damaged"),
    "cut by 100 bytes": (cut(lambda n: n - 100), "is damaged (it is cut short"),
    "zero bytes": (written(b""), "is empty (0 bytes)"),
    "a folder": (folder, "is a folder, not a file"),
    "read-only": (read_only, "is read-only; andon has not changed it"),
    "read-only folder": (read_only_folder, "is read-only (its folder)"),
    "tables of another program": (other_program, "another program's database, not a chat history (its tables: notes)"),
    "a dropped table in a crash's wal": (crashed_with_a_wal, "the table writers is missing"),
    "a hot journal": (crashed_with_a_journal, "the table messages is missing"),
}


@pytest.fixture
def restore_modes(tmp_path: Path) -> Iterator[None]:
    yield
    for item in (tmp_path / "data" / "andon", history_path(tmp_path)):
        if item.exists():
            item.chmod(0o755 if item.is_dir() else 0o644)


def refused_line(text: str, path: Path, says: str) -> None:
    assert "\n" not in text.strip(), text
    assert str(path) in text and says in text, text
    assert "Traceback" not in text and "internal error" not in text


@pytest.mark.parametrize("shape", SHAPES, ids=list(SHAPES))
def test_a_history_andon_cannot_use_is_refused_and_left_as_it_was(tmp_path, shape, restore_modes):
    path = history_path(tmp_path)
    make, says = SHAPES[shape]
    make(path)
    before = snapshot(path.parent)
    with pytest.raises(HistoryError) as err:
        History(path)
    refused_line(str(err.value), path, says)
    assert "has not changed it" in str(err.value)
    assert snapshot(path.parent) == before  # bytes, times, side files; and no new file


@pytest.mark.parametrize("shape", ["no messages table", "content is a blob", "zero bytes", "read-only", "a folder"])
def test_andon_starting_on_such_a_history_says_so_in_one_line_and_exits_2(
    tmp_path, shape, restore_modes, capsys, monkeypatch
):
    from textual.app import App

    monkeypatch.setattr(App, "run", lambda *a, **k: pytest.fail("the app started on a history it cannot use"))
    path = history_path(tmp_path)
    make, says = SHAPES[shape]
    make(path)
    before = snapshot(path.parent)
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("andon: the chat history ")
    refused_line(err, path, says)
    assert snapshot(path.parent) == before


@contextmanager
def locked(path: Path, *statements: str) -> Iterator[None]:
    """Another process that holds the history with these statements until the block ends."""
    script = (
        "import sqlite3, sys, time\n"
        "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        f"for s in {list(statements)!r}: db.execute(s).fetchall()\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield
    finally:
        proc.kill()
        proc.wait()


LOCKS = {
    "exclusive": ("PRAGMA locking_mode = EXCLUSIVE", "BEGIN EXCLUSIVE", "SELECT count(*) FROM chats"),
    "a write under way": ("BEGIN IMMEDIATE", "INSERT INTO writers VALUES ('x', 1, '', '', 0)"),
    "rollback journal, exclusive": ("PRAGMA journal_mode = DELETE", "BEGIN EXCLUSIVE"),
    "rollback journal, a write under way": (
        "PRAGMA journal_mode = DELETE", "BEGIN IMMEDIATE", "INSERT INTO writers VALUES ('x', 1, '', '', 0)"),
}  # fmt: skip


@pytest.mark.parametrize("lock", LOCKS, ids=list(LOCKS))
def test_a_history_locked_by_another_process_is_refused_and_left_as_it_was(tmp_path, lock):
    path = history_path(tmp_path)
    good(path)
    with locked(path, *LOCKS[lock]):
        before = snapshot(path.parent)
        with pytest.raises(HistoryBusyError) as err:
            History(path, busy_timeout=0.1)
        refused_line(str(err.value), path, "is busy")
        assert snapshot(path.parent) == before
    with History(path) as h:  # once the other program is done, the history opens with its chats
        assert len(h.chats()) == 3


def test_the_way_out_works_and_a_sound_history_opens(tmp_path):
    """Moved aside, a refused file stays as it was and andon starts a new history; the checks pass
    a sound file, one an older andon wrote (migrated), and one a crash left with its -wal."""
    path = history_path(tmp_path)
    drop_table("messages")(path)
    moved = path.rename(path.with_name("history.bad"))
    kept = hashlib.md5(moved.read_bytes()).hexdigest()
    with History(path) as h:
        assert h.chats() == []
    assert hashlib.md5(moved.read_bytes()).hexdigest() == kept
    old = tmp_path / "old.sqlite3"
    db = sqlite3.connect(old, isolation_level=None)
    for migration in MIGRATIONS[:3]:
        migration(db)
    db.execute("PRAGMA user_version = 3")
    db.execute("INSERT INTO chats (title, preset, created, updated) VALUES ('Old', 'balanced', 1, 2)")
    db.close()
    with History(old) as h:
        assert [c.title for c in h.chats()] == ["Old"]
    crashed = tmp_path / "crashed.sqlite3"
    good(crashed)
    script = (
        "import os, sys\nfrom pathlib import Path\nfrom andon.app.chat.history import History\n"
        "h = History(Path(sys.argv[1]))\nh.create_chat('after the crash', 'balanced')\nos._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(crashed)], check=True)
    os.remove(f"{crashed}-shm")  # the WAL file alone: its chat is still found
    with History(crashed) as h:
        assert "after the crash" in [c.title for c in h.chats()]
