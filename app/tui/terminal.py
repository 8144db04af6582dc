"""andon's terminal driver: Textual's LinuxDriver with input that cannot end the app, and an end
that does not wait for a terminal that is gone.

Textual's driver reads the terminal with a strict UTF-8 decoder and a parser that raises on a
number too large for it (`ESC[999999999999A`); either ended the app. Here a byte that is not
UTF-8 and a sequence the parser cannot read are skipped and written to andon's log, and the
parser is started afresh should it still fail. Inside a bracketed paste Textual's parser took an
escape character for the start of a key, so a paste holding escape sequences arrived as keys
first and the rest of the paste after them; `PasteGuard` hands the parser a paste's escape
characters (and NULs, which it drops) in a form it passes through, and the Paste event gets them
back, so the text pasted is the text received. A paste start that never ends is closed after
`PASTE_IDLE` seconds without input (the keys typed after it were the paste's text).

A terminal that is closed (end of input, EIO on read, EIO or EPIPE on write) posts TerminalGone
to the app, which saves the reply being written and exits; writes go nowhere from then on, so
Textual's writer thread never blocks the app's end (it waited on a full queue forever).
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import io
import os
import re
import selectors
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from andon.app.tui.ui_settings import log_line
from textual import events
from textual._xterm_parser import (
    _MAX_SEQUENCE_SEARCH_THRESHOLD,
    XTermParser,
    _re_mouse_event,
    _re_terminal_mode_response,
)
from textual.drivers.linux_driver import LinuxDriver
from textual.keys import Keys
from textual.message import Message

PASTE_START, PASTE_END = "\x1b[200~", "\x1b[201~"
PASTE_IDLE = 1.0  # seconds without input that close a paste the terminal never ended
LOGGED = 20  # input skipped is logged this many times per run, then once more to say so
SHIELD = "\uf8e0"  # private use: marks a character carried through the parser inside a paste
_SHIELDED = {"\x1b": "e", "\x00": "0", SHIELD: "s"}
_UNSHIELDED = {mark: char for char, mark in _SHIELDED.items()}
_SHIELD_RE = re.compile(re.escape(SHIELD) + "(.)", re.DOTALL)
# ECMA-48 control sequences: CSI, parameter bytes, intermediate bytes, a final byte. "ESC [ M"
# is left out: an X10 mouse report goes on with three bytes of any value.
CSI = re.compile(r"\x1b\[(?!M)[0-?]*[ -/]*[@-~]")
CSI_BODY = re.compile(r"\x1b\[[0-?]*[ -/]*")
CSI_MIDDLE = re.compile(r"[ -?]")
CSI_FINAL = re.compile(r"[@-~]")
NOT_UTF8 = re.compile("[\udc80-\udcff]+")  # bytes that were not UTF-8, as "surrogateescape" decodes them
GONE_ERRORS = (errno.EIO, errno.EPIPE, errno.ENXIO, errno.EBADF)


class TerminalGone(Message):
    """The terminal was closed: nothing can be read from it or written to it any more."""


def shield(text: str) -> str:
    """Paste text as the parser passes it through: no escape character, no NUL."""
    return "".join(SHIELD + _SHIELDED[c] if c in _SHIELDED else c for c in text)


def unshield(text: str) -> str:
    """`shield` undone: the text as it was pasted."""
    return _SHIELD_RE.sub(lambda m: _UNSHIELDED.get(m.group(1), m.group(1)), text)


def _held_back(text: str, marker: str) -> int:
    """How many characters at the end of `text` may be the start of `marker` (so wait for more)."""
    for size in range(min(len(marker) - 1, len(text)), 0, -1):
        if marker.startswith(text[-size:]):
            return size
    return 0


class PasteGuard:
    """Finds the bracketed pastes in the terminal's input and shields their text (see `shield`)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.pasting = False
        self._clock = clock
        self._recent = ""  # the last characters outside a paste: a start marker may be split
        self._held = ""  # the end of a paste's text that may be the start of the end marker
        self._last_input = clock()

    def feed(self, text: str) -> str:
        """The input for the parser: `text` with each paste's characters shielded."""
        self._last_input = self._clock()
        out: list[str] = []
        while text:
            if not self.pasting:
                seen = self._recent + text
                at = seen.find(PASTE_START)
                if at < 0:
                    self._recent = seen[-(len(PASTE_START) - 1) :]
                    out.append(text)
                    break
                cut = at + len(PASTE_START) - len(self._recent)
                out.append(text[:cut])
                text, self.pasting, self._recent = text[cut:], True, ""
            else:
                text, self._held = self._held + text, ""
                at = text.find(PASTE_END)
                if at < 0:
                    keep = _held_back(text, PASTE_END)
                    out.append(shield(text[: len(text) - keep]))
                    self._held = text[len(text) - keep :]
                    break
                out.append(shield(text[:at]) + PASTE_END)
                text, self.pasting = text[at + len(PASTE_END) :], False
        return "".join(out)

    def idle(self) -> str:
        """Input for the parser when none came: the end of a paste the terminal never ended."""
        if not self.pasting or self._clock() - self._last_input < PASTE_IDLE:
            return ""
        held, self._held, self.pasting = self._held, "", False
        return shield(held) + PASTE_END


