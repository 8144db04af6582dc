"""Models on other machines through llama.cpp RPC (issue 15): as a user runs `andon ask`.

The servers are `ggml_backend_rpc_start_server` in a child process (tests/rpc_server.py) on
127.0.0.1. Everything that registers RPC devices runs in an `andon` process of its own, so a fault
never touches the test process. Where llama-cpp-python was built without RPC, the tests that need a
server skip, saying so.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.rpc_server import Server, serving

PROMPT = "What is the capital of Japan?"
STORY = "Write a long story about a dragon who learns to bake bread."
GREEDY = ("--set", "temperature=0", "--set", "num_predict=48", "--set", "num_ctx=512")


def andon(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "andon", *args], capture_output=True, text=True, timeout=timeout, env=dict(os.environ)
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def rpc_build() -> None:
    from andon.app.engine import rpc

    if not rpc.supported():
        pytest.skip('llama-cpp-python was built without RPC (CMAKE_ARGS="-DGGML_RPC=on" builds it with)')


@pytest.fixture
def server(rpc_build) -> Iterator[Server]:
    with serving() as s:
        yield s


@pytest.fixture
def silent_port(rpc_build) -> Iterator[int]:
    """A port that accepts connections and never says a word (a hung or foreign server)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


# --- bad input: one line, exit status 2, before any model is loaded ----------------------------


@pytest.mark.parametrize("value", ["localhost", "host:99999", "a b:50052", "host:port"])
def test_malformed_endpoint_is_refused_by_the_parameter(value):
    r = andon("ask", "hi", "--set", f"rpc={value}")
    assert_one_line_error(r, "rpc:", "host:port")


def test_ipv6_endpoint_is_refused_with_what_works():
    r = andon("ask", "hi", "--set", "rpc=[::1]:50052")
    assert_one_line_error(r, "rpc:", "[::1]:50052", "IPv4 addresses and host names")


def test_unknown_host_is_named():
    r = andon("ask", "hi", "--set", "rpc=no-such-host.invalid:50052")
    assert_one_line_error(r, "rpc:", "no-such-host.invalid:50052")


