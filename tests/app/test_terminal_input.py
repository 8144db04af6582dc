"""The app and its terminal: input the terminal parser cannot read, a paste holding escape
sequences, a terminal closed while a reply is written, keys pressed faster than screens open.

The parts that need a terminal run the app as a process of its own in a pseudo-terminal (the
fake engine, or the embedded model for the `model` test); the rest go through Textual's Pilot.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import sqlite3
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from andon.app.tui.terminal import SHIELD, TerminalInput
from andon.app.tui.widgets.message_box import ChatInput, MessageBox, NoticeLine
from hypothesis import given
from hypothesis import strategies as st
from textual import events
from textual.screen import ModalScreen

from tests.app.test_tui import SIZE, make_app, send

ROOT = Path(__file__).parents[2]
PASTE_START, PASTE_END = b"\x1b[200~", b"\x1b[201~"
PASTED = "build log: \x1b[31mFAILED\x1b[0m at step 3\x0cpage 2\x1cgroup\x00end\tcol\r\nnext line"
STORED = PASTED.replace("\r\n", "\n")  # a pasted line break is a newline, as the box shows it
UNREADABLE = [  # input Textual's driver ended the app on, or typed out as text
    b"\xff",
    b"\xc0\x80",  # an overlong encoding
    b"\xed\xa0\x80",  # an encoded surrogate
    b"\x1b[999999999999A",
    b"\x1b[99999999999~",
    b"\x1b[1114112u",
    b"\x1b[97;1;99999999999u",
    b"\x1b[97:99999999999u",
    b"\x1b[1;5;999999999999~",
    b"\x1b[5x",  # a complete CSI sequence that is no key
    b"\x1b[" + b"9" * 3000 + b"A",  # longer than the parser looks
]


def keys_in(messages: list) -> list[str]:
    return [m.key for m in messages if isinstance(m, events.Key)]


# --- the terminal's bytes to events ---------------------------------------------------------


@pytest.mark.parametrize("junk", UNREADABLE, ids=lambda b: repr(b[:24]))
def test_input_the_parser_cannot_read_is_skipped_and_said_and_the_keys_around_it_stay(junk):
    skipped: list[str] = []
    terminal = TerminalInput(lambda what, why: skipped.append(f"{what} ({why})"))
    messages = terminal.feed(b"ab" + junk + b"cd")
    time.sleep(0.2)  # past the parser's wait for the rest of an escape sequence
    messages += terminal.idle()
    assert keys_in(messages) == ["a", "b", "c", "d"]
    assert skipped  # logged by the driver


text_with_controls = st.text(st.sampled_from(["a", "é", "€", "\x1b", "\x00", "\x07", "\x7f", "\x9b", SHIELD,
                                              "[", "2", "0", "1", "~", "\r", "\n", "\t"]))  # fmt: skip


@given(text_with_controls.filter(lambda t: "\x1b[201~" not in t), st.lists(st.integers(0, 400), max_size=8))
def test_a_paste_arrives_whole_and_in_order_however_the_terminal_splits_it(pasted, cuts):
    data = b"x" + PASTE_START + pasted.encode() + PASTE_END + b"y"
    terminal = TerminalInput(lambda what, why: None)
    messages = []
    for start, end in zip([0, *sorted(cuts)], [*sorted(cuts), len(data)], strict=True):
        messages += terminal.feed(data[start:end])
    kinds = [(type(m).__name__, m.text if isinstance(m, events.Paste) else m.key) for m in messages]
    assert kinds == [("Key", "x"), ("Paste", pasted), ("Key", "y")]


def test_a_paste_the_terminal_never_ends_is_ended_after_a_second():
    terminal = TerminalInput(lambda what, why: None)
    messages = terminal.feed(PASTE_START + b"half a paste\x1b[20")
    assert messages == []
    time.sleep(1.1)
    messages = terminal.idle() + terminal.feed(b"z")
    assert [getattr(m, "text", None) for m in messages[:1]] == ["half a paste\x1b[20"] and keys_in(messages) == ["z"]


# --- the message box and the conversation ---------------------------------------------------


def screen_text(app) -> str:
    return "\n".join("".join(s.text for s in app.screen._compositor.render_strips()[y]) for y in range(SIZE[1]))


async def test_a_pasted_escape_sequence_is_stored_and_sent_as_pasted_and_shown_not_obeyed(tmp_path):
    app, engines = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press(*"typed ")
        app.post_message(events.Paste(PASTED))
        await pilot.press("space", "m", "o", "r", "e")
        box = app.query_one(ChatInput)
        assert box.text == "typed " + STORED + " more"
        shown = screen_text(app)
        assert "␛[31mFAILED␛[0m at step 3␌page 2␜group␀end" in shown and "\x1b" not in shown
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        message = app.history.messages(app.session.chat.id)[0]
        assert message.content == "typed " + STORED + " more"  # stored as pasted
        assert engines[0].calls[0][0][-1]["content"] == message.content  # and sent so
        body = str(app.query(MessageBox).first().body.render())
        assert "^[[31mFAILED^[[0m at step 3^Lpage 2^\\group^@end" in body  # shown in the conversation
        assert "\x1b" not in screen_text(app)


async def test_typing_after_a_click_on_empty_space_goes_into_the_message_box(tmp_path):
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("h", "i")
        await pilot.click(offset=(60, 12))  # the conversation, below the welcome lines
        await pilot.press("space", "y", "o", "u")
        assert app.query_one(ChatInput).text == "hi you"


# --- keys faster than the screens --------------------------------------------------------------


@pytest.mark.parametrize(
    "keys",
    [("f4", "escape", "f4"), ("f4", "f4", "f4", "f4"), ("f3", "escape", "f3"), ("ctrl+o", "escape", "ctrl+o"),
     ("f5", "escape", "f5"), ("f6", "escape", "f6"), ("f7", "escape", "f7"), ("f2", "escape", "f2"),
     ("f8", "escape", "f8"), ("ctrl+b", "ctrl+b", "ctrl+b"), ("ctrl+f", "escape", "ctrl+f")],
    ids="-".join,
)  # fmt: skip
async def test_a_panel_or_dialog_opened_closed_and_opened_at_once_is_open_once_and_says_no_error(tmp_path, keys):
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "hello")  # something to copy (F7)
        for key in keys:  # all at once, as a terminal delivers keys typed quickly
            app.post_message(events.Key(key, None))
        for _ in range(5):
            await pilot.pause(0.05)
        errors = [str(n.render()) for n in app.query(NoticeLine) if "error" in str(n.render())]
        assert errors == []
        assert sum(isinstance(s, ModalScreen) for s in app.screen_stack) <= 1


# --- a terminal that goes away --------------------------------------------------------------

APP = """
import sys
from pathlib import Path
from andon.app.chat.history import History
from andon.app.tui.app import AndonApp
from andon.app.tui.run import run_to_end
from andon.presets.store import PresetStore
from tests.app.fakes import FakeEngine

