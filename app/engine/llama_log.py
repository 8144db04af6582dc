"""llama.cpp's log: silent unless --verbose, but its last error is kept for our messages."""

from __future__ import annotations

import ctypes
import sys
from collections import deque

_GGML_LOG_LEVEL_ERROR = 4  # ggml: NONE 0, DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5
_GGML_LOG_LEVEL_CONT = 5

_state = {"verbose": False, "level": 0, "count": 0}  # count: errors logged in this process
_errors: deque[str] = deque(maxlen=8)
_callback = None  # the ctypes callback must outlive every call llama.cpp makes to it


def install(verbose: bool) -> None:
    """Route llama.cpp's log through andon: shown with --verbose, else errors kept quietly."""
    global _callback
    import llama_cpp

    _state["verbose"] = verbose
    _errors.clear()
    if _callback is None:

        @llama_cpp.llama_log_callback
        def _log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
            if level != _GGML_LOG_LEVEL_CONT:
                _state["level"] = level
            message = text.decode("utf-8", "replace")
            if _state["verbose"]:
                print(message, end="", file=sys.stderr, flush=True)
            elif _state["level"] == _GGML_LOG_LEVEL_ERROR and message.strip():
                _errors.append(message.strip())
                _state["count"] += 1

        _callback = _log
    llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))


def last_error() -> str:
    """The first error llama.cpp logged since install(), without its function-name prefix.

    The first is the cause (e.g. "string length 20 exceeds remaining file size 18 bytes");
    the later ones only say that loading failed.
    """
    return _errors[0].split(": ", 1)[-1] if _errors else ""


def error_count() -> int:
    """How many errors llama.cpp has logged so far: a mark for `first_error_since`."""
    return _state["count"]


def first_error_since(mark: int) -> str:
    """The first error llama.cpp logged after `error_count()` returned mark ("" if none), without its
    function-name prefix: the cause for one call, where several calls share one install()."""
    new = min(_state["count"] - mark, len(_errors))
    return _errors[-new].split(": ", 1)[-1] if new > 0 else ""
