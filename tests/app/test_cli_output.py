"""What the commands print: --version, ask --verbose's summary (llama.cpp's log only with --log),
eval --verbose's answers, and a final newline on every output."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import time

import pytest

from andon import __version__
from tests.app.test_cli import andon


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_names_andon_llama_cpp_python_and_llama_cpp(flag):
    started = time.monotonic()
    r = andon(flag)
    took = time.monotonic() - started
    assert r.returncode == 0 and r.stderr == "", r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"andon {__version__}" and len(lines) == 2 and r.stdout.endswith("\n")
    assert lines[1].startswith(f"llama-cpp-python {importlib.metadata.version('llama_cpp_python')} (llama.cpp ")
    assert took < 0.6  # no model, no llama.cpp backends, no numpy: about 0.1 s here (andon presets list: 0.8 s)


def test_version_after_another_option_still_answers():
    r = andon("--preset", "factual", "--version")
    assert r.returncode == 0 and r.stdout.startswith(f"andon {__version__}\nllama-cpp-python ")


def test_version_without_numpy_or_llama_cpp():
    code = (
        "import sys; from andon.app.main import main; main(['--version']);"
        "print(sorted(m for m in ('numpy', 'llama_cpp', 'textual') if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.splitlines()[-1] == "[]", r.stdout + r.stderr