base = Path(sys.argv[1])
app = AndonApp(lambda o: FakeEngine(o, script=["word "] * 5000, delay=0.01), base / "fake.gguf",
               history=History(base / "h.sqlite3"), store=PresetStore(base / "presets"))
sys.exit(run_to_end(app))
"""


class Terminal:
    """A pseudo-terminal (80x24) with a process in it; `controlling`: the process's controlling
    terminal, so that closing it sends SIGHUP as a terminal emulator's window does."""

    def __init__(self, argv: list[str], env: dict[str, str], controlling: bool = True) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))

        def take_terminal() -> None:
            if controlling:
                fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT,
                                     start_new_session=True, preexec_fn=take_terminal)  # fmt: skip
        os.close(slave)
        self.screen = bytearray()
        self.ended = False

    def read_until(self, done, timeout: float) -> bool:
        """Read what the process writes until `done()` or `timeout` seconds; whether it is done."""
        end = time.monotonic() + timeout
        while not done() and time.monotonic() < end and not (self.ended and self.proc.poll() is not None):
            if self.master >= 0 and not self.ended and select.select([self.master], [], [], 0.05)[0]:
                try:
                    self.screen.extend(os.read(self.master, 65536))
                except OSError:  # EIO: the process closed the terminal (it is ending)
                    self.ended = True
            else:
                time.sleep(0.02)
        return done()

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        """The terminal's window closes."""
        os.close(self.master)
        self.master = -1

    def end(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        if self.master >= 0:
            self.close()
        self.proc.wait()


def env_for(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "TERM": "xterm-256color", "XDG_STATE_HOME": str(tmp_path / "state"),
            "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_DATA_HOME": str(tmp_path / "data"),
            "XDG_CACHE_HOME": str(tmp_path / "cache")}  # fmt: skip


def rows(db_path: Path, sql: str) -> list[tuple]:
    if not db_path.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
            return db.execute(sql).fetchall()
    except sqlite3.OperationalError:  # being created
        return []


def log_text(tmp_path: Path) -> str:
    log = tmp_path / "state" / "andon" / "log" / "andon.log"
    return log.read_text() if log.exists() else ""


def test_input_the_parser_cannot_read_leaves_the_app_and_the_text_typed(tmp_path):
    """In a real terminal: bytes that are not UTF-8, huge numbers, a click and a size far off the
    screen, a paste with escape sequences written in pieces. The app stays; the message is exact."""
    db = tmp_path / "h.sqlite3"
    term = Terminal([sys.executable, "-c", APP, str(tmp_path)], env_for(tmp_path))
    try:
        assert term.read_until(lambda: b"fake-model" in term.screen, 60)
        term.write(b"typed ")
        for junk in [*UNREADABLE, b"\x1b[<0;99999999999;99999999999M", b"\x1b[48;999999;999999;1;1t"]:
            term.write(junk)
            time.sleep(0.05)
        paste = PASTE_START + PASTED.encode() + PASTE_END
        for piece in (paste[:9], paste[9:20], paste[20:]):  # split inside the markers and the text
            term.write(piece)
            time.sleep(0.05)
        term.write(b" more\r")
        assert term.read_until(lambda: rows(db, "SELECT 1 FROM messages WHERE role='assistant'"), 30)
        assert term.proc.poll() is None
        [(content,)] = rows(db, "SELECT content FROM messages WHERE role='user'")
        assert content == "typed " + STORED + " more"
        assert "terminal input skipped: '\\x1b[999999999999A'" in log_text(tmp_path)
    finally:
        term.end()


@pytest.mark.parametrize("how", ["window closed", "terminal gone without SIGHUP", "SIGTERM"])
def test_a_terminal_closed_or_a_signal_mid_reply_ends_the_app_at_once_with_the_reply_kept(tmp_path, how):
    """Closing the window (SIGHUP, EIO on read and write) or SIGTERM while a reply streams: the
    process is gone within 2 s, the reply saved as stopped, the history released."""
    db = tmp_path / "h.sqlite3"
    term = Terminal([sys.executable, "-c", APP, str(tmp_path)], env_for(tmp_path), controlling=how == "window closed")
    try:
        assert term.read_until(lambda: b"fake-model" in term.screen, 60)
        term.write(b"tell me a long story\r")
        assert term.read_until(lambda: rows(db, "SELECT 1 FROM messages WHERE length(content) > 40"), 30)
        start = time.monotonic()
        if how == "SIGTERM":
            term.proc.send_signal(signal.SIGTERM)
        else:
            term.close()
        assert term.read_until(lambda: term.proc.poll() is not None, 10)
        took = time.monotonic() - start
    finally:
        term.end()
    assert took < 2.0, f"{took:.2f} s"
    assert term.proc.returncode == 128 + (signal.SIGTERM if how == "SIGTERM" else signal.SIGHUP)
    [(status, content)] = rows(db, "SELECT status, content FROM messages WHERE role='assistant'")
    assert status == "stopped" and content.startswith("word word")
    assert rows(db, "SELECT * FROM writers") == []  # no chat is held for a later andon


@pytest.mark.model
def test_closing_the_terminal_mid_reply_with_the_real_model(tmp_path):
    """`python -m andon` with the embedded model: the window closes while the reply streams."""
    db = tmp_path / "data" / "andon" / "history.sqlite3"
    term = Terminal([sys.executable, "-m", "andon"], env_for(tmp_path))
    try:
        assert term.read_until(lambda: b"context 0/" in term.screen, 120)
        term.write(b"Write a very long story about a dragon and a knight.\r")
        sql = "SELECT 1 FROM messages WHERE role='assistant' AND length(content) > 40"
        assert term.read_until(lambda: rows(db, sql), 120)
        start = time.monotonic()
        term.close()
        assert term.read_until(lambda: term.proc.poll() is not None, 20)
        took = time.monotonic() - start
    finally:
        term.end()
    assert took < 2.0, f"{took:.2f} s"
    [(status, content)] = rows(db, "SELECT status, content FROM messages WHERE role='assistant'")
    assert status == "stopped" and len(content) > 40
    assert rows(db, "SELECT * FROM writers") == []


SHORT_REPLIES = APP.replace('script=["word "] * 5000, delay=0.01', 'script=["ok"]')


def test_ctrl_j_then_typing_keeps_the_order_typed_up_recalls_it_and_ctrl_d_quits_in_a_real_terminal(tmp_path):
    """Ctrl+J and the characters after it in one write (a fast typist, a terminal's buffer): the new
    line where it was typed. Up on the empty box recalls the message; Ctrl+D on the empty box quits."""
    db = tmp_path / "h.sqlite3"
    sent = "SELECT content FROM messages WHERE role='user' ORDER BY id"
    replies = "SELECT 1 FROM messages WHERE role='assistant' AND status != 'streaming'"
    term = Terminal([sys.executable, "-c", SHORT_REPLIES, str(tmp_path)], env_for(tmp_path))
    try:
        assert term.read_until(lambda: b"fake-model" in term.screen, 60)
        term.write(b"ab\x0acd\r")
        assert term.read_until(lambda: len(rows(db, replies)) == 1, 30)
        term.write(b"\x1b[A")  # Up
        time.sleep(0.3)  # the parser waits a moment for the rest of an escape sequence
        term.write(b"\r")
        assert term.read_until(lambda: len(rows(db, replies)) == 2, 30)
        assert rows(db, sent) == [("ab\ncd",), ("ab\ncd",)]
        term.write(b"\x04")  # Ctrl+D
        assert term.read_until(lambda: term.proc.poll() is not None, 10)
        assert term.proc.returncode == 0
    finally:
        term.end()
