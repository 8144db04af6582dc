"""Start the chat app with the real llama.cpp engine, in a process of its own (app/engine/client.py)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from andon.presets.paths import preset_file_named

if TYPE_CHECKING:
    from andon.app.engine.client import EngineLike
    from andon.app.engine.loading import ModelOptions
    from andon.app.tui.app import AndonApp


def run_app(
    model: str | None = None,
    preset: str | None = None,
    verbose: bool = False,
    rpc: str | None = None,
    server: str | None = None,
) -> int:
    from andon.app.tui.app import AndonApp

    if preset is not None and not preset_file_named(preset):
        from andon.presets.store import PresetStore

        PresetStore().load(preset)  # an unknown preset is one clear line before the app starts
    servers: tuple[str, ...] = ()
    if rpc:  # so are a malformed host:port, a build without RPC and a server that does not answer
        from andon.app.engine.rpc import use
        from andon.presets.parameters import ALL_SPECS

        servers = use(ALL_SPECS["rpc"].parse(rpc))

    def own_engine(options: ModelOptions) -> EngineLike:  # the engine in a process of its own
        from andon.app.engine.client import EngineProcess

        return EngineProcess(options, show_log=False)  # llama.cpp's log would write over the screen

    factory: Callable[[ModelOptions], EngineLike] = own_engine
    if server is not None:
        if rpc:
            from andon.app.errors import UsageError

            raise UsageError("--rpc: not with --server (the server's machine chooses its RPC servers)")
        factory = server_factory(server)

    # a name from `andon models`, an Ollama name or a path; an unknown one is one line before the app starts
    path = _found(model) if model else _embedded_model_path
    app = AndonApp(factory, path, preset=preset, verbose=verbose, rpc=servers, model=model or "", fast_start=True)
    return run_to_end(app)


def server_factory(url: str) -> Callable[[ModelOptions], EngineLike]:
    """Engines of the `andon serve` at `url` (`andon --server`): a model is named there as `andon
    models` names it here (the server and the app share the machine's model folders)."""
    from andon.app.engine.remote import server_address

    try:
        server_address(url)
    except ValueError as exc:
        from andon.app.errors import UsageError

        raise UsageError(str(exc)) from None

    def factory(options: ModelOptions) -> EngineLike:
        from andon.app.engine.loading import ModelLoadError
        from andon.app.engine.remote import ServerEngine

        name = _name_of(options.path)
        if name is None:
            raise ModelLoadError(f"{options.path.name}: not among `andon models` (andon serve loads models by name)")
        return ServerEngine(url, options, name)

    return factory


def _name_of(path: Path) -> str | None:
    """The name `andon models` gives the model in this file (None: none of them)."""
    from andon.app.models.sources import discover

    wanted = os.path.realpath(path)
    entries = discover().entries
    for same in (lambda e: e.path, lambda e: e.load_path()):  # a packaged model's file is joined from chunks
        for entry in entries:
            if os.path.realpath(same(entry)) == wanted:
                return entry.name
    return None


def _found(model: str) -> Path:
    from andon.app.models.catalog import find_model

    return find_model(model).load_path()


def _embedded_model_path() -> Path:
    from andon.app.models.files import embedded_model_path

    return embedded_model_path()


def run_to_end(app: AndonApp) -> int:
    """Run the app; its exit status (non-zero when it ended on an error, 128 + N on signal N or a
    closed terminal). After a signal or a closed terminal the process exits here (`end_now`)."""
    try:
        app.run()
    finally:
        app.history.close()  # this andon's claims on chats end with it (a later andon need not wait)
    code = app.return_code or 0
    if code > 128:
        end_now(code)
    return code


def end_now(code: int) -> None:
    """After a signal or a closed terminal, with the reply saved, the history released and the
    engine closed: exit without the interpreter's teardown (most of a second, more on a busy
    machine), so andon is gone at once when its terminal is."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):  # a closed terminal: nothing to flush to
            stream.flush()
    os._exit(code)
