"""The standard streams and Ctrl-C, however the user hands them to andon's commands.

- A stream the caller closed (`<&-`, `>&-`, `2>&-`) is put on /dev/null at once, so that no file
  andon opens takes its number (llama.cpp would log into the model file, a reply meant for
  standard output would land in the history). Reading a closed standard input is then one line
  (exit status 2), writing a closed standard output one line (exit status 1).
- Standard output that cannot be written (`>/dev/full`) is one line on standard error and exit
  status 1; one whose reader went away (`| head -c 10`) ends andon quietly, as Unix tools end
  (status 141: 128 + SIGPIPE). Standard error that cannot be written is given up silently.
- On a terminal, control characters in what andon writes (a model's reply, its thinking, a name
  read from a file) are written visibly (`control_text.visible`): a reply cannot retitle the
  terminal, set the clipboard or hide text. Piped or redirected, output is byte-exact.
- Ctrl-C: outside a reply nothing is lost by stopping at once, so the process ends there, quietly,
  with status 130, even inside llama.cpp's model load (where a KeyboardInterrupt would be lost in
  a ctypes callback). During a reply it stops the reply between tokens (`ReplyInterrupt`).

Only the standard library is imported here, so that the command line can take these in hand
before its heavy imports (numpy, llama.cpp); Ctrl-C is andon's even earlier (andon/_sigint.py).
"""

from __future__ import annotations

import errno
import io
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TextIO

from andon.app.control_text import visible

from andon._sigint import INTERRUPTED as INTERRUPTED  # 130
from andon._sigint import exit_interrupted as exit_interrupted  # Ctrl-C outside a reply: a quiet exit

BROKEN_PIPE = 128 + signal.SIGPIPE  # 141, as a shell reports `yes | head -1`'s yes


class StreamError(Exception):
    """A standard stream cannot be used; the message is the line to show, `status` the exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def one_line(text: str) -> str:
    """`text` as one line for standard error: its lines joined, control characters shown."""
    return visible(" ".join(line.strip() for line in text.strip().splitlines()))


def say(line: str) -> None:
    """Write one line of andon's on standard error; a standard error that cannot take it is left alone."""
    with suppress(OSError, ValueError, AttributeError):  # closed, full, or None
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


def silence(fd: int) -> None:
    """Put a standard stream that failed on /dev/null, so that nothing written later (Python's
    last flush at exit included) fails again."""
    with suppress(OSError):
        null = os.open(os.devnull, os.O_RDWR)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)


# --- streams the caller closed -------------------------------------------------------------------


def closed_streams() -> set[int]:
    """Which of standard input, output and error (0, 1, 2) the caller closed."""
    closed = set()
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            closed.add(fd)
    return closed


def reopen_closed() -> set[int]:
    """Put every closed standard stream on /dev/null; Python's objects for them say they are closed.

    Returns the streams that were closed.
    """
    closed = closed_streams()
    for fd in sorted(closed):
        silence(fd)  # the lowest free number is taken first: each lands on its own
    if 0 in closed:
        sys.stdin = ClosedInput()
    if 1 in closed:
        sys.stdout = ClosedOutput()
    if 2 in closed:
        sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 (the process's, to its end)
    return closed


class ClosedInput(io.TextIOBase):
    """Standard input the caller closed: reading it is a StreamError (exit status 2)."""

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> str:
        raise StreamError(
            "standard input is closed: there is nothing to read the prompt from "
            "(give the prompt as an argument, or pipe or redirect text into andon)",
            status=2,
        )

    readline = read  # type: ignore[assignment]

    @property
    def buffer(self) -> ClosedInput:  # read as bytes (presets/text.py decodes them) fails alike
        return self


class ClosedOutput(io.TextIOBase):
    """Standard output the caller closed: a write fails as on a closed file (Output says it in one
    line); flushing, as Python does at exit, has nothing to do."""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, "it is closed (redirect it to a file, or to /dev/null)")

    def flush(self) -> None:
        pass


# --- writing -------------------------------------------------------------------------------------


class Output(io.TextIOBase):
    """A standard stream as a command writes to it.

    On a terminal its text is written with control characters shown (`visible`); `style` writes
    andon's own escape sequences (dim thinking) as they are. A write that fails: on standard output
    (`quiet` false) a StreamError, or BrokenPipeError when the reader went away; on standard error
    (`quiet`) nothing more is written. Either way the stream goes to /dev/null, so Python's last
    flush at exit does not fail again.
    """

    def __init__(self, stream: TextIO, *, quiet: bool = False, name: str = "standard output") -> None:
        super().__init__()
        self.stream, self.quiet, self.name = stream, quiet, name
        self.terminal = _is_terminal(stream)
        self.failed = False

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self.terminal

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", None) or "utf-8"

    def write(self, text: str) -> int:
        self._do(lambda: self.stream.write(visible(text) if self.terminal else text))
        return len(text)

    def style(self, code: str) -> None:
        """Write andon's own escape sequence (e.g. dim, then plain) as it is."""
        self._do(lambda: self.stream.write(code))

    def flush(self) -> None:
        self._do(self.stream.flush)

    def _do(self, operation: Callable[[], Any]) -> None:
        if self.failed:
            return
        try:
            operation()
        except OSError as exc:
            self.failed = True
            with suppress(OSError, ValueError):
                silence(self.stream.fileno())
            if self.quiet:
                return
            if isinstance(exc, BrokenPipeError):
                raise
            raise StreamError(f"cannot write to {self.name}: {exc.strerror or exc}") from None


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (OSError, ValueError, AttributeError):
        return False


@contextmanager
def checked_stdout() -> Iterator[Output]:
    """While inside, sys.stdout is an Output (shown on a terminal, failed writes said)."""
    output = Output(sys.stdout)
    previous, sys.stdout = sys.stdout, output
    try:
        yield output
    finally:
        sys.stdout = previous


@contextmanager
def shown_stderr() -> Iterator[Output]:
    """While inside, sys.stderr is a quiet Output: what a command and llama.cpp's log (--verbose)
    write there shows control characters on a terminal, and a standard error that cannot be
    written is given up."""
    output = Output(sys.stderr, quiet=True, name="standard error")
    previous, sys.stderr = sys.stderr, output
    try:
        yield output
    finally:
        sys.stderr = previous


# --- Ctrl-C --------------------------------------------------------------------------------------


def _set_sigint(handler: Any) -> Any:
    """Install a SIGINT handler (main thread only: elsewhere Python refuses); returns the old one."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGINT, handler)


@contextmanager
def sigint(handler: Any) -> Iterator[None]:
    """While inside, SIGINT runs `handler`; the one before comes back after."""
    previous = _set_sigint(handler)
    try:
        yield
    finally:
        if previous is not None:
            _set_sigint(previous)


class ReplyInterrupt:
    """Ctrl-C during a reply: it stops between tokens and what was written is kept; a second
    Ctrl-C (the reply did not stop soon enough for the user) ends the process at once."""

    def __init__(self) -> None:
        self.flag = threading.Event()

    def __enter__(self) -> ReplyInterrupt:
        self._old = _set_sigint(self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._old is not None:
            _set_sigint(self._old)

    def _handle(self, signum: int, frame: object) -> None:
        if self.flag.is_set():
            exit_interrupted()
        self.flag.set()

    def __call__(self) -> bool:
        return self.flag.is_set()
