"""`andon ask` however its standard streams are handed over (closed, full, cut short, a terminal),
Ctrl-C at any moment, and a model's control characters kept off the terminal (`ask` and the app)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.app.fakes import FakeEngine
from tests.app.test_cli import with_gguf_text

ANDON = [sys.executable, "-m", "andon"]
# A reply with escape sequences that would retitle the terminal (OSC 2), set its clipboard (OSC 52),
# clear the screen, and a C1 CSI; a grammar makes the real model write exactly this.
CONTROL_REPLY = "A\x1b]2;pwned\x07 B\x1b[2J C\x1b]52;c;aGk=\x07 D\x9b31m E"
CONTROL_GRAMMAR = 'root ::= "A\\x1b]2;pwned\\x07 B\\x1b[2J C\\x1b]52;c;aGk=\\x07 D\\x9b31m E"'
SHOWN = ["^[]2;pwned^G", "^[[2J", "^[]52;c;aGk=^G", "<U+009B>31m"]  # how a terminal shows them


def shell(script: str, timeout: float = 300) -> subprocess.CompletedProcess[bytes]:
    """A bash command line, as a user types it (redirections included)."""
    return subprocess.run(["bash", "-c", script], capture_output=True, timeout=timeout, env=os.environ.copy())


def ask(*args: str) -> str:
    return shlex.join([*ANDON, "ask", *args])


def one_line(stderr: bytes, *needles: str) -> str:
    err = stderr.decode()
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


# --- closed, full and cut standard streams --------------------------------------------------------


def test_a_closed_standard_input_is_one_line_and_exit_2():
    r = shell(ask("-") + " <&-")
    assert r.returncode == 2 and r.stdout == b""
    one_line(r.stderr, "andon: standard input is closed", "give the prompt as an argument")


def test_a_closed_standard_output_is_one_line_and_exit_1_before_the_model_loads():
    started = time.monotonic()
    r = shell(ask("hi") + " >&-")
    assert r.returncode == 1
    one_line(r.stderr, "andon: cannot write to standard output: it is closed")
    assert time.monotonic() - started < 30  # said at once (a load would come first otherwise)


@pytest.mark.parametrize("redirect", ["2>&-", "2>/dev/full"])
def test_an_error_with_no_usable_standard_error_stays_off_standard_output(redirect):
    r = shell(f"{ask('hi', '--set', 'temperature=-1')} {redirect}")
    assert r.returncode == 2
    assert r.stdout == b""  # the error line is not printed on standard output instead


@pytest.mark.model
def test_full_closed_and_cut_streams_end_cleanly(tmp_path):
    reply = ask("Name three colours.", "--set", "num_predict=8", "--set", "seed=1")
    full = shell(f"{reply} >/dev/full")
    assert full.returncode == 1
    one_line(full.stderr, "andon: cannot write to standard output: No space left on device")
    # without standard input or error, a reply is still written (and nothing of stderr on stdout)
    for redirect in ("<&-", "2>&-", "2>/dev/full"):
        r = shell(f"{reply} {redirect}")
        assert r.returncode == 0 and r.stdout.strip() and r.stderr == b"", (redirect, r)
        assert b"andon:" not in r.stdout
    # the reader goes away after 10 bytes: a quiet end, status 141 (128 + SIGPIPE) as `yes | head` has
    err = tmp_path / "err"
    long_reply = ask("hi", "--set", "num_predict=3000", "--grammar", "root ::= [a-z ]+")
    r = shell(f'{long_reply} 2>{err} | head -c 10; echo " status=${{PIPESTATUS[0]}}"')
    assert r.stdout.endswith(b" status=141\n") and len(r.stdout) == 10 + len(" status=141\n")
    assert err.read_bytes() == b""


@pytest.mark.model
def test_the_engine_stops_as_soon_as_its_reader_goes_away():
    proc = subprocess.Popen(
        [*ANDON, "ask", "hi", "--set", "num_predict=3000", "--grammar", "root ::= [a-z ]+"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.read(10)  # the reply has begun
    proc.stdout.close()
    gone = time.monotonic()
    proc.wait(timeout=120)
    # 3000 tokens would take far longer: it stopped at the first write after the pipe closed
    assert len(first) == 10 and time.monotonic() - gone < 5
    assert proc.returncode == 141 and proc.stderr.read() == b""


# --- Ctrl-C at any moment ----------------------------------------------------------------------


def _interpreter_start() -> float:
    """Seconds a bare `python -c pass` takes here: before any of andon runs, Python's own start."""
    times = []
    for _ in range(3):
        started = time.monotonic()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.monotonic() - started)
    return max(times)


