"""The reply as written, and the app at 80x24: a model's line breaks kept, a JSON reply indented,
/help and /show modelfile wrapped where they read, the reply header never cut, the panels and
the toasts leaving the chat readable."""

from __future__ import annotations

from pathlib import Path

from andon.app.chat.history import History
from andon.app.chat.slash import HELP
from andon.app.tui.app import AndonApp
from andon.app.tui.keys import help_keys
from andon.app.tui.widgets.message_box import ChatInput, MessageBox, NoticeLine
from andon.app.tui.widgets.wrapping import fields, hang
from andon.presets.store import PresetStore
from textual.geometry import Region
from textual.widgets._toast import Toast

from tests.app.fakes import FakeEngine

SIZE = (80, 24)
POEM = ["The sea is wide,\n", "the sea is deep,\n", "its waves roll in\n", "and never sleep."]


def make_app(tmp_path: Path, script: list[str], stored: str = "") -> AndonApp:
    history = History(tmp_path / "h.sqlite3")
    chat = history.create_chat("Poems", "balanced")
    if stored:
        history.add_message(chat.id, "user", "Give me JSON")
        history.add_message(chat.id, "assistant", stored)
    return AndonApp(lambda o: FakeEngine(o, script=script), Path("/models/fake.gguf"), history=history,
                    store=PresetStore(tmp_path / "presets"))  # fmt: skip


def rows(app) -> list[str]:
    """The screen as the user sees it, row by row."""
    strips = app.screen._compositor.render_strips()
    return ["".join(s.text for s in strips[y]).rstrip() for y in range(SIZE[1])]


def lines_of(widget) -> list[str]:
    """A widget's rows as drawn (all of them, also those scrolled out of view)."""
    return [s.text.rstrip() for s in widget.render_lines(Region(0, 0, widget.size.width, widget.size.height))]


async def send(pilot, text: str) -> None:
    pilot.app.query_one(ChatInput).text = text
    await pilot.press("enter")
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.pause()


async def test_a_poems_lines_are_on_separate_rows_as_the_model_wrote_them(tmp_path):
    async with make_app(tmp_path, POEM).run_test(size=SIZE) as pilot:
        await pilot.pause()
        await send(pilot, "A poem, please")
        shown = rows(pilot.app)
        for line in ("The sea is wide,", "the sea is deep,", "its waves roll in", "and never sleep."):
            assert any(row.strip() == line for row in shown), shown


async def test_a_json_reply_streams_and_ends_as_indented_json(tmp_path):
    reply = ['{"city": "Tokyo", ', '"facts": ["capital", "large"]}']
    async with make_app(tmp_path, reply).run_test(size=SIZE) as pilot:
        await pilot.pause()
        await send(pilot, "/set format json")
        await send(pilot, "Tokyo as JSON")
        shown = [row.strip() for row in rows(pilot.app)]
        assert '"city": "Tokyo",' in shown and '"facts": [' in shown and '"capital",' in shown, shown
        assert pilot.app.query(MessageBox).last().message.content == "".join(reply)  # stored as written


async def test_a_stored_json_reply_is_shown_indented(tmp_path):
    async with make_app(tmp_path, POEM, stored='{"a": 1, "b": {"c": [1, 2]}}').run_test(size=SIZE) as pilot:
        await pilot.pause()
        shown = rows(pilot.app)
        assert any(row.strip() == '"a": 1,' for row in shown) and any(row.strip() == '"c": [' for row in shown)


async def test_the_reply_header_at_80_columns_breaks_between_its_fields(tmp_path):
    async with make_app(tmp_path, ["word "] * 30).run_test(size=SIZE) as pilot:
        await pilot.pause()
        await send(pilot, "/set parameter num_predict 12")
        await send(pilot, "Talk")
        header = lines_of(pilot.app.query(MessageBox).last().header)
        assert header[0].startswith("Assistant · 12 tokens") and header[-1].endswith("(finish reason: length)")
        assert all(len(line) <= 76 for line in header)


async def test_help_at_80_columns_never_wraps_inside_an_entry(tmp_path):
    async with make_app(tmp_path, POEM).run_test(size=SIZE) as pilot:
        await pilot.pause()
        await send(pilot, "/help")
        shown = lines_of(pilot.app.query(NoticeLine).last())
        commands = [line for line in HELP.splitlines() if line.startswith("  /")]
        for line in shown:  # a command, a description going on under its column, a row of keys, a title
            assert line.startswith(("  /", " " * 30, "  ", "Available", "Keys:")) or not line, line
        assert sum(line.startswith("  /") for line in shown) == len(commands)
        for entry in ("F7 copy any message or code block", "Ctrl+P command palette (every action)"):
            assert any(entry in line for line in shown)  # each key's entry whole, on one row


async def test_show_modelfile_keeps_the_hash_on_each_line_of_a_long_comment(tmp_path):
    async with make_app(tmp_path, POEM).run_test(size=SIZE) as pilot:
        await pilot.pause()
        await send(pilot, "/show modelfile")
        shown = lines_of(pilot.app.query(NoticeLine).last())
        assert shown[0].startswith("#") and len(shown) > len(
            str(pilot.app.query(NoticeLine).last().render()).split("\n")
        )
        comment = [line for line in shown if line.startswith("#")]
        assert len(comment) >= 3 and all(len(line) <= 76 for line in shown)
        assert not any(line and line[0] not in '#FPSA"' for line in shown), shown  # no comment's words at the edge


async def test_the_parameter_panel_at_80_columns_leaves_the_chat_half(tmp_path):
    async with make_app(tmp_path, POEM).run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("f4")
        await pilot.pause()
        assert pilot.app.query_one("#conversation").size.width >= 38
        assert pilot.app.query_one("#parameters").size.width >= 38


async def test_a_toast_stays_above_the_message_box(tmp_path):
    async with make_app(tmp_path, POEM).run_test(size=SIZE, notifications=True) as pilot:
        await pilot.pause()
        pilot.app.notify("Preset 'precise' applies from the next reply", title="Preset")
        await pilot.pause(0.3)
        toast = pilot.app.screen.query_one(Toast)
        assert toast.region.bottom <= pilot.app.query_one(ChatInput).region.y


def test_wrapping_keeps_each_entry_readable():
    assert all(len(line) <= 60 for line in hang(f"{HELP}\n\n{help_keys()}", 60).splitlines())
    assert hang("  /clear    Clear this chat's messages (a copy is kept)", 40).splitlines() == [
        "  /clear    Clear this chat's messages",
        "            (a copy is kept)",
    ]
    assert hang("# one two three four five six seven eight nine", 24).splitlines() == [
        "# one two three four",
        "# five six seven eight",
        "# nine",
    ]
    assert fields("Assistant · 20 tokens, 9.1 tok/s · cut at num_predict 20 (finish reason: length)", 50) == (
        "Assistant · 20 tokens, 9.1 tok/s\n· cut at num_predict 20 (finish reason: length)"
    )
