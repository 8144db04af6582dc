from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path, monkeypatch):
    """Every test gets its own config and data folders (platformdirs follows XDG_*)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


@pytest.fixture(scope="session")
def model_path():
    from app.model_files import embedded_model_path

    return embedded_model_path()


@pytest.fixture(scope="session")
def engine(model_path):
    from app.engine import Engine, ModelOptions

    eng = Engine(ModelOptions(model_path, num_ctx=2048))
    yield eng
    eng.close()
