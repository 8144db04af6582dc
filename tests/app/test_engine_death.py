"""The engine dying is not the app dying (issue 20): the engine process, found by the pid that
`/show info` shows, is killed, crashes or aborts mid-reply; the app stays, the reply keeps what it
had and is marked failed with one line, and the next message starts a new engine by itself. Stop
during a long prompt ends the reply at once, in the app too."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time

import pytest
from andon.app.chat.history import History
from andon.app.engine.client import EngineProcess
from andon.app.tui.app import AndonApp
from andon.app.tui.widgets.message_box import ChatInput, NoticeLine
from andon.presets.store import PresetStore

from tests.app.test_model_switch import ready, type_line

pytestmark = pytest.mark.model


def app_on(tmp_path, model_path) -> AndonApp:
    return AndonApp(lambda o: EngineProcess(o, show_log=False), model_path,
                    history=History(tmp_path / "h.sqlite3"), store=PresetStore(tmp_path / "p"))  # fmt: skip


def shown(app) -> str:
    return "\n".join(str(n.render()) for n in app.query(NoticeLine))


async def engine_pid(pilot) -> int:
    await type_line(pilot, "/show info")
    found = re.findall(r"engine\s+process (\d+)", shown(pilot.app))
    assert found, shown(pilot.app)
    return int(found[-1])


async def until(pilot, check, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)
    await pilot.pause()


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGSEGV, signal.SIGABRT])
async def test_the_engine_dying_mid_reply_leaves_the_app_and_the_next_message_starts_a_new_one(
    tmp_path, model_path, how
):
    app = app_on(tmp_path, model_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        app.session.set_parameters({"seed": 1, "logit_bias": {"<|im_end|>": False}})  # it goes on writing
        pid = await engine_pid(pilot)
        app.query_one(ChatInput).text = "Write a long story about a dragon who learns to bake bread."
        await pilot.press("enter")
        saved = app.history.messages  # the reply is saved as it streams
        await until(pilot, lambda: len(saved(app.session.chat.id)[-1].content) > 40)
        os.kill(pid, how)
        await until(pilot, lambda: "engine stopped" in shown(app), 60)
        await ready(pilot)
        reply = app.session.messages[-1]
        assert len(reply.content) > 40 and reply.status == "error"  # what was written stays, marked failed
        stored = app.history.messages(app.session.chat.id)[-1]
        assert stored.status == "error" and stored.content == reply.content
        lines = [line for line in shown(app).splitlines() if "engine stopped" in line]
        assert lines and f"killed by {how.name}" in lines[-1]
        started = time.monotonic()
        app.query_one(ChatInput).text = "Say hello."
        await pilot.press("enter")
        await until(pilot, lambda: app.session.messages[-1].status == "complete" and
                    app.session.messages[-1].role == "assistant")  # fmt: skip
        assert app.session.messages[-1].content.strip()
        assert time.monotonic() - started < 60  # a new engine (the benchmark gives the seconds)
        assert await engine_pid(pilot) != pid


async def test_stop_during_a_long_prompt_in_the_app_ends_the_reply_and_keeps_the_blocks(tmp_path, model_path):
    app = app_on(tmp_path, model_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        app.session.set_parameters({"num_predict": 8, "logit_bias": {}})
        app.query_one(ChatInput).text = "word " * 2900
        await pilot.press("enter")
        await asyncio.sleep(0.5)  # the prompt is being evaluated (thousands of tokens: seconds here)
        await pilot.press("escape")
        stopped = time.monotonic()
        await until(pilot, lambda: app.session.messages[-1].status == "stopped")
        assert time.monotonic() - stopped < 5  # in the benchmark: a fraction of a second
        reply = app.session.messages[-1]
        assert reply.content == ""
        await ready(pilot)