class ForgivingParser(XTermParser):
    """Textual's parser, where a control sequence it cannot read is skipped (and reported) rather
    than raising (a number too large for chr()) or being typed as text: a complete CSI sequence
    that is no key, mouse event or report, and one longer than the parser looks (its rest too).
    """

    def __init__(self, unreadable: Callable[[str, object], None]) -> None:
        self._unreadable = unreadable
        self._rest_of_csi = False  # skipping what is left of a CSI sequence too long to read
        super().__init__()

    def _sequence_to_key_events(self, sequence: str, alt: bool = False) -> Iterable[events.Key]:
        if self._rest_of_csi:
            self._rest_of_csi = CSI_MIDDLE.fullmatch(sequence) is not None
            if self._rest_of_csi or CSI_FINAL.fullmatch(sequence):
                return [_ignored(sequence)]
        try:
            keys = list(super()._sequence_to_key_events(sequence, alt))
        except (ValueError, OverflowError) as exc:  # chr() of a huge or negative number
            self._unreadable(sequence, exc)
            return [_ignored(sequence)]
        if keys or not sequence.startswith("\x1b["):
            return keys
        if CSI.fullmatch(sequence) and not _report(sequence):
            self._unreadable(sequence, "no key, mouse event or report")
            return [_ignored(sequence)]
        if len(sequence) >= _MAX_SEQUENCE_SEARCH_THRESHOLD and CSI_BODY.fullmatch(sequence):
            self._unreadable(sequence + "…", "too long")
            self._rest_of_csi = True
            return [_ignored(sequence)]
        return keys

    def parse_mouse_code(self, code: str) -> Message | None:
        try:
            return super().parse_mouse_code(code)
        except (ValueError, OverflowError, ArithmeticError) as exc:
            self._unreadable(code, exc)
            return None


def _report(sequence: str) -> bool:
    """Whether a CSI sequence is one the parser reads after the keys: a mouse event, a mode report."""
    return bool(_re_mouse_event.match(sequence) or _re_terminal_mode_response.match(sequence))


def _ignored(sequence: str) -> events.Key:
    """A key event the parser drops (Textual's own way to ignore a sequence)."""
    return events.Key(Keys.Ignore, sequence)


class TerminalInput:
    """The terminal's bytes to Textual's events, as the driver's input thread reads them: bytes
    that are not UTF-8 and sequences the parser cannot read are skipped and reported, a paste
    arrives as pasted, and a parser that still fails is started afresh. Never raises."""

    def __init__(self, skipped: Callable[[str, object], None]) -> None:
        self._skipped = skipped
        # invalid bytes decode to lone surrogates (U+DC80-U+DCFF), found and dropped in `feed`
        self._decode = codecs.getincrementaldecoder("utf-8")("surrogateescape").decode
        self._paste = PasteGuard()
        self._parser = ForgivingParser(skipped)

    def feed(self, data: bytes) -> list[Message]:
        """The events in `data`, the bytes read."""
        text = self._decode(data)
        for run in NOT_UTF8.findall(text):
            self._skipped(bytes(ord(c) - 0xDC00 for c in run).hex(" "), "not UTF-8")
        return self._parse(self._paste.feed(NOT_UTF8.sub("", text)), tick=False)

    def idle(self) -> list[Message]:
        """The events that waited for more input that did not come (Escape alone, a paste never ended)."""
        return self._parse(self._paste.idle(), tick=True)

    def _parse(self, text: str, tick: bool) -> list[Message]:
        messages: list[Message] = []
        try:
            messages += self._parser.feed(text) if text else ()
            messages += self._parser.tick() if tick else ()
        except Exception as exc:
            self._skipped(text, f"{type(exc).__name__}: {exc}; the parser starts afresh")
            self._parser = ForgivingParser(self._skipped)
        return [events.Paste(unshield(m.text)) if isinstance(m, events.Paste) else m for m in messages]


