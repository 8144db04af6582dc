"""Unexpected errors in the app: one line on screen, the traceback in a log file, the app stays up.

Textual closes an app on any exception that a handler or a worker lets through. So every handler
and every worker function of andon's widgets is wrapped with `guarded` (a test checks that none is
missed; workers also run with `exit_on_error=False`). A caught exception is posted to the app as
`Unexpected` (post_message is thread-safe), and the app shows `record(error)`'s line.
"""

from __future__ import annotations

import functools
import inspect
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import platformdirs
from andon.presets.paths import APP
from textual.dom import DOMNode
from textual.message import Message

F = TypeVar("F", bound=Callable[..., Any])
GUARD_MARK = "__andon_guarded__"


def log_file() -> Path:
    """Where tracebacks go: andon.log in platformdirs' user log folder (XDG_STATE_HOME on Linux)."""
    return Path(platformdirs.user_log_dir(APP, appauthor=False)) / "andon.log"


def record(error: BaseException) -> str:
    """Append the error's traceback to the log file; return the one line to show the user."""
    path = log_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as log:
            log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
            log.write("".join(traceback.format_exception(error)))
        where = f"details in {path}"
    except OSError as exc:
        where = f"the log {path} could not be written: {exc.strerror or exc}"
    return f"unexpected error: {type(error).__name__}: {error} ({where}); andon goes on"


def log_lines(title: str, lines: list[str]) -> str:
    """Append `lines` under `title` to the log file; return where they are, for the line shown."""
    path = log_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as log:
            log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {title}\n")
            log.writelines(f"{line}\n" for line in lines)
    except OSError as exc:
        return f"the log {path} could not be written: {exc.strerror or exc}"
    return f"its last output is in {path}"


@dataclass
class Unexpected(Message):
    """An exception that a handler or worker did not expect; the app shows it in one line."""

    error: BaseException


def report(node: DOMNode, error: BaseException) -> None:
    """Hand an unexpected error to the app (the node itself may be on its way out)."""
    node.app.post_message(Unexpected(error))


def guarded(handler: F) -> F:
    """Wrap a handler (sync or async) so that an exception is reported instead of closing the app.

    Textual's decorators keep working: `functools.wraps` copies `@on`'s marks and the signature
    that Textual counts parameters from.
    """
    if inspect.iscoroutinefunction(handler):

        @functools.wraps(handler)
        async def run_async(self: DOMNode, *args: Any, **kwargs: Any) -> Any:
            try:
                return await handler(self, *args, **kwargs)
            except Exception as exc:
                report(self, exc)
                return None

        wrapper: Callable[..., Any] = run_async
    else:

        @functools.wraps(handler)
        def run_sync(self: DOMNode, *args: Any, **kwargs: Any) -> Any:
            try:
                return handler(self, *args, **kwargs)
            except Exception as exc:
                report(self, exc)
                return None

        wrapper = run_sync
    setattr(wrapper, GUARD_MARK, True)
    return wrapper  # type: ignore[return-value]


def is_handler(name: str, member: object) -> bool:
    """Methods Textual calls on its own: on_*, action_*, watch_*, and those marked with @on."""
    if not callable(member):
        return False
    return name.startswith(("on_", "action_", "watch_", "_on_")) or hasattr(member, "_textual_on")
