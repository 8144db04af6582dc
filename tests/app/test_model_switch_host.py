"""The engine host's model: the open chat's, switched in one call; a switch that fails keeps the model
loaded before; a switch to the model already loaded loads nothing."""

from __future__ import annotations

from pathlib import Path

from andon.app.engine.engine import ModelLoadError
from andon.app.tui.engine_host import EngineHost, ModelChoice
from andon.presets import Parameters

from tests.app.fakes import FakeEngine

ALPHA = ModelChoice("alpha", "alpha", Path("/models/alpha.gguf"))
BROKEN = ModelChoice("broken", "broken", Path("/models/broken.gguf"))


class Factory:
    def __init__(self) -> None:
        self.loads: list[str] = []

    def __call__(self, options):
        self.loads.append(options.path.name)
        if options.path.name == "broken.gguf":
            raise ModelLoadError(f"could not load model {options.path}: it is damaged")
        return FakeEngine(options)


def test_a_switch_loads_the_model_and_later_replies_use_it():
    factory = Factory()
    host = EngineHost(factory, Path("/models/start.gguf"))
    assert host.switch(ALPHA, Parameters()) is None
    assert host.current == ALPHA and host.loaded.is_set()
    assert host.engine_for(Parameters()).options.path == ALPHA.path  # a reply: no reload
    assert factory.loads == ["alpha.gguf"]


def test_a_failed_switch_keeps_the_model_loaded_before():
    factory = Factory()
    host = EngineHost(factory, Path("/models/start.gguf"))
    host.switch(ALPHA, Parameters())
    error = host.switch(BROKEN, Parameters())
    assert error is not None and "damaged" in error
    assert host.current == ALPHA and host.engine is not None and host.engine.options.path == ALPHA.path
    assert host.engine_for(Parameters()).options.path == ALPHA.path  # replies go on with it
    assert factory.loads == ["alpha.gguf", "broken.gguf", "alpha.gguf"]  # alpha was loaded again


def test_a_switch_to_the_model_loaded_loads_nothing():
    factory = Factory()
    host = EngineHost(factory, Path("/models/start.gguf"))
    host.switch(ALPHA, Parameters())
    host.loaded.clear()  # as the screen does before a switch
    assert host.switch(ALPHA, Parameters()) is None
    assert factory.loads == ["alpha.gguf"] and host.loaded.is_set()


def test_before_any_chat_chose_a_model_it_is_the_one_andon_started_with():
    host = EngineHost(Factory(), Path("/models/start.gguf"))
    assert host.options(Parameters()).path == Path("/models/start.gguf")
    assert host.resolve("") == host.start_choice() and host.start_choice().path == Path("/models/start.gguf")
