"""Text piped into `andon ask`, `inspect` and `compare`: after the prompt argument, or the prompt itself.

Real processes with a real pipe (subprocess's `input`), a real terminal (a pty) or a closed standard
input; what the model was given is checked against the chat template's tokens of the expected text.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys

import pytest

from tests.app.test_cli import andon, assert_user_error

CODE = "def add(a, b):\n    return a + b\n"
ASK = "Explain this code in one sentence:"
SYSTEM = "Be brief."


def prompt_tokens(*args: str, stdin: str | None) -> int:
    """How many tokens `andon ask ... --json` says the prompt had."""
    r = andon("ask", *args, "--system", SYSTEM, "--json", "--set", "num_predict=1", stdin=stdin)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["usage"]["prompt_tokens"]


def expected_tokens(engine, user: str) -> int:
    """The chat template's tokens for the system prompt and `user` (the reference)."""
    return len(engine.chat_tokens([{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]))


@pytest.mark.model
def test_piped_text_follows_the_prompt_after_a_blank_line(engine):
    """`cat add.py | andon ask "Explain..."`: the model is given the argument, a blank line, then the file."""
    with_code = prompt_tokens(ASK, stdin=CODE)
    assert with_code == expected_tokens(engine, f"{ASK}\n\n{CODE}")
    assert with_code > expected_tokens(engine, ASK) + 10  # the code's own tokens, not just the question


@pytest.mark.model
def test_piped_text_alone_is_the_prompt():
    r = andon("ask", "--set", "temperature=0", stdin="What is the capital of Japan?")
    assert r.returncode == 0, r.stderr
    assert "Tokyo" in r.stdout


@pytest.mark.model
def test_nothing_piped_leaves_the_argument_alone(engine):
    assert prompt_tokens(ASK, stdin="") == expected_tokens(engine, ASK)  # an empty pipe, e.g. </dev/null
    assert prompt_tokens(ASK, stdin=" \n\n") == expected_tokens(engine, ASK)  # only blank lines


@pytest.mark.model
def test_a_closed_standard_input_with_an_argument_answers():
    r = subprocess.run(
        ["bash", "-c", f'exec {sys.executable} -m andon ask "Say hi" --set num_predict=3 <&-'],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() and r.stderr == ""


def test_no_prompt_on_a_terminal_is_one_line():
    """`andon ask` typed alone at a terminal: nothing to read, so one line says what is needed."""
    leader, follower = pty.openpty()
    try:
        r = subprocess.run(
            [sys.executable, "-m", "andon", "ask"], stdin=follower, capture_output=True, text=True, timeout=60
        )
    finally:
        os.close(follower)
        os.close(leader)
    assert_user_error(r, "a prompt is needed", "argument", "pipe")


def test_empty_piped_text_and_no_argument_is_one_line():
    assert_user_error(andon("ask", stdin=""), "the prompt is empty")
    assert_user_error(andon("compare", "-n", "2", stdin="\n"), "the prompt is empty")


@pytest.mark.parametrize("command", [["ask", "Explain:"], ["inspect", "Explain:"], ["compare", "-n", "2"]])
def test_piped_bytes_that_are_not_utf8_are_one_line(command):
    """A binary or Latin-1 file piped in is refused before the model loads, naming the first bad byte."""
    r = subprocess.run(
        [sys.executable, "-m", "andon", *command], input=b"caf\xe9 \x00\x01", capture_output=True, timeout=60
    )
    err = r.stderr.decode()
    assert r.returncode == 2 and len(err.strip().splitlines()) == 1, err
    assert "standard input is not valid UTF-8: byte 0xe9 at offset 3" in err and "Traceback" not in err


@pytest.mark.model
def test_piped_text_past_the_context_is_the_context_line():
    r = andon("ask", "Summarize:", "--set", "num_ctx=512", stdin="word " * 3000)
    assert_user_error(r, "num_ctx is 512", "shorten the message or raise num_ctx")


@pytest.mark.model
def test_inspect_shows_the_piped_code_in_its_prompt():
    r = andon("inspect", ASK, "--top", "2", stdin=CODE)
    assert r.returncode == 0, r.stderr
    prompt_line = r.stdout.splitlines()[1]
    assert "Explain" in prompt_line and "[803] add" in prompt_line and " return" in prompt_line


@pytest.mark.model
def test_compare_gets_the_piped_text_too():
    r = andon("compare", ASK, "-n", "2", "--presets", "factual", "--set", "num_predict=2", "--json", stdin=CODE)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["prompt"] == f"{ASK}\n\n{CODE}"
