"""The engine in a process of its own (app/engine/server.py, app/engine/client.py): the same replies,
inspections and tokens as the engine in this process; stop means stop, also while a prompt is
evaluated; the engine dying (killed, crashed, aborted) is one line, never this process dying."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from andon.app.engine.client import EngineDied, EngineProcess
from andon.app.engine.engine import Delta, Done, ReplyNotice
from andon.app.engine.grammar import GrammarError
from andon.app.engine.inspection import inspect_next
from andon.app.engine.loading import ModelLoadError, ModelOptions
from andon.presets import Parameters
from andon.presets.store import PresetStore
from andon.samplers.errors import ParameterError

pytestmark = pytest.mark.model

DRAGONS = [{"role": "user", "content": "Tell me a short story about a dragon."}]


@pytest.fixture(scope="module")
def process(model_path):
    engine = EngineProcess(ModelOptions(model_path, num_ctx=4096))
    yield engine
    engine.close()


def events(engine, messages, params, cancelled=None):
    return list(engine.stream(messages, params, cancelled=cancelled))


def done_of(evs) -> Done:
    (done,) = [e for e in evs if isinstance(e, Done)]
    return done


@pytest.mark.parametrize("preset", ["factual", "creative"])
def test_a_reply_through_the_engine_process_is_the_one_the_engine_gives(engine, process, preset):
    params = Parameters.of({"seed": 7, "num_predict": 40}, base=PresetStore().load(preset).parameters)
    here, there = events(engine, DRAGONS, params), events(process, DRAGONS, params)
    assert [e.text for e in there if isinstance(e, Delta)] == [e.text for e in here if isinstance(e, Delta)]
    a, b = done_of(here), done_of(there)
    assert (b.text, b.tokens, b.finish_reason, b.seed) == (a.text, a.tokens, a.finish_reason, a.seed)
    assert b.usage.completion_tokens == a.usage.completion_tokens == 40


def test_the_inspector_and_the_tokens_are_the_same_across_the_boundary(engine, process):
    params = Parameters.of({"top_k": 20, "min_p": 0.05, "temperature": 0.7})
    tokens = engine.chat_tokens(DRAGONS)
    assert process.chat_tokens(DRAGONS) == tokens
    assert process.tokenize("Hello world", add_bos=True) == engine.tokenize("Hello world", add_bos=True)
    assert process.token_texts(tokens[:8]) == [engine.token_text(t) for t in tokens[:8]]
    here = inspect_next(engine, tokens, params, top=10, temperatures=[0.5, 1.5])
    there = process.inspect(tokens, params, top=10, temperatures=[0.5, 1.5])
    assert there == here


def test_a_token_id_past_the_vocabulary_is_refused_and_the_engine_goes_on(process):
    with pytest.raises(ValueError, match="token ids from 0 to 49151"):
        process.token_texts([5, 49152])
    assert process.alive() and process.token_texts([5]) == [process.token_text(5)]


def test_a_request_the_engine_refuses_is_the_same_one_line_error(process):
    with pytest.raises(GrammarError, match="grammar"):
        events(process, DRAGONS, Parameters.of({"grammar": "root ::= undefined_rule"}))
    with pytest.raises(ParameterError, match="temperature"):
        process._request("POST", "/api/chat", {"messages": DRAGONS, "options": {"temperature": -1}})
    assert done_of(events(process, DRAGONS, Parameters.of({"num_predict": 3}))).usage.completion_tokens == 3


def test_stop_during_a_long_prompt_ends_it_and_the_next_message_goes_on_from_the_cache(process):
    """A 2,800-token chat: stopped while its prompt is evaluated, the reply ends "cancelled" with
    part of the prompt evaluated; asked again, only the rest is evaluated."""
    chat = [{"role": "user", "content": "word " * 2800}]
    asked: list[float] = []

    def cancelled() -> bool:
        if not asked:
            asked.append(time.perf_counter())
        return True

    done = done_of(events(process, chat, Parameters.of({"num_predict": 4}), cancelled))
    assert done.finish_reason == "cancelled" and done.text == ""
    assert 0 < done.usage.prompt_eval_tokens < done.usage.prompt_tokens
    again = done_of(events(process, chat, Parameters.of({"num_predict": 4})))
    assert again.usage.prompt_eval_tokens == again.usage.prompt_tokens - done.usage.prompt_eval_tokens


def test_stop_between_tokens_keeps_what_was_written(process):
    seen: list[Delta] = []
    evs = []
    for event in process.stream(DRAGONS, Parameters.of({"seed": 1}), cancelled=lambda: len(seen) >= 3):
        evs.append(event)
        if isinstance(event, Delta):
            seen.append(event)
    done = done_of(evs)
    assert done.finish_reason == "cancelled" and done.text.startswith("".join(d.text for d in seen[:3]))


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGSEGV, signal.SIGABRT])
def test_an_engine_that_dies_mid_reply_is_one_line_and_this_process_goes_on(model_path, how):
    engine = EngineProcess(ModelOptions(model_path, num_ctx=512))
    deltas = []
    try:
        with pytest.raises(EngineDied) as died:
            for event in engine.stream(DRAGONS, Parameters.of({"seed": 1, "num_predict": 200})):
                if isinstance(event, Delta):
                    deltas.append(event.text)
                    if len(deltas) == 3:
                        os.kill(engine.pid, how)
        assert len(deltas) >= 3
        assert str(died.value).startswith(f"the engine stopped (killed by {how.name}")
        assert "\n" not in str(died.value)
        assert not engine.alive()
    finally:
        engine.close()


def test_a_load_that_fails_or_dies_is_a_model_load_error(model_path, tmp_path):
    missing = tmp_path / "missing.gguf"
    with pytest.raises(ModelLoadError, match=r"missing\.gguf"):
        EngineProcess(ModelOptions(missing))
    pids: list[int] = []

    def progress(fraction: float) -> None:
        if not pids:
            pids.append(fraction)
            os.kill(starting[0].pid, signal.SIGKILL)

    starting: list[subprocess.Popen] = []
    real_popen = subprocess.Popen

    def popen(*args, **kwargs):
        starting.append(real_popen(*args, **kwargs))
        return starting[-1]

    subprocess.Popen = popen  # type: ignore[misc]
    try:
        with pytest.raises(ModelLoadError, match=r"the engine stopped while loading the model: killed by SIGKILL"):
            EngineProcess(ModelOptions(model_path, num_ctx=512, progress=progress))
    finally:
        subprocess.Popen = real_popen  # type: ignore[misc]


def test_the_engine_ends_with_the_process_that_started_it(model_path, tmp_path):
    """The app killed (SIGKILL: no clean-up runs) leaves no engine behind holding the model."""
    script = (
        "import os, sys\n"
        "from andon.app.engine.client import EngineProcess\n"
        "from andon.app.engine.loading import ModelOptions\n"
        f"e = EngineProcess(ModelOptions({str(model_path)!r}, num_ctx=512))\n"
        "print(e.pid, e._folder, flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    pid, folder = int(proc.stdout.split()[0]), proc.stdout.split()[1]
    for _ in range(50):
        if not _running(pid):
            break
        time.sleep(0.1)
    assert not _running(pid)
    assert not os.path.exists(folder)  # nor its socket


def test_closing_ends_the_engine_and_its_socket(model_path):
    engine = EngineProcess(ModelOptions(model_path, num_ctx=512))
    folder = engine._folder
    engine.close()
    assert not engine.alive() and not os.path.exists(folder)


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_notices_cross_too(process):
    """A chat past num_ctx drops its oldest messages and says so, across the boundary too."""
    chat = []
    for i in range(40):
        chat += [{"role": "user", "content": f"Question {i}: " + "tell me more " * 30},
                 {"role": "assistant", "content": "Here is more. " * 10}]  # fmt: skip
    chat.append({"role": "user", "content": "And now?"})
    notices = [e.text for e in events(process, chat, Parameters.of({"num_predict": 2})) if isinstance(e, ReplyNotice)]
    assert any("dropped the" in n for n in notices)


def test_a_client_gone_mid_reply_is_no_reason_given_later_for_a_death(model_path):
    """A reader that leaves mid-reply (its connection reset) writes nothing on the engine's stderr;
    an engine killed later says how it ended and nothing older (it once read 'killed by SIGKILL:
    ConnectionResetError: ...', a line from minutes before)."""
    import json
    import socket
    import struct

    engine = EngineProcess(ModelOptions(model_path, num_ctx=512))
    try:
        body = json.dumps({"messages": DRAGONS, "options": {"seed": 1, "num_predict": 200}}).encode()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(engine._socket)
        sock.sendall(b"POST /api/chat HTTP/1.1\r\nHost: engine\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)  # fmt: skip
        sock.recv(4096)  # the reply has begun
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # a reset, not a goodbye
        time.sleep(4)
        assert not any("Error" in line for line in engine._stderr), list(engine._stderr)
        os.kill(engine.pid, signal.SIGKILL)
        with pytest.raises(EngineDied) as died:
            events(engine, DRAGONS, Parameters.of({"seed": 1, "num_predict": 8}))
        assert str(died.value) == "the engine stopped (killed by SIGKILL)"
    finally:
        engine.close()
