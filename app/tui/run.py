"""Start the chat app with the real llama.cpp engine."""

from __future__ import annotations

from andon.app.engine import Engine, ModelOptions
from andon.app.model_files import embedded_model_path
from andon.app.models import find_model


def run_app(model: str | None = None, preset: str | None = None, verbose: bool = False, rpc: str | None = None) -> int:
    from andon.app.rpc import use
    from andon.app.tui.app import AndonApp
    from andon.presets.parameters import ALL_SPECS
    from andon.presets.store import PresetStore

    if preset is not None:
        PresetStore().load(preset)  # an unknown preset is one clear line before the app starts
    # so are a malformed host:port, a build without RPC and a server that does not answer
    servers: tuple[str, ...] = use(ALL_SPECS["rpc"].parse(rpc)) if rpc else ()

    def factory(options: ModelOptions) -> Engine:
        return Engine(options)

    # a name from `andon models`, an Ollama name or a path; an unknown one is one line before the app starts
    path = find_model(model).load_path() if model else embedded_model_path
    app = AndonApp(factory, path, preset=preset, verbose=verbose, rpc=servers, model=model or "")
    try:
        app.run()
    finally:
        app.history.close()  # this andon's claims on chats end with it (a later andon need not wait)
    return app.return_code or 0  # non-zero when it ended on an error or a signal (128 + its number)
