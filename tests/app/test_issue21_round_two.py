"""What the acceptance check of issue 21 (the first hour, round two) found, each through Pilot at 80x24:
a chat started with Ctrl+N keeps the model it runs on; PgUp/PgDn in the message box scroll the chat;
and the small ones (the preset list's model, the welcome line after a switch, a continued reply's
header, num_ctx's suggestion, an empty stopped reply, search snippets)."""

from __future__ import annotations

from pathlib import Path

from andon.app.chat.history import History
from andon.app.cli.main import main
from andon.app.engine import loading
from andon.app.tui.app import AndonApp
from andon.app.tui.screens.dialogs import PresetPicker
from andon.app.tui.widgets.chat_list import ChatItem
from andon.app.tui.widgets.message_box import ChatInput, NoticeLine
from andon.presets.modelfile import parse_modelfile
from andon.presets.store import PresetStore
from textual.widgets import OptionList

from tests.app import test_model_switch as switching
from tests.app.fakes import FakeEngine, seeded_history
from tests.app.test_history_replies import header, reply_box
from tests.app.test_model_switch import Models, notices, ready, status, type_line, until
from tests.app.test_tui import make_app, send

folder, ollama_model = switching.folder, switching.ollama_model  # their fixtures, used here too

SIZE = (80, 24)


def _app(tmp_path, models: Models) -> AndonApp:
    return AndonApp(models.factory, tmp_path / "start.gguf", history=History(tmp_path / "h.sqlite3"),
                    store=PresetStore(tmp_path / "presets"))  # fmt: skip


async def test_a_chat_started_with_ctrl_n_on_an_ollama_model_is_reopened_on_it(tmp_path, ollama_model):
    models = Models()
    app = _app(tmp_path, models)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await type_line(pilot, f"/model {ollama_model}")
        await type_line(pilot, "hello")
        await pilot.press("ctrl+n")
        await ready(pilot)
        await type_line(pilot, "a question in the new chat")
        new = app.session.chat.id
    assert History(tmp_path / "h.sqlite3").chat(new).model == ollama_model  # stored, not ''
    models = Models()
    app = _app(tmp_path, models)  # andon opened again: the chat last viewed, on its model
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert app.session.chat.id == new
        assert models.loaded.startswith("sha256-") and "mario" in status(app)


def _fake_app(tmp_path, history: History) -> AndonApp:
    return AndonApp(lambda options: FakeEngine(options), Path("/models/fake.gguf"), history=history,
                    store=PresetStore(tmp_path / "presets"))  # fmt: skip


async def test_pgup_pgdn_and_ctrl_home_end_in_the_message_box_scroll_the_chat(tmp_path):
    app = _fake_app(tmp_path, seeded_history(tmp_path / "h.sqlite3", turns=8))
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        view, box = app.chat_screen.view, app.query_one(ChatInput)
        assert box.has_focus and view.max_scroll_y > 0 and view.scroll_y == view.max_scroll_y  # at the end
        await pilot.press("pageup")
        await pilot.pause()
        assert view.scroll_y < view.max_scroll_y and box.has_focus  # up a page; typing still goes to the box
        await pilot.press("ctrl+home")
        await pilot.pause()
        assert view.scroll_y == 0
        await pilot.press("pagedown")
        await pilot.pause()
        assert view.scroll_y > 0
        await pilot.press("ctrl+end")
        await pilot.pause()
        assert view.scroll_y == view.max_scroll_y
        box.text = "\n".join(f"line {i}" for i in range(30))  # taller than the box: PgUp is the box's own
        box.move_cursor(box.document.end)
        await pilot.pause()
        assert box.max_scroll_y > 0
        before = view.scroll_y
        await pilot.press("pageup")
        await pilot.pause()
        assert view.scroll_y == before and box.cursor_location[0] < 29  # the box's cursor went up a page
        await pilot.press("f1")  # /help names the keys
        await pilot.pause()
        assert "PgUp / PgDn scroll the chat" in " ".join(str(n.render()) for n in app.query(NoticeLine))


def test_presets_show_lists_the_example_exchange_and_notes_a_kept_template(tmp_path, capsys):
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text('SYSTEM You are Mario.\nTEMPLATE """{{ .System }} {{ .Prompt }}"""\n'
                         "MESSAGE user Who are you?\nMESSAGE assistant It's-a me, Mario!\n")  # fmt: skip
    assert main(["presets", "import", str(modelfile), "--name", "mario"]) == 0
    capsys.readouterr()
    assert main(["presets", "show", "mario"]) == 0
    out = capsys.readouterr().out
    exchange = out.split("example exchange")[1]
    assert "  user: Who are you?\n  assistant: It's-a me, Mario!\n" in exchange
    assert "template\n  TEMPLATE (Ollama's Go template) is kept for export, not used" in out
    assert max(len(line) for line in out.splitlines()) <= 80


