"""A Modelfile's FROM: taken from the Modelfile's folder, checked at import, never silently another model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from andon.app.models import sources as model_sources
from andon.app.models.catalog import model_for
from andon.app.models.files import ModelPathError
from andon.presets.modelfile import ModelfileError, parse_modelfile
from andon.presets.paths import presets_dir
from andon.presets.store import PresetStore

from tests.app.model_stores import add_ollama_model


@pytest.fixture
def ollama(tmp_path, monkeypatch, model_path):
    """An Ollama store holding smollm2:135m (the embedded GGUF under a made-up digest)."""
    for var in ("HF_HOME", "HF_HUB_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "ollama"))
    monkeypatch.setattr(model_sources, "OLLAMA_SYSTEM_STORE", tmp_path / "no-system-store")
    add_ollama_model(tmp_path / "ollama", "registry.ollama.ai/library/smollm2:135m", model_path, "0" * 64)


def andon(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "andon", *args], capture_output=True, text=True, timeout=120,
                          env=os.environ.copy(), cwd=cwd)  # fmt: skip


def modelfile(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Modelfile").write_text(text)
    return folder / "Modelfile"


def test_a_relative_from_is_taken_from_the_modelfiles_folder(tmp_path, model_path, ollama):
    folder = tmp_path / "mario"
    path = modelfile(folder, "FROM ./weights/model.gguf\nSYSTEM You are Mario.\n")
    (folder / "weights").mkdir()
    (folder / "weights" / "model.gguf").symlink_to(model_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = andon("presets", "import", str(path), "--name", "mario", cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    preset = PresetStore().load("mario")
    assert preset.model == str(folder / "weights" / "model.gguf")  # absolute: it works from any folder later
    assert model_for(None, preset).path == folder / "weights" / "model.gguf"


def test_a_missing_file_refuses_the_import(tmp_path, ollama):
    path = modelfile(tmp_path / "mf", "FROM ./missing.gguf\nPARAMETER temperature 0.5\n")
    r = andon("presets", "import", str(path), "--name", "nothing", cwd=tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert f"line 1: FROM ./missing.gguf: model file not found: {tmp_path / 'mf' / 'missing.gguf'}" in r.stderr
    assert "Modelfile's folder" in r.stderr
    assert not presets_dir().exists() or not list(presets_dir().iterdir())  # nothing written


def test_an_unknown_name_refuses_the_import_with_the_closest(tmp_path, ollama):
    path = modelfile(tmp_path, "FROM smollm:135m\n")
    r = andon("presets", "import", str(path), "--name", "typo", cwd=tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "unknown model 'smollm:135m'" in r.stderr and "closest: smollm2:135m" in r.stderr


def test_an_ollama_name_is_kept_as_its_name(tmp_path, ollama):
    path = modelfile(tmp_path, "FROM smollm2:135m\nSYSTEM Be brief.\n")
    assert andon("presets", "import", str(path), "--name", "brief", cwd=tmp_path).returncode == 0
    preset = PresetStore().load("brief")
    assert preset.model == "smollm2:135m"
    assert model_for(None, preset).source == "ollama"
    r = andon("presets", "export", "brief", cwd=tmp_path)
    assert "FROM smollm2:135m" in r.stdout


def test_a_preset_whose_model_is_gone_says_so(tmp_path, model_path, ollama):
    folder = tmp_path / "gone"
    modelfile(folder, "FROM ./model.gguf\n")
    (folder / "model.gguf").symlink_to(model_path)
    assert andon("presets", "import", str(folder / "Modelfile"), "--name", "gone", cwd=tmp_path).returncode == 0
    (folder / "model.gguf").unlink()
    r = andon("ask", "hi", "--preset", "gone", cwd=tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "preset 'gone' is made for the model" in r.stderr and "model file not found" in r.stderr
    with pytest.raises(ModelPathError, match="pass --model"):
        model_for(None, PresetStore().load("gone"))


def test_from_checks_in_the_parser():
    with pytest.raises(ModelfileError, match="line 2: FROM needs a model name"):
        parse_modelfile("# nothing yet\nFROM\n", resolve_from=lambda arg: arg)

    def refuse(arg: str) -> str:
        raise ModelfileError("no such model")

    with pytest.raises(ModelfileError, match="line 1: FROM x: no such model"):
        parse_modelfile("FROM x\n", resolve_from=refuse)
    assert parse_modelfile("FROM ./anything.gguf\n").model == "./anything.gguf"  # no resolver: kept as written


def test_modelfile_for_a_chat_reads_back_the_same():
    from andon.presets import DEFAULTS
    from andon.presets.modelfile import modelfile_for

    params = DEFAULTS.of({"temperature": 0.3, "stop": ["END"], "top_n_sigma": 1.0})
    text = modelfile_for("smollm2:135m", params, "Be brief.")
    assert "FROM smollm2:135m\n" in text and "# PARAMETER top_n_sigma 1" in text  # andon's own, as a comment
    back = parse_modelfile(text)
    assert (back.model, back.system) == ("smollm2:135m", "Be brief.")
    assert back.parameters == {"temperature": 0.3, "stop": ["END"], "top_n_sigma": 1.0}
