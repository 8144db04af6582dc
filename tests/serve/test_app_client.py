"""The app on a running `andon serve`'s engine (`andon --server URL`): a message gets its reply
streamed from the server's engine, two app windows share the one model the server loaded, and a
server that is not there is one line, the app still open."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator

import httpx
import pytest
from andon.app.chat.history import History
from andon.app.cli.main import main
from andon.app.main import run_app
from andon.app.serve.http import ServeServer
from andon.app.tui.app import AndonApp
from andon.app.tui.run import server_factory
from andon.app.tui.widgets.message_box import ChatInput, NoticeLine
from andon.presets.store import PresetStore

from tests.app.test_model_switch import ready, type_line
from tests.serve.conftest import MODEL, serving

pytestmark = pytest.mark.model


@pytest.fixture
def server(tmp_path) -> Iterator[ServeServer]:  # its own: /api/ps starts empty
    yield from serving(tmp_path / "serve")


def app_on(tmp_path, model_path, url: str, name: str) -> AndonApp:
    return AndonApp(server_factory(url), model_path, history=History(tmp_path / f"{name}.sqlite3"),
                    store=PresetStore(tmp_path / f"{name}-presets"))  # fmt: skip


def shown(app) -> str:
    return "\n".join(str(n.render()) for n in app.query(NoticeLine))


async def ask(pilot, text: str) -> str:
    """Send `text`; the reply once it is complete."""
    app = pilot.app
    app.session.set_parameters({"seed": 1, "temperature": 0, "num_predict": 8})
    app.query_one(ChatInput).text = text
    await pilot.press("enter")
    deadline = time.monotonic() + 120
    while not (app.session.messages[-1].role == "assistant" and app.session.messages[-1].status == "complete"):
        assert time.monotonic() < deadline, shown(app)
        await asyncio.sleep(0.05)
    await ready(pilot)
    return app.session.messages[-1].content


async def engine_pid(pilot) -> int:
    await type_line(pilot, "/show info")
    found = re.findall(r"engine\s+process (\d+)", shown(pilot.app))
    assert found, shown(pilot.app)
    return int(found[-1])


async def test_two_app_windows_share_the_servers_one_engine(tmp_path, model_path, server: ServeServer):
    first, second = (app_on(tmp_path, model_path, server.url, n) for n in ("a", "b"))
    async with first.run_test(size=(80, 24)) as one, second.run_test(size=(80, 24)) as two:
        await ready(one)
        await ready(two)
        replies = [await ask(one, "Say hello to Ada."), await ask(two, "Say hello to Ada.")]
        assert replies[0].strip() and replies[0] == replies[1]  # greedy: the same reply from the same model
        loaded = httpx.get(f"{server.url}/api/ps").json()["models"]
        assert [m["name"] for m in loaded] == [MODEL]  # one model loaded, for both windows
        engine = server.service.pool.loaded()[0].engine
        assert engine is not None and await engine_pid(one) == await engine_pid(two) == engine.pid


async def test_no_server_there_is_one_line_and_the_app_stays(tmp_path, model_path):
    app = app_on(tmp_path, model_path, "http://127.0.0.1:9", "c")  # nothing listens on port 9 (discard)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        app.query_one(ChatInput).text = "Hi"
        await pilot.press("enter")
        await ready(pilot)
        lines = [line for line in shown(app).splitlines() if "127.0.0.1:9" in line]
        assert lines and "andon serve" in lines[-1] and app.is_running


def test_a_bad_server_url_is_one_line(capsys):
    assert main(["--server", "ftp://x"], app=run_app) == 2
    assert capsys.readouterr().err.strip() == (
        "andon: --server: 'ftp://x' is not allowed (an http://HOST:PORT address of andon serve)"
    )
