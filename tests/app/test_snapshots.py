"""Snapshots of the main screens (pytest-textual-snapshot). Update with --snapshot-update."""

from __future__ import annotations

from pathlib import Path

import pytest
from andon.app.chat.history import History
from andon.app.tui.app import AndonApp
from andon.app.tui.widgets import chat_list
from andon.presets.store import PresetStore

from tests.app.fakes import FakeEngine

SIZE = (110, 34)


@pytest.fixture(autouse=True)
def _fixed_dates(monkeypatch):
    """The chat list says when each chat was used ("today 14:02"): the same words in every run."""
    monkeypatch.setattr(chat_list, "when", lambda updated, now: "today 14:02")


def seeded_app(tmp_path: Path) -> AndonApp:
    history = History(tmp_path / "h.sqlite3")
    chat = history.create_chat("Capitals", "factual")
    history.add_message(chat.id, "user", "What is the capital of Japan?")
    history.add_message(chat.id, "assistant", "The capital of Japan is **Tokyo**.\n\n```python\nprint('Tokyo')\n```")
    history.create_chat("Dragon story", "creative")
    return AndonApp(lambda o: FakeEngine(o), Path("/models/fake.gguf"), history=history,
                    store=PresetStore(tmp_path / "presets"))  # fmt: skip


async def _settle(pilot) -> None:
    await pilot.pause()  # the chat screen has composed
    pilot.app.query_one("#input").cursor_blink = False  # a blinking cursor makes two screens differ
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def test_chat_screen(snap_compare, tmp_path):
    assert snap_compare(seeded_app(tmp_path), terminal_size=SIZE, run_before=_settle)


def test_parameter_panel(snap_compare, tmp_path):
    async def open_panel(pilot):
        await _settle(pilot)
        await pilot.press("f4")
        await pilot.pause()
        await pilot.pause()  # the first field takes the focus after the panel's refresh: its help shows
        if hasattr(pilot.app.focused, "cursor_blink"):
            pilot.app.focused.cursor_blink = False  # its blinking cursor made one run in three differ
            await pilot.pause()

    assert snap_compare(seeded_app(tmp_path), terminal_size=SIZE, run_before=open_panel)


def test_preset_picker(snap_compare, tmp_path):
    async def pick(pilot):
        await _settle(pilot)
        await pilot.press("f3")
        await pilot.pause()

    assert snap_compare(seeded_app(tmp_path), terminal_size=SIZE, run_before=pick)


def test_help_and_streamed_reply(snap_compare, tmp_path):
    async def chat(pilot):
        await _settle(pilot)
        pilot.app.query_one("#input").text = "Hello"
        await pilot.press("enter")
        await _settle(pilot)
        pilot.app.query_one("#input").text = "/help"
        await pilot.press("enter")
        await pilot.pause()

    assert snap_compare(seeded_app(tmp_path), terminal_size=SIZE, run_before=chat)


# --- 80x24: everything reads on the smallest terminal andon is made for ---------------------

SMALL = (80, 24)


def narrow_app(tmp_path: Path) -> AndonApp:
    """A chat whose last reply was cut at num_predict (its header is the longest) and is a poem."""
    history = History(tmp_path / "h.sqlite3")
    chat = history.create_chat("Poem", "balanced")
    history.add_message(chat.id, "user", "A poem about the sea, please")
    reply = history.add_message(chat.id, "assistant", "The sea is wide,\nthe sea is deep,\nits waves roll in")
    history.update_message(reply.id, reply.content, "complete", {"completion_tokens": 12, "tokens_per_second": 31.4,
                                                                 "finish_reason": "length"})  # fmt: skip
    return AndonApp(lambda o: FakeEngine(o), Path("/models/fake.gguf"), history=history,
                    store=PresetStore(tmp_path / "presets"))  # fmt: skip


def typed(*lines: str):
    async def run(pilot):
        await _settle(pilot)
        for line in lines:
            pilot.app.query_one("#input").text = line
            await pilot.press("enter")
            await _settle(pilot)

    return run


def test_80x24_reply_header_and_poem(snap_compare, tmp_path):
    assert snap_compare(narrow_app(tmp_path), terminal_size=SMALL, run_before=_settle)


def test_80x24_parameter_panel(snap_compare, tmp_path):
    async def open_panel(pilot):
        await _settle(pilot)
        await pilot.press("f4")
        await pilot.pause()
        await pilot.pause()
        if hasattr(pilot.app.focused, "cursor_blink"):
            pilot.app.focused.cursor_blink = False
            await pilot.pause()

    assert snap_compare(narrow_app(tmp_path), terminal_size=SMALL, run_before=open_panel)


def test_80x24_help(snap_compare, tmp_path):
    assert snap_compare(narrow_app(tmp_path), terminal_size=SMALL, run_before=typed("/help"))


def test_80x24_show_modelfile(snap_compare, tmp_path):
    assert snap_compare(narrow_app(tmp_path), terminal_size=SMALL, run_before=typed("/show modelfile"))


def test_80x24_toast(snap_compare, tmp_path):
    async def toast(pilot):
        await _settle(pilot)
        pilot.app.notify("Preset 'precise' applies from the next reply", title="Preset", timeout=60)
        await pilot.pause(0.3)

    assert snap_compare(narrow_app(tmp_path), terminal_size=SMALL, run_before=toast)


def test_140x40_parameter_panel(snap_compare, tmp_path):
    async def open_panel(pilot):
        await _settle(pilot)
        await pilot.press("f4")
        await pilot.pause()
        await pilot.pause()
        if hasattr(pilot.app.focused, "cursor_blink"):
            pilot.app.focused.cursor_blink = False
            await pilot.pause()

    assert snap_compare(narrow_app(tmp_path), terminal_size=(140, 40), run_before=open_panel)
