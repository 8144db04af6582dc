"""The chat history under faults a user meets: old and future files, damage, a busy file, two andons."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from andon.app.chat.history import MIGRATIONS, ChatOwnedError, History, HistoryBusyError, HistoryError
from andon.app.chat.history_db import _m1
from andon.app.chat.session import ChatSession
from andon.presets.store import PresetStore

FAST = 0.1  # busy timeout for tests: a busy history fails in about a second instead of five


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@contextmanager
def holder(path: Path, *statements: str) -> Iterator[subprocess.Popen]:
    """Another program that opens the history, runs `statements` and keeps its lock until the end."""
    script = (
        "import sqlite3, sys, time\n"
        f"db = sqlite3.connect({str(path)!r}, isolation_level=None)\n"
        f"for s in {list(statements)!r}: db.execute(s).fetchall()\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def filled(path: Path, chats: int = 40) -> None:
    with History(path) as h:
        for i in range(chats):
            chat = h.create_chat(f"chat {i}", "balanced")
            h.add_message(chat.id, "user", f"question {i} " * 50)
            h.add_message(chat.id, "assistant", f"answer {i} " * 50)


# --- files andon cannot use are reported and left byte for byte as they were ----------------------


def test_a_version_1_history_is_migrated_and_keeps_its_chats(tmp_path):
    path = tmp_path / "history.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    _m1(db)
    db.execute("PRAGMA user_version = 1")
    db.execute("INSERT INTO chats VALUES (1, 'Old chat', 'creative', 'm.gguf', 'Be brief.', 10.0, 20.0)")
    db.execute("INSERT INTO messages VALUES (1, 1, 'user', 'hello', 'complete', 11.0)")
    db.execute("INSERT INTO messages VALUES (2, 1, 'assistant', 'hi th', 'streaming', 12.0)")
    db.close()
    with History(path) as h:
        assert h.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        [chat] = h.chats()
        assert (chat.title, chat.preset, chat.model, chat.system, chat.parameters) == (
            "Old chat", "creative", "m.gguf", "Be brief.", {},
        )  # fmt: skip
        assert h.recover_interrupted() == 1  # the reply an old andon left streaming
        assert [(m.role, m.content, m.status, m.stats) for m in h.messages(1)] == [
            ("user", "hello", "complete", {}),
            ("assistant", "hi th", "stopped", {}),
        ]
        assert h.claim_chat(1)
        h.add_message(1, "user", "again")
    with History(path) as h:
        assert [m.content for m in h.messages(1)] == ["hello", "hi th", "again"]


def test_a_history_from_a_newer_andon_is_refused_untouched(tmp_path):
    path = tmp_path / "history.sqlite3"
    filled(path, 2)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode = DELETE")  # as another tool may leave it
        db.execute("PRAGMA user_version = 999")
    before = md5(path)
    with pytest.raises(HistoryError) as err:
        History(path)
    text = str(err.value)
    assert str(path) in text and "newer andon" in text and "999" in text and "move it aside" in text
    assert "\n" not in text
    assert md5(path) == before


def test_a_damaged_history_is_refused_untouched(tmp_path):
    path = tmp_path / "history.sqlite3"
    filled(path)
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 8 * page
    data[5 * page : 6 * page] = bytes(range(256)) * (page // 256)  # a page overwritten
    path.write_bytes(bytes(data))
    before = md5(path)
    with pytest.raises(HistoryError) as err:
        History(path)
    text = str(err.value)
    assert str(path) in text and "damaged" in text and "has not changed it" in text and "move it aside" in text
    assert md5(path) == before
    moved = path.rename(tmp_path / "history.bad")
    with History(path) as h:  # the way out that the line gives works
        assert h.chats() == []
    assert md5(moved) == before


def test_a_file_that_is_not_a_database(tmp_path):
    path = tmp_path / "history.sqlite3"
    path.write_bytes(b"SQLite format 2\x00" + b"x" * 5000)
    with pytest.raises(HistoryError, match="is not an SQLite database"):
        History(path)
    assert path.read_bytes() == b"SQLite format 2\x00" + b"x" * 5000


def test_a_data_folder_that_is_a_file(tmp_path):
    (tmp_path / "data").write_text("a file")
    with pytest.raises(HistoryError, match="cannot create the folder of the chat history"):
        History(tmp_path / "data" / "andon" / "history.sqlite3")
    assert (tmp_path / "data").read_text() == "a file"


# --- a busy history: wait, retry, then one line; what the user typed is never half-saved -----------


def test_another_program_writing_makes_a_write_fail_cleanly_and_reads_go_on(tmp_path):
    path = tmp_path / "history.sqlite3"
    store = PresetStore(tmp_path / "presets")
    history = History(path, busy_timeout=FAST)
    chat = history.create_chat("New chat", "balanced")
    session = ChatSession(history, chat, store)
    with holder(path, "BEGIN EXCLUSIVE"):
        start = time.monotonic()
        with pytest.raises(HistoryBusyError) as err:
            session.add_user("my carefully typed question")
        waited = time.monotonic() - start
        assert str(path) in str(err.value) and "busy" in str(err.value)
        assert 0.3 < waited < 5  # it waited and retried, and gave up in bounded time
        assert session.messages == [] and session.chat.title == "New chat"
        with pytest.raises(HistoryBusyError):
            session.set_parameters({"temperature": 0.3})
        assert session.params.temperature != 0.3 and session.changes == {}
        assert [c.title for c in history.chats()] == ["New chat"]  # reading still works
    session.add_user("my carefully typed question")  # once the other program is done
    session.set_parameters({"temperature": 0.3})
    history.close()
    with History(path) as again:
        [stored] = again.messages(chat.id)
        assert stored.content == "my carefully typed question"
        assert again.chat(chat.id).title == "my carefully typed question"
        assert again.chat(chat.id).parameters == {"temperature": 0.3}


def test_a_history_held_exclusively_at_start_is_one_clear_line(tmp_path):
    path = tmp_path / "history.sqlite3"
    filled(path, 1)
    before = md5(path)
    exclusive = ("PRAGMA locking_mode = EXCLUSIVE", "BEGIN EXCLUSIVE", "SELECT count(*) FROM chats")
    with holder(path, *exclusive), pytest.raises(HistoryBusyError) as err:
        History(path, busy_timeout=FAST)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert md5(path) == before


def test_a_reply_being_written_when_the_file_gets_busy(tmp_path):
    path = tmp_path / "history.sqlite3"
    history = History(path, busy_timeout=FAST)
    chat = history.create_chat("c", "balanced")
    reply = history.add_message(chat.id, "assistant", "", status="streaming")
    with holder(path, "BEGIN EXCLUSIVE"), pytest.raises(HistoryBusyError):
        history.update_message(reply.id, "partial text", "complete")
    history.update_message(reply.id, "partial text and the rest", "complete")
    assert history.messages(chat.id)[0].content == "partial text and the rest"


# --- two andons on one history: each writes only its own chats -------------------------------------


def test_a_chat_has_one_writer_at_a_time(tmp_path):
    path = tmp_path / "history.sqlite3"
    first, second = History(path), History(path)
    chat = first.create_chat("mine", "balanced")
    first.add_message(chat.id, "user", "hello")
    reply = first.add_message(chat.id, "assistant", "Hel", status="streaming")
    assert second.recover_interrupted() == 0  # the first andon is alive and still writing it
    assert second.messages(chat.id)[1].status == "streaming"
    assert second.claim_chat(chat.id) is False
    assert second.writer_pid(chat.id) == os.getpid()
    with pytest.raises(ChatOwnedError, match="another andon"):
        second.add_message(chat.id, "user", "interleaved")
    with pytest.raises(ChatOwnedError):
        second.delete_chat(chat.id)
    first.update_message(reply.id, "Hello!", "complete")
    assert [m.content for m in second.messages(chat.id)] == ["hello", "Hello!"]
    own = second.create_chat("theirs", "balanced")
    assert first.claim_chat(own.id) is False
    first.release_chat(chat.id)
    assert second.claim_chat(chat.id) is True and first.claim_chat(chat.id) is False
    second.close()
    assert first.claim_chat(chat.id) is True and first.claim_chat(own.id) is True
    first.close()


def test_closing_keeps_a_reply_it_was_writing_as_stopped(tmp_path):
    path = tmp_path / "history.sqlite3"
    with History(path) as h:
        chat = h.create_chat("c", "balanced")
        h.add_message(chat.id, "assistant", "half a rep", status="streaming")
    with History(path) as h:
        assert [(m.content, m.status) for m in h.messages(chat.id)] == [("half a rep", "stopped")]


WRITER = """
import sys, time
from pathlib import Path
from andon.app.chat.history import History
h = History(Path(sys.argv[1]))
chat = h.create_chat("killed", "balanced")
h.add_message(chat.id, "user", "tell me")
h.add_message(chat.id, "assistant", "Once upon", status="streaming")
print(chat.id, flush=True)
time.sleep(60)
"""


def test_a_killed_andon_s_reply_is_stopped_and_its_chat_can_be_taken(tmp_path):
    path = tmp_path / "history.sqlite3"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    chat_id = int(proc.stdout.readline())
    with History(path) as h:
        assert h.recover_interrupted() == 0 and h.claim_chat(chat_id) is False  # alive
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert h.recover_interrupted() == 1
        stored = [(m.content, m.status) for m in h.messages(chat_id)]
        assert stored == [("tell me", "complete"), ("Once upon", "stopped")]
        assert h.claim_chat(chat_id) is True
        h.add_message(chat_id, "user", "go on")


def test_a_reused_pid_does_not_keep_a_dead_andon_alive(tmp_path):
    """A writer recorded with this very pid but another start time is a process that has ended."""
    path = tmp_path / "history.sqlite3"
    with History(path) as h:
        chat = h.create_chat("c", "balanced")
        h.add_message(chat.id, "assistant", "cut", status="streaming")
        started = h.process.started
        if not started:
            pytest.skip("this system does not report process start times")
        h.db.execute("INSERT INTO writers VALUES ('gone', ?, ?, ?, 0)", (os.getpid(), started + "0", h.process.host))
        h.db.execute("UPDATE chats SET writer='gone'")
        h.db.execute("UPDATE messages SET writer='gone'")
    with History(path) as h:
        assert h.claim_chat(chat.id) is True
        assert h.recover_interrupted() == 1
        assert h.db.execute("SELECT count(*) FROM writers WHERE instance='gone'").fetchone()[0] == 0


def test_stats_and_parameters_round_trip(tmp_path):
    with History(tmp_path / "h.sqlite3") as h:
        chat = h.create_chat("c", "balanced")
        chat.parameters = {"temperature": 0.5}
        h.update_chat(chat)
        m = h.add_message(chat.id, "assistant", "", status="streaming")
        h.update_message(m.id, "done", "complete", {"tokens": 3, "finish_reason": "stop"})
        assert h.chat(chat.id).parameters == {"temperature": 0.5}
        assert h.messages(chat.id)[0].stats == {"tokens": 3, "finish_reason": "stop"}
        stored = h.db.execute("SELECT stats FROM messages").fetchone()[0]
        assert json.loads(stored)["tokens"] == 3


def test_a_version_4_history_gains_the_thinking_of_replies_and_keeps_its_messages(tmp_path):
    """Schema 5 keeps a reasoning model's thinking apart from the reply's content."""
    path = tmp_path / "h.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    for migration in MIGRATIONS[:4]:
        migration(db)
    db.execute("PRAGMA user_version = 4")
    db.execute("INSERT INTO chats (id, title, preset, created, updated) VALUES (1, 'Old', 'balanced', 1.0, 2.0)")
    db.execute("INSERT INTO messages (chat_id, role, content, created) VALUES (1, 'assistant', 'It is 4.', 3.0)")
    db.close()
    with History(path) as h:
        assert h.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) == 7
        [old] = h.messages(1)
        assert (old.content, old.thinking) == ("It is 4.", "")
        m = h.add_message(1, "assistant", "", status="streaming")
        h.update_message(m.id, "Tokyo.", "complete", {"tokens": 2}, thinking="Japan's capital.")
        h.update_message(m.id, "Tokyo!")  # a later save of the content alone keeps the thinking
    with History(path) as h:
        new = h.messages(1)[1]
        assert (new.content, new.thinking, new.stats) == ("Tokyo!", "Japan's capital.", {"tokens": 2})
        assert "<summary>Thinking</summary>\n\nJapan's capital.\n\n</details>\n\nTokyo!" in h.to_markdown(1)


def test_a_copy_of_a_chat_keeps_its_settings_and_messages_whole(tmp_path):
    """/clear keeps the messages in a copy: made at once, with the chat's settings, the replies'
    stats and thinking, a reply still being written kept as stopped, and owned by no andon."""
    history = History(tmp_path / "h.sqlite3")
    chat = history.create_chat("Cats", "creative", "alpha", "Be brief.")
    history.update_chat(replace(chat, parameters={"temperature": 0.3}))
    history.add_message(chat.id, "user", "Why do cats purr?")
    reply = history.add_message(chat.id, "assistant", "Contentment", "streaming")
    history.update_message(reply.id, "Contentment", "streaming", {"completion_tokens": 3}, "They are calm.")
    copy = history.copy_chat(chat.id, "Cats (before /clear)")
    assert copy.title == "Cats (before /clear)"
    assert (copy.preset, copy.model, copy.system) == ("creative", "alpha", "Be brief.")
    assert copy.parameters == {"temperature": 0.3}
    kept = history.messages(copy.id)
    assert [(m.role, m.content, m.status) for m in kept] == [
        ("user", "Why do cats purr?", "complete"), ("assistant", "Contentment", "stopped")]  # fmt: skip
    assert (kept[1].stats, kept[1].thinking) == ({"completion_tokens": 3}, "They are calm.")
    assert History(tmp_path / "h.sqlite3").claim_chat(copy.id)  # another andon may write it


# --- a chat two andons write in turn: each action reads the chat as stored at that moment ---------


def two_andons(tmp_path: Path) -> tuple[History, ChatSession, ChatSession]:
    """The first andon's session on a chat, and a second andon's session that read it early on."""
    path, store = tmp_path / "h.sqlite3", PresetStore(tmp_path / "presets")
    first = History(path)
    chat = first.create_chat("Colours", "balanced")
    mine = ChatSession(first, chat, store)
    mine.add_user("Name a colour.")
    reply = mine.start_reply()
    first.update_message(reply.id, "Blue.", "complete")
    second = History(path)
    theirs = ChatSession(second, second.chat(chat.id), store)  # the second andon loads the chat now
    mine.add_user("And a fruit?")
    first.add_message(chat.id, "assistant", "A pear.")
    first.release_chat(chat.id)  # the first andon moves to another chat
    return first, mine, theirs


def prompt_of(session: ChatSession) -> list[str]:
    return [m["content"] for m in session.engine_messages() if m["role"] != "system"]


def test_a_send_from_the_second_andon_answers_the_chat_as_stored(tmp_path):
    first, _, theirs = two_andons(tmp_path)
    assert prompt_of(theirs) == ["Name a colour.", "Blue."]  # what it read when it opened the chat
    synced = theirs.synced
    theirs.add_user("And a tree?")
    assert prompt_of(theirs) == ["Name a colour.", "Blue.", "And a fruit?", "A pear.", "And a tree?"]
    assert theirs.synced == synced + 1  # the view redraws the chat as stored
    stored = first.messages(theirs.chat.id)
    assert [(m.id, m.content) for m in theirs.messages] == [(m.id, m.content) for m in stored]


def test_a_regenerate_from_the_second_andon_takes_the_reply_as_stored(tmp_path):
    _, _, theirs = two_andons(tmp_path)
    last = theirs.reply_to_regenerate()
    assert last is not None and last.content == "A pear."  # not "Blue.", the last reply it had read
    theirs.truncate_from(last)
    assert prompt_of(theirs) == ["Name a colour.", "Blue.", "And a fruit?"]


def test_clear_copies_and_counts_the_chat_as_stored(tmp_path):
    from andon.app.chat.slash import run_slash

    first, _, theirs = two_andons(tmp_path)
    result = run_slash(theirs, "/clear")
    assert result.ok and result.action == "cleared"
    copy = next(c for c in first.chats() if c.title == "Colours (before /clear)")
    kept = [m.content for m in first.messages(copy.id)]
    assert kept == ["Name a colour.", "Blue.", "And a fruit?", "A pear."]
    assert f"Cleared session context ({len(kept)} messages)" in result.text
    assert first.messages(theirs.chat.id) == [] and theirs.messages == []


def test_clear_of_a_chat_another_andon_writes_copies_nothing(tmp_path):
    from andon.app.chat.slash import run_slash

    _, mine, _ = two_andons(tmp_path)
    mine.history.claim_chat(mine.chat.id)
    other = ChatSession(History(tmp_path / "h.sqlite3"), mine.chat, mine.store)
    result = run_slash(other, "/clear")
    assert not result.ok and "another andon" in result.text and "\n" not in result.text
    assert [c.title for c in mine.history.chats()] == ["Colours"]  # no copy was made
    assert len(mine.history.messages(mine.chat.id)) == 4 and len(other.messages) == 4


def test_a_reply_whose_end_was_not_saved_is_kept_as_this_andon_saw_it(tmp_path):
    """A reply that ended while the history was busy is "streaming" in the file: the next send keeps
    the text and status this andon saw rather than the older stored ones."""
    path = tmp_path / "h.sqlite3"
    history = History(path, busy_timeout=FAST)
    session = ChatSession(history, history.create_chat("New chat", "balanced"), PresetStore(tmp_path / "p"))
    session.add_user("Tell me a story.")
    reply = session.start_reply()
    history.update_message(reply.id, "Once", thinking="")
    with holder(path, "BEGIN EXCLUSIVE"), pytest.raises(HistoryBusyError):
        history.update_message(reply.id, "Once upon a time.", "error")
    reply.content, reply.status = "Once upon a time.", "error"  # as the reply writer keeps it
    session.add_user("Go on.")
    assert prompt_of(session) == ["Tell me a story.", "Once upon a time.", "Go on."]
    assert session.messages[1] is reply


# --- a reply's versions (regenerate) and the chat last viewed: schemas 6 and 7 ----------------------


def version_5_history(path: Path) -> None:
    """A history as andon wrote it before replies had versions: one chat, a question and its answer."""
    db = sqlite3.connect(path, isolation_level=None)
    for migration in MIGRATIONS[:5]:
        migration(db)
    db.execute("PRAGMA user_version = 5")
    db.execute("INSERT INTO chats (id, title, preset, created, updated) VALUES (1, 'Old', 'balanced', 1.0, 2.0)")
    db.execute("INSERT INTO messages (chat_id, role, content, created) VALUES (1, 'user', 'Name a colour.', 3.0)")
    db.execute("INSERT INTO messages (chat_id, role, content, created) VALUES (1, 'assistant', 'Blue.', 4.0)")
    db.close()


def test_a_version_5_history_keeps_a_regenerated_reply_s_earlier_versions(tmp_path):
    """Regenerate keeps the reply written before as a version; the one shown is the one the next
    turn is sent with; the versions survive a reopen, a copy (/clear), and go with their message."""
    path = tmp_path / "h.sqlite3"
    version_5_history(path)
    with History(path) as h:
        assert h.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) == 7
        user, blue = h.messages(1)
        assert (blue.content, blue.version, blue.versions) == ("Blue.", 1, 1)
        session = ChatSession(h, h.chat(1), PresetStore(tmp_path / "presets"))
        reply = session.reply_to_regenerate()
        session.new_version(reply)
        assert (reply.content, reply.status, reply.version, reply.versions) == ("", "streaming", 2, 2)
        assert prompt_of(session) == ["Name a colour."]  # the reply being written is not sent
        h.update_message(reply.id, "Red.", "complete", {"completion_tokens": 2})
    with History(path) as h:
        session = ChatSession(h, h.chat(1), PresetStore(tmp_path / "presets"))
        reply = session.messages[-1]
        assert (reply.content, reply.version, reply.versions) == ("Red.", 2, 2)
        session.show_version(reply, 1)  # back to the first: the conversation goes on from "Blue."
        assert (reply.content, reply.stats, reply.version, reply.versions) == ("Blue.", {}, 1, 2)
        assert prompt_of(session) == ["Name a colour.", "Blue."]
        session.show_version(reply, 2)
        assert (reply.content, reply.stats, reply.version) == ("Red.", {"completion_tokens": 2}, 2)
        assert "## Assistant *(version 2 of 2)*" in h.to_markdown(1)
        copy = h.copy_chat(1, "Old (before /clear)")
        kept = h.messages(copy.id)[-1]
        assert (kept.content, kept.version, kept.versions) == ("Red.", 2, 2)
        h.show_version(kept.id, 1)
        assert h.messages(copy.id)[-1].content == "Blue." and h.messages(1)[-1].content == "Red."
        h.delete_messages_from(1, user.id)
        assert h.db.execute("SELECT count(*) FROM versions").fetchone()[0] == 1  # the copy's "Red." only


def test_a_regenerated_reply_that_wrote_nothing_is_not_kept_as_a_version(tmp_path):
    with History(tmp_path / "h.sqlite3") as h:
        chat = h.create_chat("Colours", "balanced")
        h.add_message(chat.id, "user", "Name a colour.")
        reply = h.add_message(chat.id, "assistant", "Blue.")
        assert h.new_version(reply.id).version == 2
        h.update_message(reply.id, "", "error")  # the engine failed before any text
        again = h.new_version(reply.id)
        assert (again.version, again.versions) == (2, 2)  # in the failed one's place
        h.update_message(reply.id, "Green.", "complete")
        assert [h.show_version(reply.id, n).content for n in (1, 2)] == ["Blue.", "Green."]


def test_another_andon_s_chat_gets_no_new_version(tmp_path):
    path = tmp_path / "h.sqlite3"
    first, second = History(path), History(path)
    chat = first.create_chat("Colours", "balanced")
    reply = first.add_message(chat.id, "assistant", "Blue.")
    with pytest.raises(ChatOwnedError):
        second.new_version(reply.id)
    with pytest.raises(ChatOwnedError):
        second.reopen_reply(reply.id)
    assert [(m.content, m.status, m.versions) for m in first.messages(chat.id)] == [("Blue.", "complete", 1)]


def test_the_chat_last_viewed_comes_first_then_the_newest(tmp_path):
    path = tmp_path / "h.sqlite3"
    version_5_history(path)  # its chat was never viewed under schema 7
    with History(path) as h:
        older = h.create_chat("Older", "balanced")
        newer = h.create_chat("Newer", "balanced")
        assert [c.title for c in h.last_viewed()] == ["Newer", "Older", "Old"]
        h.mark_viewed(1)
        h.mark_viewed(older.id)
        assert [c.id for c in h.last_viewed()] == [older.id, 1, newer.id]
        assert [c.id for c in h.chats()] == [newer.id, older.id, 1]  # the list's order is unchanged