def test_build_without_rpc_says_how_to_rebuild(monkeypatch, capsys):
    import llama_cpp
    from andon.app.main import main

    monkeypatch.setattr(llama_cpp, "llama_supports_rpc", lambda: False)
    assert main(["ask", "hi", "--set", "rpc=127.0.0.1:50052"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "this llama.cpp build has no RPC backend" in err
    assert 'CMAKE_ARGS="-DGGML_RPC=on" pip install --force-reinstall --no-cache-dir llama-cpp-python' in err


def test_closed_port_is_one_line_at_once(rpc_build):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: the connection is refused
        start = time.monotonic()
        r = andon("ask", "hi", "--set", f"rpc=127.0.0.1:{port}")
    assert_one_line_error(r, f"127.0.0.1:{port}", "connection refused")
    assert time.monotonic() - start < 30


def test_server_that_does_not_answer_is_one_line_within_seconds(silent_port):
    start = time.monotonic()
    r = andon("ask", "hi", "--set", f"rpc=127.0.0.1:{silent_port}", timeout=60)
    elapsed = time.monotonic() - start
    assert_one_line_error(r, f"127.0.0.1:{silent_port}", "did not answer")
    assert elapsed < 15, elapsed  # 3 s for the hello, plus starting Python


def test_a_server_registered_again_adds_no_device_and_none_removes_them(server):
    """ggml's device registry as llama.cpp's model loader sees it, in this process."""
    import ctypes

    from andon.app.engine import rpc
    from llama_cpp import llama_cpp as bindings

    count = bindings._lib.ggml_backend_dev_count
    count.restype = ctypes.c_size_t
    before = count()
    port = server.endpoint.rsplit(":", 1)[1]
    try:
        assert rpc.use([server.endpoint]) == (server.endpoint,)
        assert count() == before + 1
        assert rpc.use([server.endpoint, f"localhost:{port}"]) == (server.endpoint,)
        assert rpc.use([server.endpoint]) == (server.endpoint,)
        assert count() == before + 1
    finally:
        assert rpc.use([]) == ()
    assert count() == before  # the next model loads on this machine alone
    assert rpc.use([server.endpoint]) == (server.endpoint,) and count() == before + 1
    rpc.use([])


# --- the proof: all layers on the RPC device, the same greedy reply ------------------------------


def offloaded(log: str) -> tuple[int, int]:
    found = re.search(r"offloaded (\d+)/(\d+) layers", log)
    assert found, log[-3000:]
    return int(found.group(1)), int(found.group(2))


@pytest.mark.model
def test_all_layers_on_the_rpc_device_and_the_same_greedy_reply(server):
    local = andon("ask", PROMPT, "--json", *GREEDY)
    remote = andon("ask", PROMPT, "--json", "--log", *GREEDY, "--set", f"rpc={server.endpoint}")
    assert local.returncode == 0, local.stderr[-2000:]
    assert remote.returncode == 0, remote.stderr[-2000:]
    log = remote.stderr
    assert f"using device RPC0 ({server.endpoint})" in log
    done, total = offloaded(log)
    assert done == total
    assert re.search(rf"RPC0\[{re.escape(server.endpoint)}\] model buffer size", log)
    assert "assigned to device CPU" not in log  # every layer is on the server
    assert json.loads(remote.stdout)["text"] == json.loads(local.stdout)["text"]
    assert "Tokyo" in json.loads(local.stdout)["text"]


@pytest.mark.model
def test_one_server_named_twice_is_one_device(server):
    port = server.endpoint.rsplit(":", 1)[1]
    r = andon("ask", PROMPT, "--log", *GREEDY, "--set", f"rpc={server.endpoint},localhost:{port},{server.endpoint}")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "using device RPC0" in r.stderr
    assert "RPC1" not in r.stderr


@pytest.mark.model
def test_num_gpu_counts_layers_on_the_rpc_device(server):
    r = andon("ask", PROMPT, "--log", *GREEDY, "--set", "num_gpu=10", "--set", f"rpc={server.endpoint}")
    assert r.returncode == 0, r.stderr[-2000:]
    assert offloaded(r.stderr)[0] == 10
    assert "Tokyo" in r.stdout


# --- a server that goes away during a reply ----------------------------------------------------


@pytest.mark.model
def test_server_killed_during_a_reply_ends_it_with_one_line_and_keeps_the_text(server):
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "andon", "ask", "Write a long story about a dragon.", "--set", "num_predict=2000",
         "--set", "num_ctx=4096", "--set", f"rpc={server.endpoint}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    written = proc.stdout.read(40)  # the reply is streaming
    server.process.kill()
    killed = time.monotonic()
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert time.monotonic() - killed < 20
    assert proc.returncode == 2, err[-2000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    assert "lost the connection" in lines[0] and server.endpoint in lines[0]
    assert len(written) == 40 and (written + out).startswith(written)  # what was written stays on the screen


@pytest.mark.model
def test_ctrl_c_while_a_server_is_silent_ends_the_reply_within_seconds(server):
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "andon", "ask", STORY, "--set", "num_predict=2000",
         "--set", "num_ctx=4096", "--set", f"rpc={server.endpoint}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    written = proc.stdout.read(40)
    server.process.send_signal(signal.SIGSTOP)  # alive, connected, and silent (a host gone away)
    try:
        time.sleep(1)
        proc.send_signal(signal.SIGINT)
        stopped = time.monotonic()
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        server.process.send_signal(signal.SIGCONT)
    assert time.monotonic() - stopped < 20
    assert proc.returncode == 2, err[-2000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"stopped waiting for {server.endpoint}" in lines[0], err[-2000:]
    assert len(written) == 40


# The app with its real engine on an RPC server, in a process of its own: the server is killed
# once 40 characters of the reply are in the history. Prints what the user is left with.
APP_DRIVER = """
import asyncio, json, os, signal, sys, time
from pathlib import Path
from andon.app.engine.engine import Engine
from andon.app.chat.history import History
from andon.app.models.files import embedded_model_path
from andon.app.tui.app import AndonApp
from andon.app.tui.widgets.message_box import ChatInput, NoticeLine
from andon.presets.store import PresetStore

endpoint, pid, tmp = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])


async def ask(pilot, text):
    pilot.app.query_one(ChatInput).text = text
    await pilot.press("enter")


async def main():
    history = History(tmp / "h.db")
    app = AndonApp(lambda o: Engine(o), embedded_model_path(), history=history, store=PresetStore(tmp / "p"),
                   rpc=(endpoint,))
    async with app.run_test(size=(120, 40)) as pilot:
        await ask(pilot, sys.argv[4])
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            stored = history.messages(app.session.chat.id)
            if len(stored) == 2 and len(stored[1].content) >= 40:
                break
            await asyncio.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
        await app.workers.wait_for_complete()
        await pilot.pause()
        await ask(pilot, "hello")
        await app.workers.wait_for_complete()
        await pilot.pause()
        shown = [(m.role, m.status, m.content) for m in app.session.messages]
        stored = [(m.role, m.status, m.content) for m in history.messages(app.session.chat.id)]
        errors = [str(n.render()) for n in app.query(NoticeLine) if n.has_class("error")]
    print(json.dumps({"shown": shown, "stored": stored, "errors": errors}))


asyncio.run(main())
"""


@pytest.mark.model
def test_server_killed_during_a_reply_in_the_app_marks_it_failed_keeps_the_text_and_goes_on(server, tmp_path):
    start = time.monotonic()
    r = subprocess.run(
        [sys.executable, "-c", APP_DRIVER, server.endpoint, str(server.process.pid), str(tmp_path), STORY],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout.strip().splitlines()[-1])
    (_, _, _), (role, status, text), (_, _, _), (_, second_status, _) = result["stored"]
    assert role == "assistant" and status == "error" and len(text) >= 40  # failed, what was written kept
    assert second_status == "error"  # the app went on: the next message got an answer, an error one
    assert result["shown"] == result["stored"]
    lost = f"lost the connection to {server.endpoint}"
    assert len(result["errors"]) == 2 and all(lost in line for line in result["errors"])
    assert time.monotonic() - start < 240
