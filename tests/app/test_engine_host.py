"""The app's engine host: a reload that fails keeps the model that was loaded, and retries later."""

from __future__ import annotations

from pathlib import Path

import pytest
from andon.app.engine.engine import ModelLoadError
from andon.app.tui.engine_host import EngineHost
from andon.presets import Parameters

from tests.app.fakes import FakeEngine


class Factory:
    """Loads fake engines; fails for the num_ctx values in `refuse`, or `fail_once` the first time."""

    def __init__(self, refuse: set[int] = frozenset(), fail_once: set[int] = frozenset()) -> None:
        self.refuse, self.fail_once = set(refuse), set(fail_once)
        self.loads: list[int] = []
        self.closed = 0

    def __call__(self, options):
        self.loads.append(options.num_ctx)
        if options.num_ctx in self.refuse:
            raise ModelLoadError(f"num_ctx {options.num_ctx} needs more memory than is available")
        if options.num_ctx in self.fail_once:
            self.fail_once.discard(options.num_ctx)
            raise OSError("the disk was busy")
        return FakeEngine(options)


def ctx(n: int) -> Parameters:
    return Parameters.of({"num_ctx": n})


def test_a_failed_reload_keeps_the_previous_engine_and_a_later_change_retries():
    factory = Factory(refuse={10**6})
    host = EngineHost(factory, Path("/m.gguf"))
    host.load(host.options(ctx(2048)))
    with pytest.raises(ModelLoadError, match="num_ctx 1000000 needs more memory"):
        host.engine_for(ctx(10**6))
    assert host.engine is not None and host.engine.options.num_ctx == 2048  # still usable
    loads = len(factory.loads)
    with pytest.raises(ModelLoadError, match="needs more memory"):
        host.engine_for(ctx(10**6))  # the same failing value again: said again, not loaded again
    assert len(factory.loads) == loads
    assert host.engine_for(ctx(2048)) is host.engine  # the old value back: no reload at all
    assert len(factory.loads) == loads
    assert host.engine_for(ctx(4096)).options.num_ctx == 4096  # a change retries
    assert host.error is None


def test_a_reload_that_fails_once_works_when_asked_again_after_a_change():
    factory = Factory(fail_once={8192})
    host = EngineHost(factory, Path("/m.gguf"))
    host.load(host.options(ctx(2048)))
    with pytest.raises(ModelLoadError, match="disk was busy"):
        host.engine_for(ctx(8192))
    assert host.engine_for(ctx(2048)).options.num_ctx == 2048
    assert host.engine_for(ctx(8192)).options.num_ctx == 8192


def test_a_first_load_that_failed_is_retried_when_the_settings_change():
    factory = Factory(refuse={10**6})
    host = EngineHost(factory, Path("/m.gguf"))
    host.load(host.options(ctx(10**6)))
    assert host.engine is None and host.loaded.is_set() and "needs more memory" in (host.error or "")
    assert host.engine_for(ctx(4096)).options.num_ctx == 4096
