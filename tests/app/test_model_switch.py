"""Switching models in the app (issue 12), with a fake engine: the picker, /model, /load, the palette,
each chat's own model, a model that is gone, a load that fails, the load progress, an Ollama model's
defaults and the num_ctx warning. The models are small GGUF headers in andon's models folder and an
Ollama store in tmp_path (`andon models` lists them); the fake engine loads none of them."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from andon.app.chat.history import History
from andon.app.engine.engine import ModelLoadError
from andon.app.models import sources as model_sources
from andon.app.tui.app import AndonApp
from andon.app.tui.screens.model_picker import ModelPicker
from andon.app.tui.widgets.message_box import ChatInput, MessageBox, NoticeLine, StatusBar
from andon.presets.paths import data_dir
from andon.presets.store import PresetStore
from textual.widgets import OptionList
from textual.worker import WorkerCancelled

from tests.app.fakes import FakeEngine
from tests.app.model_stores import add_ollama_model, fake_gguf, sha256_of

SIZE = (120, 36)


class Models:
    """The fake engines made, the paths they were made for, and what loads should do."""

    def __init__(self) -> None:
        self.engines: list[FakeEngine] = []
        self.fail: set[str] = set()  # file names whose load fails
        self.gate: threading.Event | None = None  # a load waits for it (after reporting half its progress)

    def factory(self, options):
        if options.progress is not None:
            options.progress(0.0)
            options.progress(0.5)
        if self.gate is not None:
            self.gate.wait(10)
        if options.path.name in self.fail:
            raise ModelLoadError(f"could not load model {options.path}: it is damaged (test)")
        if options.progress is not None:
            options.progress(1.0)
        engine = FakeEngine(options, model_name=f"general name of {options.path.stem}")
        self.engines.append(engine)
        return engine

    @property
    def loaded(self) -> str:
        return self.engines[-1].options.path.name


@pytest.fixture
def folder(tmp_path, monkeypatch) -> Path:
    """andon's models folder with alpha.gguf and beta.gguf (headers only), and an empty Ollama store."""
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "ollama"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(model_sources, "OLLAMA_SYSTEM_STORE", tmp_path / "system-ollama")
    models = data_dir() / "models"
    fake_gguf(models / "alpha.gguf")  # its header says: trained context 1024
    fake_gguf(models / "beta.gguf")
    return models


def make_app(tmp_path: Path, models: Models, start: Path | None = None) -> AndonApp:
    return AndonApp(models.factory, start or tmp_path / "start.gguf", history=History(tmp_path / "h.sqlite3"),
                    store=PresetStore(tmp_path / "presets"))  # fmt: skip


async def ready(pilot) -> None:
    """Every worker has ended, whichever way (one cancelled by a newer one of its group is ended too)."""
    for _ in range(20):
        try:
            await pilot.app.workers.wait_for_complete()
            break
        except WorkerCancelled:
            continue
    await pilot.pause()


async def type_line(pilot, text: str) -> None:
    pilot.app.query_one(ChatInput).text = text
    await pilot.press("enter")
    await ready(pilot)
    await ready(pilot)  # what the first workers started


async def until(pilot, condition, seconds: float = 10.0) -> None:
    """Pause until `condition()` holds (a modal's worker waits for the modal: wait_for_complete would not end)."""
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await pilot.pause(0.02)
    raise AssertionError("the condition did not come true in time")


def notices(app) -> list[str]:
    return [str(n.render()) for n in app.query(NoticeLine)]


def status(app) -> str:
    return str(app.query_one(StatusBar).render())


async def test_the_picker_lists_the_models_and_switches_the_chat_to_the_one_chosen(tmp_path, folder):
    models = Models()
    app = make_app(tmp_path, models)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert models.loaded == "start.gguf"
        await pilot.press("ctrl+o")
        await until(pilot, lambda: isinstance(app.screen, ModelPicker) and app.screen.names)
        picker = app.screen
        assert isinstance(picker, ModelPicker)
        assert "alpha" in picker.names and "beta" in picker.names
        row = str(picker.query_one(OptionList).get_option_at_index(picker.names.index("alpha")).prompt)
        assert "ctx 1024" in row and "F32" in row  # its header: context and quantization
        picker.query_one(OptionList).highlighted = picker.names.index("beta")
        await pilot.press("enter")
        await until(pilot, lambda: not isinstance(app.screen, ModelPicker))
        await ready(pilot)
        assert models.loaded == "beta.gguf"
        assert "beta" in status(app) and "loading" not in status(app)
        assert any(n.startswith("Model beta loaded") for n in notices(app))
        chat_id = app.session.chat.id
    assert History(tmp_path / "h.sqlite3").chat(chat_id).model == "beta"  # the chat remembers it


