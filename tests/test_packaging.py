"""A non-editable install carries every data file the packages need (presets, styles, questions)."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def declared(config: dict[str, list[str]]) -> set[Path]:
    """The files setuptools takes as package data: each glob, in its own package's folder."""
    out: set[Path] = set()
    for package, patterns in config.items():
        folder = ROOT / package.replace(".", "/")
        for pattern in patterns:
            out.update(p.relative_to(ROOT) for p in folder.glob(pattern))
    return out


def test_every_data_file_is_declared_as_package_data():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    tracked = subprocess.run(["git", "ls-files", "app", "presets", "samplers"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()  # fmt: skip
    data = {Path(f) for f in tracked if not f.endswith(".py")}
    assert Path("app/tui/andon.tcss") in data and Path("presets/builtin/factual.toml") in data
    missing = data - declared(config)
    assert not missing, f"not package data, so missing from a non-editable install: {sorted(map(str, missing))}"


def test_the_check_catches_a_stylesheet_left_out():
    broken = {"presets": ["builtin/*.toml"], "app": ["*.tcss", "data/*.json"]}  # the old, wrong config
    assert Path("app/tui/andon.tcss") not in declared(broken)