class TerminalOutput:
    """The terminal as Textual's writer thread writes to it; once it is gone, writes go nowhere."""

    def __init__(self, file: TextIO | None, gone: Callable[[], None]) -> None:
        self._file = file or io.StringIO()
        self._gone = gone
        self.closed = file is None

    def write(self, text: str) -> int:
        if not self.closed:
            self._call(self._file.write, text)
        return len(text)

    def flush(self) -> None:
        if not self.closed:
            self._call(self._file.flush)

    def fileno(self) -> int:
        return self._file.fileno()

    def _call(self, method: Callable[..., Any], *args: Any) -> None:
        try:
            method(*args)
        except (OSError, ValueError) as exc:  # EIO / EPIPE: the terminal was closed
            if isinstance(exc, OSError) and exc.errno not in GONE_ERRORS:
                log_line(f"writing to the terminal failed: {exc}")
            self.closed = True
            self._gone()


class AndonDriver(LinuxDriver):
    """LinuxDriver with the input loop above and output that survives a closed terminal."""

    def __init__(self, app: Any, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._gone = threading.Event()
        self._gone_lock = threading.Lock()
        self._skipped = 0
        self._output = TerminalOutput(self._file, self._terminal_gone)
        self._file = self._output  # type: ignore[assignment] # Textual's WriterThread writes to it

    # --- the end of the terminal --------------------------------------------------------------

    def _terminal_gone(self) -> None:
        """Said once, from whichever thread saw it: the app saves what it writes and exits."""
        with self._gone_lock:
            if self._gone.is_set():
                return
            self._gone.set()
        self._output.closed = True
        log_line("the terminal was closed; andon saves the reply being written and exits")
        with contextlib.suppress(RuntimeError):  # the app's loop has ended already: nothing to tell
            self.send_message(TerminalGone())

    def _sigcont_application(self, *args: Any) -> None:
        """SIGCONT resumes the app only after Ctrl+Z suspended it. Textual's driver restarted
        application mode on any SIGCONT: a closed terminal sends one with its SIGHUP, and the
        restarted input thread kept an app that had ended from exiting."""
        if self._must_signal_resume and not self._gone.is_set():
            super()._sigcont_application(*args)

    # --- input ------------------------------------------------------------------------------

    def _skip(self, what: str, why: object) -> None:
        """Input that cannot be read: a line in andon's log (the first LOGGED of a run)."""
        self._skipped += 1
        if self._skipped <= LOGGED:
            log_line(f"terminal input skipped: {what!r} ({why})")
        if self._skipped == LOGGED:
            log_line("further terminal input skipped is not logged")

    def run_input_thread(self) -> None:
        """Read the terminal until the app stops or the terminal is gone; never raises."""
        terminal = TerminalInput(self._skip)
        reading = True
        with selectors.DefaultSelector() as selector:
            selector.register(self.fileno, selectors.EVENT_READ)
            while not self.exit_event.is_set():
                if not reading or not selector.select(0.1):
                    self._send(terminal.idle())
                    if not reading:
                        self.exit_event.wait(0.1)
                    continue
                data = self._read()
                if not data and self.input_tty:  # the terminal was closed: nothing more will come
                    self._terminal_gone()
                    return
                if not data:  # a pipe at its end: the keys that were in it are read
                    reading = False
                    selector.unregister(self.fileno)
                    continue
                self._send(terminal.feed(data))

    def _read(self) -> bytes:
        """What the terminal sent; b"" when it is gone (EIO after it was closed) or at its end."""
        try:
            return os.read(self.fileno, 4096)
        except OSError as exc:
            if exc.errno not in GONE_ERRORS:
                log_line(f"reading the terminal failed: {exc}")
            return b""

    def _send(self, messages: list[Message]) -> None:
        for message in messages:
            self.process_message(message)

    def process_message(self, message: Message) -> None:
        """What the input says of the screen is checked: a size is the one the system reports, a
        mouse event off the screen is skipped."""
        if isinstance(message, events.Resize):  # in-band (from the input): any size could be typed
            size = self._get_terminal_size()
            if (message.size.width, message.size.height) != size:
                message = events.Resize.from_dimensions(size, None)  # the size the system reports
        elif isinstance(message, events.MouseEvent):
            width, height = self._get_terminal_size()
            if not (0 <= message.screen_x < width and 0 <= message.screen_y < height):
                self._skip(f"mouse at {message.screen_x:g},{message.screen_y:g}", "off the screen")
                return
        super().process_message(message)
