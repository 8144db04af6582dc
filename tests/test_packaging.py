"""The wheel a user installs: one top-level package, `andon`, with every data file inside it."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (built,) = out.glob("andon-*.whl")
    return zipfile.ZipFile(built)


def test_the_only_top_level_name_is_andon(wheel: zipfile.ZipFile):
    tops = {name.split("/", 1)[0] for name in wheel.namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"andon"}
    names = set(wheel.namelist())
    for module in (
        "andon/__main__.py",
        "andon/app/main.py",
        "andon/app/engine/server.py",
        "andon/app/tui/widgets/panels.py",
        "andon/presets/store.py",
        "andon/samplers/chain.py",
    ):
        assert module in names


def test_every_data_file_is_in_the_wheel(wheel: zipfile.ZipFile):
    tracked = subprocess.run(["git", "ls-files", "app", "presets", "samplers"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()  # fmt: skip
    data = {f for f in tracked if not f.endswith(".py")}
    assert "app/tui/andon.tcss" in data and "presets/builtin/factual.toml" in data and "app/data/questions.json" in data
    missing = {f for f in data if f"andon/{f}" not in wheel.namelist()}
    assert not missing, f"missing from the wheel, so from a user's install: {sorted(missing)}"


def test_the_console_script_runs_the_cli(wheel: zipfile.ZipFile):
    (entry,) = [n for n in wheel.namelist() if n.endswith("entry_points.txt")]
    assert "andon = andon.app.main:main" in wheel.read(entry).decode()
