"""Start the chat app with the real llama.cpp engine."""

from __future__ import annotations

from andon.app.engine import Engine, ModelOptions
from andon.app.model_files import embedded_model_path
from andon.app.models import find_model


def run_app(model: str | None = None, preset: str | None = None, verbose: bool = False) -> int:
    from andon.app.tui.app import AndonApp
    from andon.presets.store import PresetStore

    if preset is not None:
        PresetStore().load(preset)  # an unknown preset is one clear line before the app starts

    def factory(options: ModelOptions) -> Engine:
        return Engine(options)

    # a name from `andon models`, an Ollama name or a path; an unknown one is one line before the app starts
    path = find_model(model).load_path() if model else embedded_model_path
    app = AndonApp(factory, path, preset=preset, verbose=verbose)
    app.run()
    return app.return_code or 0  # non-zero when it ended on an error or a signal (128 + its number)
