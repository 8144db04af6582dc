"""The prompt of `andon ask`, `inspect` and `compare`: the argument, standard input, or both.

As `ollama run` and `llm` do, text piped or redirected into andon is part of the prompt:
`cat add.py | andon ask "Explain this code:"` asks the argument, a blank line, then the file.
With no argument (or `-`) the piped text is the prompt. On a terminal nothing is read; a standard
input the caller closed (`<&-`) holds nothing. Piped text must be UTF-8, as every text andon takes
(andon.presets.text): other bytes are refused in one line naming the first, never changed.
Imports beyond the standard library are made when a prompt is read (see andon.app.cli.main).
"""

from __future__ import annotations

import os
import sys

from andon.app.cli.stdio import ClosedInput

STDIN_HELP = (
    "the prompt; text piped into andon follows it after a blank line "
    "(cat add.py | %(prog)s 'Explain this code:'); without it, or with -, the piped text is the prompt"
)


def read_prompt(argument: str | None) -> str:
    """The prompt a command was given: `argument`, then what was piped in after a blank line.

    UsageError where there is no prompt (none given on a terminal, or only whitespace);
    TextError where piped bytes are not UTF-8; StreamError for `-` with standard input closed.
    """
    from andon.app.errors import UsageError  # the command line imports only the standard library up front

    if argument == "-" or (argument is None and _piped()):
        text = read_stdin()
    elif argument is None:
        raise UsageError("a prompt is needed: give it as an argument, or pipe text into andon")
    else:
        piped = read_stdin() if _piped() else ""
        text = f"{argument}\n\n{piped}" if piped.strip() else argument
    if not text.strip():
        raise UsageError("the prompt is empty")
    return text


def _piped() -> bool:
    """Whether standard input holds text for the prompt: a pipe, a file, /dev/null. Not a terminal,
    not a stream the caller closed, nor one without a file (a test's stand-in that refuses reads)."""
    stdin = sys.stdin
    if stdin is None or isinstance(stdin, ClosedInput):
        return False
    try:
        return not os.isatty(stdin.fileno())
    except (OSError, ValueError):  # no file descriptor, or closed by Python: nothing to read
        return False


def read_stdin() -> str:
    """All of standard input, as UTF-8 (TextError naming the first byte that is not)."""
    from andon.presets.text import decode

    binary = getattr(sys.stdin, "buffer", None)
    return decode(binary.read(), "standard input") if binary is not None else sys.stdin.read()