@pytest.mark.model
def test_ctrl_c_at_any_moment_exits_quietly_with_130():
    script = Path(sys.executable).with_name("andon")  # the console script users run
    command = [str(script)] if script.exists() else ANDON
    start = _interpreter_start()
    for delay in (0.05, 0.2, 0.5, 1.0, 2.0, 4.0):  # imports, settings, model load, the reply
        proc = subprocess.Popen(
            [*command, "ask", "Write a very long story about a dragon.", "--set", "num_predict=2000"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        time.sleep(start + delay)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, (delay, err.decode())
        assert b"Traceback" not in err and b"Exception" not in err, (delay, err.decode())
        assert len(err.decode().strip().splitlines()) <= 1, (delay, err.decode())
        if out.strip():  # it was replying: what was written is kept
            assert err.strip() == b"andon: reply stopped", err


# --- a model's control characters and the terminal -------------------------------------------------


@pytest.mark.model
def test_piped_output_is_the_replys_bytes_exactly():
    r = shell(ask("hi", "--grammar", CONTROL_GRAMMAR) + " | cat")
    assert r.returncode == 0, r.stderr
    assert r.stdout == (CONTROL_REPLY + "\n").encode()
    r = shell(ask("hi", "--json", "--grammar", CONTROL_GRAMMAR) + " | cat")
    assert json.loads(r.stdout)["text"] == CONTROL_REPLY


def run_in_pty(args: list[str]) -> tuple[int, bytes]:
    """Run with standard output and error on a pseudo-terminal, as in a terminal window; what
    the terminal receives."""
    leader, follower = os.openpty()
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower)
    os.close(follower)
    received = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the process closed its end
            break
        if not chunk:
            break
        received += chunk
    os.close(leader)
    return proc.wait(timeout=120), received


@pytest.mark.model
def test_on_a_terminal_no_escape_from_the_model_reaches_it(tmp_path, model_path):
    status, received = run_in_pty([*ANDON, "ask", "hi", "--grammar", CONTROL_GRAMMAR])
    assert status == 0
    assert b"\x1b" not in received and "\x9b".encode() not in received  # not one escape sequence
    text = received.decode()
    for shown in SHOWN:
        assert shown in text
    # a reasoning model's thinking (dimmed by andon's own two sequences), then its answer
    status, received = run_in_pty([*ANDON, "ask", "hi", "--grammar", 'root ::= "<think>plan\\x1b]2;t\\x07</think>ok"'])
    assert status == 0 and received.count(b"\x1b[2m") == received.count(b"\x1b[0m") > 0
    assert b"\x1b" not in received.replace(b"\x1b[2m", b"").replace(b"\x1b[0m", b"")
    assert "plan^[]2;t^G" in received.decode().replace("\x1b[2m", "").replace("\x1b[0m", "")
    # --log: llama.cpp's log quotes the file's metadata, here a name with an escape sequence
    renamed = with_gguf_text(model_path, tmp_path / "renamed.gguf", "general.name", "\x1b]2;pwned\x07")
    status, received = run_in_pty([*ANDON, "ask", "hi", "--model", str(renamed), "--log",
                                   "--set", "num_predict=2"])  # fmt: skip
    assert status == 0 and b"\x1b" not in received
    assert "^[]2;pwned^G" in received.decode()


# --- the app --------------------------------------------------------------------------------------


def terminal_output(app) -> str:
    """What Textual writes to the terminal for the whole screen now (as App._display does)."""
    update = app.screen._compositor.render_update(full=True)
    return update.render_segments(app.console)


async def test_the_app_shows_a_replys_control_characters_and_never_sends_them(tmp_path):
    from andon.app.chat.history import History
    from andon.app.tui.app import AndonApp
    from andon.app.tui.widgets.message_box import ChatInput, MessageBox
    from andon.presets.store import PresetStore

    script = ["<think>", "plan\x1b]2;thought\x07 ", "</think>", *CONTROL_REPLY.split(" ")]
    app = AndonApp(lambda o: FakeEngine(o, script=[p if p.startswith("<") else p + " " for p in script]),
                   Path("/models/fake.gguf"), history=History(tmp_path / "h.sqlite3"),
                   store=PresetStore(tmp_path / "presets"))  # fmt: skip
    async with app.run_test(size=(100, 40)) as pilot:
        app.query_one(ChatInput).text = "/x\x1b]2;typed\x07"  # an unknown command, echoed in a notice
        await pilot.press("enter")
        await pilot.pause()
        app.query_one(ChatInput).text = "hello"
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        reply = list(app.query(MessageBox))[-1]
        assert reply.message.content.strip() == CONTROL_REPLY  # stored exactly as the model wrote it
        assert reply.thoughts is not None
        reply.thoughts.collapsed = False  # the thinking opened, to be drawn too
        await pilot.pause()
        screen = terminal_output(app)
    for shown in [*SHOWN, "^[]2;thought^G", "/x^[]2;typed^G"]:
        assert shown in screen
    for sequence in ("\x1b]2;", "\x1b]52;", "\x1b[2J", "\x9b"):
        assert sequence not in screen
