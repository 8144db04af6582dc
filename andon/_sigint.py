"""Ctrl-C while the `andon` program starts: a quiet exit with status 130, never a traceback.

andon/__init__.py runs this before anything else of andon is imported, and it needs only what
Python has loaded by then (os, signal, sys): the heavy imports that follow (numpy, llama.cpp, a
second or more on a slow machine) already find the handler. The command line keeps it until a
command that must clean up takes over (app/cli/main.py, app/cli/stdio.py).
"""

from __future__ import annotations

import os
import signal
import sys

INTERRUPTED = 128 + signal.SIGINT  # 130, as a shell reports a command ended by Ctrl-C


def exit_interrupted(signum: int = signal.SIGINT, frame: object = None) -> None:
    """A SIGINT handler: end the process at once, quietly, with status 130.

    For the moments when there is nothing to keep: imports, reading the prompt, loading the model
    (inside llama.cpp's C code, where a Python exception would be swallowed by a ctypes callback
    and the load would go on).
    """
    try:  # noqa: SIM105 (contextlib is not loaded yet when this module is)
        os.write(2, b"\nandon: interrupted\n")
    except OSError:
        pass
    os._exit(INTERRUPTED)


def is_the_program() -> bool:
    """Whether this process is the `andon` command: its script, or `python -m andon` (while Python
    locates that module, sys.argv[0] is "-m"). Imported by anything else (tests), andon changes nothing."""
    first = sys.argv[0] if sys.argv else ""
    return first == "-m" or os.path.basename(first) == "andon"


def quiet_if_the_program() -> None:
    """Install `exit_interrupted` for SIGINT when this process is the `andon` command."""
    if is_the_program():
        try:  # noqa: SIM105
            signal.signal(signal.SIGINT, exit_interrupted)
        except ValueError:  # not the main thread: Python refuses, and it is not the program's start
            pass
