"""A real `andon serve` on 127.0.0.1 (a free port), with the embedded model, for the official clients."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from andon.app.serve.http import ServeServer
from andon.app.serve.run import close, make_server

MODEL = "SmolLM2-135M-Instruct.Q4_1"  # the embedded model, as `andon models` lists it
GREEDY = {"temperature": 0, "num_predict": 12, "seed": 1}
XDG = ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME")


def serving(tmp: object, **kwargs: object) -> Iterator[ServeServer]:
    """A server in a thread of this process, on its own XDG folders; closed (engines too) after."""
    with pytest.MonkeyPatch.context() as mp:
        for name in XDG:
            mp.setenv(name, f"{tmp}/{name.lower()}")
        server = make_server("127.0.0.1", 0, **kwargs)  # type: ignore[arg-type]
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        thread.start()
        try:
            yield server
        finally:
            server.shutdown()
            close(server)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeServer]:
    yield from serving(tmp_path_factory.mktemp("serve"))
