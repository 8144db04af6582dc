from __future__ import annotations

import os

import pytest
from hypothesis import settings

# In CI the property tests run the same examples every time, so a landing never depends on luck;
# on a developer's machine they explore new ones (and remember any failure in .hypothesis/).
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path, monkeypatch):
    """Every test gets its own config, data, state (log) and cache folders (platformdirs follows XDG_*)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def model_path():
    from andon.app.models.files import embedded_model_path

    return embedded_model_path()


@pytest.fixture(scope="session")
def engine(model_path):
    from andon.app.engine.engine import Engine, ModelOptions

    eng = Engine(ModelOptions(model_path, num_ctx=2048))
    yield eng
    eng.close()
