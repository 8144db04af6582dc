"""`andon` draws a message box before it reads most of itself (AndonApp(fast_start=True)): the
first frame comes from Textual alone, what is typed meanwhile shows at once and reaches the chat
screen's message box in order, and Enter typed then sends once the chat is there."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from andon.app.chat.history import History
from andon.app.tui.app import AndonApp
from andon.app.tui.keys import PLACEHOLDER
from andon.app.tui.screens.start import StartScreen
from andon.app.tui.widgets.message_box import ChatInput
from andon.presets.store import PresetStore

from tests.app.fakes import FakeEngine


def fast_app(tmp_path: Path) -> AndonApp:
    return AndonApp(lambda options: FakeEngine(options), Path("/models/fake.gguf"),
                    history=History(tmp_path / "h.sqlite3"), store=PresetStore(tmp_path / "presets"),
                    fast_start=True)  # fmt: skip


async def until_chat(pilot) -> None:
    app = pilot.app
    for _ in range(100):
        await pilot.pause(0.05)
        if app._chat is not None and app.screen is app._chat and app._early_keys is None:
            return
    raise AssertionError("the chat screen never came")


async def test_the_first_frame_is_a_message_box_and_typing_shows_there(tmp_path):
    app = fast_app(tmp_path)
    app.call_after_refresh = lambda *a, **k: None  # hold the chat back: only the first frame
    async with app.run_test(size=(80, 24)) as pilot:
        assert isinstance(app.screen, StartScreen)
        box = app.screen.query_one("#start-input")
        assert str(box.placeholder) == PLACEHOLDER
        await pilot.press("h", "e", "y", "backspace", "l", "l", "o")
        assert box.text == "hello"


async def test_what_was_typed_first_reaches_the_chat_in_order_and_enter_sends(tmp_path):
    app = fast_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("h", "i", "enter", "n", "o")  # typed at once, before the chat is read
        await until_chat(pilot)
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app._chat.query_one(ChatInput).text == "no"
        sent = [m.content for m in app.history.messages(app.session.chat.id) if m.role == "user"]
        assert sent == ["hi"]


async def test_a_new_line_typed_in_the_first_frame_stays_a_new_line(tmp_path):
    """Once the first frame is drawn the terminal is in raw mode: Ctrl+J is a new line there (as in
    the chat's box), Enter sends; before it, Enter itself arrived as Ctrl+J (test_tui's case)."""
    app = fast_app(tmp_path)
    app.call_after_refresh = lambda *a, **k: None  # the test says when the first frame is drawn
    async with app.run_test(size=(80, 24)) as pilot:
        app._first_frame_at = time.monotonic() - 1  # drawn a second ago
        await pilot.press("a", "ctrl+j", "b")
        assert app.screen.query_one("#start-input").text == "a\nb"
        await pilot.press("enter")
        app._first_frame_drawn = type(app)._first_frame_drawn.__get__(app)
        app._read_the_rest()
        await until_chat(pilot)
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert [m.content for m in app.history.messages(app.session.chat.id) if m.role == "user"] == ["a\nb"]


async def test_a_preset_file_that_cannot_be_read_ends_the_app_with_its_line(tmp_path):
    """`andon --preset NAME` finds the file before the first frame and reads it behind it: a file that
    is not a preset is one line and status 2, as an unknown name is before the app starts."""
    store = PresetStore(tmp_path / "presets")
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "broken.toml").write_text("this is = = not toml\n")
    app = AndonApp(lambda options: FakeEngine(options), Path("/models/fake.gguf"),
                   history=History(tmp_path / "h.sqlite3"), store=store, preset="broken", fast_start=True)  # fmt: skip
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(100):
            await pilot.pause(0.05)
            if not app.is_running:
                break
    assert app.return_code == 2 and app._chat is None


def test_the_first_frame_reads_neither_numpy_nor_pydantic_nor_the_engine():
    """What `andon` reads before its first frame: Textual and a little of andon (a user sees the
    message box sooner: benchmarks/tui_speed.py measures it)."""
    code = (
        "import sys, andon.app.main, andon.app.cli.main, andon.app.tui.run, andon.app.tui.app;"
        "print(' '.join(sorted(m for m in ('numpy', 'pydantic', 'andon.presets.parameters', "
        "'andon.app.engine.engine', 'andon.app.engine.client', 'andon.app.tui.screens.chat', 'llama_cpp', "
        "'markdown_it', 'gguf') if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