MARIO = "FROM alpha\nPARAMETER temperature 0.2\nSYSTEM You are Mario.\n"


async def test_f3_names_a_presets_model_and_the_welcome_follows_a_switch(tmp_path, folder):
    PresetStore(tmp_path / "presets").save(parse_modelfile(MARIO).to_preset("mario"))
    models = Models()
    app = _app(tmp_path, models)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        welcome = app.query(NoticeLine).first()
        assert "of start · preset balanced" in str(welcome.render())
        await pilot.press("f3")
        await until(pilot, lambda: isinstance(app.screen, PresetPicker))
        picker = app.screen.query_one(OptionList)
        row = str(picker.get_option_at_index(app.screen.names.index("mario")).prompt)
        assert "model alpha · Imported from an Ollama Modelfile." in row
        await pilot.press("escape")
        await type_line(pilot, "/load mario")
        await ready(pilot)
        assert models.loaded == "alpha.gguf"
        assert app.query(NoticeLine).first() is welcome  # the same line at the top, now naming the new ones
        assert "model alpha · preset mario" in str(welcome.render())


async def test_a_continued_reply_that_ended_by_itself_is_not_said_cut_and_counts_all_its_tokens(tmp_path):
    app, engines = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "/set parameter num_predict 2")
        await send(pilot, "Say hello.")
        assert "cut at num_predict 2" in header(app)
        await send(pilot, "/set parameter num_predict -1")
        engines[-1].script = [" the", " fake", " model."]
        await pilot.press("ctrl+g")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert reply_box(app).message.content == "Hello from the fake model."
        assert "cut" not in header(app) and "5 tokens" in header(app)  # the 2 before and the 3 written now


async def test_a_continued_reply_cut_again_is_said_cut_at_num_predict_not_at_its_whole_count(tmp_path):
    app, engines = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "/set parameter num_predict 2")
        await send(pilot, "Say hello.")
        engines[-1].script = [" the", " fake", " model."]
        await pilot.press("ctrl+g")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert reply_box(app).message.content == "Hello from the fake"
        assert "4 tokens" in header(app) and "cut at num_predict 2" in header(app)


async def test_num_ctx_refused_for_memory_suggests_no_more_than_the_trained_context(tmp_path, folder, monkeypatch):
    monkeypatch.setattr(loading, "available_memory", lambda: 10 << 20)  # about 18000 tokens of alpha's fit
    models = Models()
    app = _app(tmp_path, models)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await type_line(pilot, "/model alpha")  # trained on 1024 tokens
        await type_line(pilot, "/set parameter num_ctx 100000")
        said = notices(app)[-1]
        assert "lower num_ctx (at most 1024, the context it was trained on)" in said and "would fit" not in said
        assert app.session.params.num_ctx != 100000  # refused, nothing changed


async def test_a_reply_stopped_before_any_text_says_so_instead_of_an_empty_message(tmp_path):
    app, _ = make_app(tmp_path, script=["", "", "word"], delay=0.3)  # no text before the stop
    async with app.run_test(size=SIZE) as pilot:
        app.query_one(ChatInput).text = "Say words."
        await pilot.press("enter")
        await pilot.pause(0.1)
        await pilot.press("escape")  # before the first token
        await app.chat_screen.view.stop_reply()  # until the reply thread has saved it
        await pilot.pause()
        box = reply_box(app)
        assert box.message.status == "stopped" and box.message.content == ""  # stored as it is
        assert "(stopped before any text)" in str(box.body.source) and "stopped" in header(app)
    app, _ = make_app(tmp_path)  # reopened: the same
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "(stopped before any text)" in str(reply_box(app).body.source)


async def test_chat_search_results_show_the_text_found(tmp_path):
    history = History(tmp_path / "h.sqlite3")
    chat = history.create_chat("Birds", "balanced")
    history.add_message(chat.id, "user", "Tell me about birds.")
    history.add_message(chat.id, "assistant", "Many birds fly far. Emperor penguins live on the sea ice of Antarctica.")
    history.create_chat("Penguins by title", "balanced")  # the title matches: no text to show
    history.close()
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+f", *"PENGUINS")
        await pilot.pause(0.5)
        items = {item.chat.title: item for item in app.query(ChatItem)}
        assert set(items) == {"Birds", "Penguins by title"}
        [found] = items["Birds"].query(".chat-snippet")
        assert str(found.render()) == "…far. Emperor penguins live on the sea ice of Antarctica."
        assert found.region.width > 0 and not items["Penguins by title"].query(".chat-snippet")