async def test_each_chat_loads_its_own_model_when_opened(tmp_path, folder):
    models = Models()
    app = make_app(tmp_path, models)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await type_line(pilot, "/model alpha")
        await type_line(pilot, "hello alpha")
        first = app.session.chat
        await pilot.press("ctrl+n")
        await ready(pilot)
        assert app.session.chat.id != first.id and models.loaded == "alpha.gguf"  # a new chat: the model in use
        await type_line(pilot, "/model beta")
        await type_line(pilot, "hello beta")
        assert models.loaded == "beta.gguf"
        await app.chat_screen.open_chat(app.history.chat(first.id))
        await ready(pilot)
        assert models.loaded == "alpha.gguf" and "alpha" in status(app)
        assert [m.content for m in app.session.messages][:1] == ["hello alpha"]


async def test_a_chat_whose_model_is_gone_says_so_and_goes_on_with_the_model_in_use(tmp_path, folder):
    history = History(tmp_path / "h.sqlite3")
    chat = history.create_chat("old chat", "balanced", model="alpha")
    history.add_message(chat.id, "user", "question")
    history.add_message(chat.id, "assistant", "answer")
    history.close()
    (folder / "alpha.gguf").unlink()  # the file of the chat's model is deleted
    models = Models()
    app = make_app(tmp_path, models)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        gone = [n for n in notices(app) if "alpha" in n]
        assert len(gone) == 1 and "cannot be used" in gone[0] and "unknown model 'alpha'" in gone[0]
        assert "start" in gone[0] and "\n" not in gone[0]  # it goes on with the model andon started with
        assert [b.message.content for b in app.query(MessageBox)] == ["question", "answer"]
        assert models.loaded == "start.gguf"
        await type_line(pilot, "and now?")
        assert app.session.messages[-1].content == "Hello from the fake model."
    stored = History(tmp_path / "h.sqlite3")
    assert stored.chat(chat.id).model == "alpha"  # what the chat stored is not changed
    assert [m.content for m in stored.messages(chat.id)][:2] == ["question", "answer"]


async def test_a_load_that_fails_is_one_line_and_the_previous_model_stays_usable(tmp_path, folder):
    models = Models()
    models.fail.add("beta.gguf")
    app = make_app(tmp_path, models)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await type_line(pilot, "/model alpha")
        await type_line(pilot, "/model beta")
        error = [n for n in notices(app) if n.startswith("error:")]
        assert len(error) == 1 and "damaged (test)" in error[0] and "alpha stays in use" in error[0]
        assert "\n" not in error[0]
        assert app.host.current is not None and app.host.current.name == "alpha"
        assert "alpha" in status(app) and "not loaded" not in status(app)
        await type_line(pilot, "still there?")
        assert app.session.messages[-1].content == "Hello from the fake model."
        assert models.loaded == "alpha.gguf"
        assert app.session.chat.model == "alpha"  # the chat keeps the model it had


async def test_an_unknown_model_name_is_one_line_with_the_closest_names(tmp_path, folder):
    models = Models()
    app = make_app(tmp_path, models)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await type_line(pilot, "/model alpah")
        error = [n for n in notices(app) if n.startswith("error:")]
        assert len(error) == 1 and "unknown model 'alpah'" in error[0] and "closest: alpha" in error[0]
        assert "stays in use" not in error[0] and "\n" not in error[0]
        await type_line(pilot, "/load nothing-like-it")
        error = [n for n in notices(app) if n.startswith("error:")][-1]
        assert "'nothing-like-it' is not a preset (" in error and "balanced" in error and "nor a model" in error
        assert models.loaded == "start.gguf" and len(models.engines) == 1  # nothing was loaded


async def test_load_model_loads_it_and_load_preset_still_loads_the_preset(tmp_path, folder):
    models = Models()
    app = make_app(tmp_path, models)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await type_line(pilot, "/load alpha")
        assert models.loaded == "alpha.gguf" and app.session.chat.model == "alpha"
        await type_line(pilot, "/load creative")
        assert app.session.preset.name == "creative" and models.loaded == "alpha.gguf"


async def test_the_load_progress_shows_in_the_status_bar_and_the_app_stays_responsive(tmp_path, folder):
    models = Models()
    app = make_app(tmp_path, models)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        models.gate = threading.Event()
        app.query_one(ChatInput).text = "/model alpha"
        await pilot.press("enter")
        for _ in range(50):
            await pilot.pause(0.02)
            if "50%" in status(app):
                break
        assert "loading alpha" in status(app) and "50%" in status(app)
        await pilot.press("h", "i")  # typing goes on while the model loads
        assert app.query_one(ChatInput).text == "hi"
        models.gate.set()
        await ready(pilot)
        assert "loading" not in status(app) and "alpha" in status(app)


