"""The project's own checks, in the test command: ruff (lint and format) and the type checker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run(*cmd: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing():
    result = run(str(BIN / "ruff"), "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_code_is_formatted():
    result = run(str(BIN / "ruff"), "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_types_check(tmp_path: Path):
    # mypy cannot follow setuptools' package-dir mapping, so it reads the package through a tree
    # of links laid out as it installs: andon/app -> app/, andon/presets -> presets/, ...
    tree = tmp_path / "andon"
    tree.mkdir()
    for f in (ROOT / "andon").glob("*.py"):
        (tree / f.name).symlink_to(f)
    for layer in ("app", "presets", "samplers"):
        (tree / layer).symlink_to(ROOT / layer, target_is_directory=True)
    env = {**os.environ, "MYPY_CACHE_DIR": str(ROOT / ".mypy_cache")}
    result = subprocess.run(
        [str(BIN / "mypy"), "--config-file", str(ROOT / "pyproject.toml"), str(tree)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout.replace(str(tree), "andon") + result.stderr
