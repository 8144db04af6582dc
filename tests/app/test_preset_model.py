"""A preset's model in the app (issue 21): a preset made for a model (a Modelfile's FROM) and its
load-time parameters are used by `andon --preset NAME`, `/load NAME`, `/preset NAME` and F3, as
`andon ask --preset NAME` and `ollama run NAME` use them; a preset without a model keeps the model
in use; a preset whose model cannot be found is one line and the model stays. The preset's example
exchange (Modelfile MESSAGE lines) goes before the chat's messages. 80x24, a fake engine, models as
GGUF headers in andon's models folder (see test_model_switch)."""

from __future__ import annotations

from pathlib import Path

import pytest
from andon.app.chat.history import History
from andon.app.tui.app import AndonApp
from andon.app.tui.screens.dialogs import PresetPicker
from andon.presets.modelfile import parse_modelfile
from andon.presets.parameters import Parameters
from andon.presets.preset import Preset
from andon.presets.store import PresetStore
from textual.widgets import OptionList

from tests.app.test_model_switch import Models, folder, notices, ready, status, type_line, until  # noqa: F401

pytestmark = pytest.mark.usefixtures("folder")  # alpha.gguf and beta.gguf in andon's models folder
SIZE = (80, 24)
MARIO = """FROM {model}
PARAMETER num_ctx 2048
PARAMETER temperature 0.2
SYSTEM You are Mario from Super Mario Bros.
MESSAGE user Who are you?
MESSAGE assistant It's-a me, Mario!
"""


def save_preset(tmp_path: Path, name: str, modelfile: str) -> Preset:
    """A preset imported from a Modelfile (FROM kept as written: the app resolves it when used)."""
    preset = parse_modelfile(modelfile).to_preset(name)
    PresetStore(tmp_path / "presets").save(preset)
    return preset


def make_app(tmp_path: Path, models: Models, **options) -> AndonApp:
    return AndonApp(models.factory, tmp_path / "start.gguf", history=History(tmp_path / "h.sqlite3"),
                    store=PresetStore(tmp_path / "presets"), **options)  # fmt: skip


def errors(app) -> list[str]:
    return [n for n in notices(app) if n.startswith("error:")]


async def test_started_with_a_preset_the_chat_runs_on_its_model_and_context(tmp_path):
    save_preset(tmp_path, "mario", MARIO.format(model="alpha"))
    models = Models()
    app = make_app(tmp_path, models, preset="mario")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert models.loaded == "alpha.gguf" and len(models.engines) == 1  # never the start model first
        assert models.engines[-1].options.num_ctx == 2048
        assert "alpha" in status(app) and app.session.chat.model == "alpha"  # the chat keeps its model


async def test_load_preset_switches_to_its_model_with_the_progress_shown(tmp_path):
    save_preset(tmp_path, "mario", MARIO.format(model="alpha"))
    models = Models()
    app = make_app(tmp_path, models)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert models.loaded == "start.gguf"
        await type_line(pilot, "/load mario")
        await ready(pilot)
        assert app.session.preset.name == "mario" and models.loaded == "alpha.gguf"
        assert models.engines[-1].options.num_ctx == 2048
        assert any(n.startswith("Model alpha loaded") for n in notices(app))
        assert app.session.chat.model == "alpha" and "alpha" in status(app)
        await type_line(pilot, "/load balanced")  # a preset made for no model keeps the model in use
        await ready(pilot)
        assert app.session.preset.name == "balanced" and models.loaded == "alpha.gguf"


async def test_picking_a_preset_with_f3_switches_the_model_too(tmp_path):
    save_preset(tmp_path, "mario", MARIO.format(model="beta"))
    models = Models()
    app = make_app(tmp_path, models)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("f3")
        await until(pilot, lambda: isinstance(app.screen, PresetPicker))
        picker = app.screen
        picker.query_one(OptionList).highlighted = picker.names.index("mario")
        await pilot.press("enter")
        await until(pilot, lambda: models.loaded == "beta.gguf")
        await ready(pilot)
        assert app.session.preset.name == "mario" and app.session.chat.model == "beta"
        assert "beta" in status(app)


async def test_a_presets_model_that_cannot_be_found_is_one_line_and_the_model_stays(tmp_path):
    save_preset(tmp_path, "mario", MARIO.format(model="smollm2:135m"))  # not in any model store here
    models = Models()
    app = make_app(tmp_path, models)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await type_line(pilot, "/load mario")
        await ready(pilot)
        line = errors(app)[-1]
        assert "preset 'mario' is made for the model 'smollm2:135m', which cannot be used" in line
        assert line.endswith("start.gguf stays in use.") and "\n" not in line
        assert models.loaded == "start.gguf" and len(models.engines) == 1 and app.session.chat.model != "smollm2:135m"