async def test_switching_while_a_reply_is_written_stops_it_and_keeps_it(tmp_path, folder):
    models = Models()
    app = AndonApp(lambda o: models.factory(o) if "alpha" in o.path.name else FakeEngine(o, script=["w "] * 500,
                   delay=0.01), tmp_path / "start.gguf", history=History(tmp_path / "h.sqlite3"),
                   store=PresetStore(tmp_path / "presets"))  # fmt: skip
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        app.query_one(ChatInput).text = "write a lot"
        await pilot.press("enter")
        await pilot.pause(0.3)
        await type_line(pilot, "/model alpha")
        reply = app.session.messages[-1]
        assert reply.status == "stopped" and reply.content.startswith("w ")
        assert any("stopped to switch models" in n for n in notices(app))
        assert models.loaded == "alpha.gguf"


async def test_the_command_palette_has_a_model_entry_for_each_model(tmp_path, folder):
    models = Models()
    app = make_app(tmp_path, models)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Model: beta")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await until(pilot, lambda: models.loaded == "beta.gguf")
        await ready(pilot)
        assert models.loaded == "beta.gguf" and app.session.chat.model == "beta"


@pytest.fixture
def ollama_model(tmp_path, folder) -> str:
    """An Ollama model whose params and system layers are its defaults (one parameter unknown to andon)."""
    blob = tmp_path / "blob.gguf"
    fake_gguf(blob)
    params = {"temperature": 0.25, "stop": ["<end>"], "mirostat_mode": 9}
    add_ollama_model(tmp_path / "ollama", "registry.ollama.ai/library/mario:latest", blob, sha256_of(blob), params,
                     "You are Mario from Super Mario Bros.")  # fmt: skip
    return "mario:latest"


async def test_an_ollama_models_defaults_are_the_chats_and_unknown_ones_are_said_once(tmp_path, ollama_model):
    models = Models()
    app = make_app(tmp_path, models)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await type_line(pilot, "/set parameter top_k 7")
        await type_line(pilot, f"/model {ollama_model}")
        session = app.session
        assert session.params.temperature == 0.25 and "<end>" in session.params.stop
        assert session.params.top_k == 7  # the chat's own change stays
        assert session.system == "You are Mario from Super Mario Bros."
        await type_line(pilot, "hello")
        messages, params = models.engines[-1].calls[-1]
        assert messages[0] == {"role": "system", "content": "You are Mario from Super Mario Bros."}
        assert params.temperature == 0.25
        unknown = [n for n in notices(app) if "mirostat_mode" in n]
        assert len(unknown) == 1 and unknown[0].startswith("warning: mario:latest:")
        await type_line(pilot, "/model beta")  # another model: its defaults go, the chat's change stays
        assert app.session.params.temperature == 0.8 and app.session.params.top_k == 7
        await type_line(pilot, f"/model {ollama_model}")
        assert len([n for n in notices(app) if "mirostat_mode" in n]) == 1  # said once


async def test_num_ctx_past_the_trained_context_is_warned_once(tmp_path, folder):
    models = Models()
    app = make_app(tmp_path, models)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await type_line(pilot, "/model alpha")  # trained on 1024 tokens; num_ctx is 4096
        warned = [n for n in notices(app) if "above the 1024 tokens" in n]
        assert len(warned) == 1 and "num_ctx 4096" in warned[0] and "alpha" in warned[0]
        await type_line(pilot, "/set parameter num_ctx 2048")
        await type_line(pilot, "/set parameter temperature 0.5")
        warned = [n for n in notices(app) if "above the 1024 tokens" in n]
        assert len(warned) == 2 and "num_ctx 2048" in warned[1]  # the new value once; nothing for temperature
        await type_line(pilot, "/set parameter num_ctx 1024")
        assert len([n for n in notices(app) if "above the 1024 tokens" in n]) == 2


async def test_started_with_a_model_andon_opens_a_new_chat_on_it(tmp_path, folder):
    history = History(tmp_path / "h.sqlite3")
    old = history.create_chat("old chat", "balanced", model="beta")
    history.add_message(old.id, "user", "hi")
    history.close()
    models = Models()
    app = AndonApp(models.factory, folder / "alpha.gguf", history=History(tmp_path / "h.sqlite3"),
                   store=PresetStore(tmp_path / "presets"), model="alpha")  # fmt: skip
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert app.session.chat.id != old.id and models.loaded == "alpha.gguf"
        assert app.session.chat.model == "alpha" and "alpha" in status(app)


async def test_after_a_switch_the_status_bar_shows_the_new_models_figures_not_the_old_ones(tmp_path, folder):
    models = Models()
    app = make_app(tmp_path, models)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await type_line(pilot, "hello there")
        assert "– tok/s" not in status(app)  # the reply's rate
        await type_line(pilot, "/model beta")
        await ready(pilot)
        assert models.loaded == "beta.gguf"
        counted = len(models.engines[-1].chat_tokens(app.session.engine_messages()))
        assert "– tok/s" in status(app)  # no reply of beta's yet
        assert f"context {counted}/" in status(app)  # counted by beta's tokenizer