async def test_started_with_a_preset_whose_model_is_gone_the_app_goes_on_with_the_start_model(tmp_path):
    save_preset(tmp_path, "mario", MARIO.format(model="smollm2:135m"))
    models = Models()
    app = make_app(tmp_path, models, preset="mario")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert models.loaded == "start.gguf" and app.session.preset.name == "mario"
        (line,) = errors(app)
        assert "preset 'mario' is made for the model 'smollm2:135m'" in line and "start.gguf stays in use" in line


async def test_model_on_the_command_line_wins_over_the_presets_as_in_ask(tmp_path):
    save_preset(tmp_path, "mario", MARIO.format(model="alpha"))
    models = Models()
    app = make_app(tmp_path, models, preset="mario", model="beta")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert models.loaded == "beta.gguf" and models.engines[-1].options.num_ctx == 2048


async def test_the_presets_example_exchange_goes_before_the_chat_after_the_system_prompt(tmp_path):
    save_preset(tmp_path, "mario", MARIO.format(model="alpha"))
    models = Models()
    app = make_app(tmp_path, models, preset="mario")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await type_line(pilot, "Hello")
        messages, params = models.engines[-1].calls[-1]
        assert [(m["role"], m["content"]) for m in messages] == [
            ("system", "You are Mario from Super Mario Bros."),
            ("user", "Who are you?"),
            ("assistant", "It's-a me, Mario!"),
            ("user", "Hello"),
        ]
        assert params.temperature == 0.2
        await type_line(pilot, "/show modelfile")
        shown = notices(app)[-1]
        assert "MESSAGE user Who are you?\nMESSAGE assistant It's-a me, Mario!" in shown


async def test_a_go_template_is_said_unused_once_in_one_line(tmp_path):
    save_preset(tmp_path, "tpl", 'FROM alpha\nTEMPLATE """{{ .System }} {{ .Prompt }}"""\n')
    models = Models()
    app = make_app(tmp_path, models)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await type_line(pilot, "/load tpl")
        await type_line(pilot, "/load balanced")
        await type_line(pilot, "/load tpl")
        said = [n for n in notices(app) if "TEMPLATE" in n]
        assert len(said) == 1 and "\n" not in said[0] and "model's own chat template" in said[0]


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ("/set parameter num_keep 4", "num_keep is an Ollama parameter andon does not implement"),
        ("/set parameter use_mmap false", "use_mmap is an Ollama parameter andon does not implement"),
        ("/set parameter temprature 1", "did you mean temperature? (`/set parameter` lists them all)"),
        ("/set parameter flavour 1", "see `/set parameter` for the names"),
    ],
)
async def test_set_parameter_names_what_andon_lacks_and_points_to_the_listing(tmp_path, line, said):
    models = Models()
    app = make_app(tmp_path, models)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await type_line(pilot, line)
        (error,) = errors(app)
        assert said in error and "\n" not in error and "min_keep" not in error
        assert app.session.changes == {}


async def test_set_parameter_alone_lists_every_parameter_with_its_value_in_80_columns(tmp_path):
    models = Models()
    app = make_app(tmp_path, models)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await type_line(pilot, "/set parameter top_k 7")
        await type_line(pilot, "/set parameter")
        listing = notices(app)[-1].splitlines()
        print(listing)
        assert all(len(row) <= 76 for row in listing)
        rows = " ".join(listing)
        for name in Parameters.of({}).to_plain():
            assert f" {name} " in f" {rows} "
        assert "top_k                 7 " in rows and "num_ctx               4096" in rows


async def test_a_num_ctx_that_cannot_fit_in_memory_is_refused_when_set(tmp_path, monkeypatch):
    from andon.app.engine import loading

    monkeypatch.setattr(loading, "available_memory", lambda: 1 << 30)  # 1 GiB available
    models = Models()
    app = make_app(tmp_path, models)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await type_line(pilot, "/model alpha")
        await type_line(pilot, "/set parameter num_ctx 16000000")
        (error,) = errors(app)
        assert error.startswith("error: num_ctx 16000000 needs about") and "lower num_ctx" in error
        assert app.session.params.num_ctx == 4096 and app.session.changes == {}


def test_andon_ask_sends_the_presets_example_exchange_after_the_system_prompt(tmp_path):
    """`andon ask --preset mario` (and `andon inspect`) take their messages from these settings."""
    from andon.app.chat.settings import resolve_settings

    save_preset(tmp_path, "mario", MARIO.format(model="alpha"))
    settings = resolve_settings("mario", store=PresetStore(tmp_path / "presets"))
    assert settings.model_path.name == "alpha.gguf" and settings.params.num_ctx == 2048
    assert [(m["role"], m["content"]) for m in settings.messages("Hello")] == [
        ("system", "You are Mario from Super Mario Bros."),
        ("user", "Who are you?"),
        ("assistant", "It's-a me, Mario!"),
        ("user", "Hello"),
    ]
