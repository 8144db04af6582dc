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


@pytest.mark.model
def test_ask_verbose_is_a_short_summary_and_the_log_is_logs(engine):
    r = andon("ask", "What is the capital of Japan?", "--verbose", "--system", "Be brief.", "--set", "num_predict=5")
    assert r.returncode == 0, r.stderr
    lines = dict(line.split(":", 1) for line in r.stderr.splitlines())
    assert len(lines) <= 16 and all(len(line) <= 80 for line in r.stderr.splitlines() if "file:" not in line)
    assert "llama_model_loader" not in r.stderr and "load_tensors" not in r.stderr  # llama.cpp's 2,000 lines: --log
    expected = engine.chat_tokens([{"role": "system", "content": "Be brief."},
                                   {"role": "user", "content": "What is the capital of Japan?"}])  # fmt: skip
    assert lines["prompt eval count"].strip() == f"{len(expected)} token(s)"
    assert lines["eval count"].strip() == "5 token(s)" and lines["finish reason"].strip() == "length"
    for key in ("total duration", "load duration", "prompt eval duration", "eval duration", "eval rate"):
        assert key in lines
    assert lines["architecture"].strip() == "llama, 134.5M parameters, Q4_1"
    assert lines["context"].strip() == "4096 tokens (trained on 8192)"
    logged = andon("ask", "hi", "--log", "--set", "num_predict=1")
    assert logged.returncode == 0 and "llama_model_loader" in logged.stderr and "eval count" not in logged.stderr


@pytest.mark.model
def test_eval_verbose_shows_each_question_expected_and_answers():
    r = andon("eval", "--limit", "2", "--presets", "factual,creative", "--verbose")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "1. What is the capital of Japan?\n   expected: Tokyo\n   ✓ factual   " in out
    assert "2. What is the capital of France?\n   expected: Paris\n" in out
    assert "   ✓ creative  " in out or "   ✗ creative  " in out
    assert all(len(line) <= 80 for line in out.splitlines())


@pytest.mark.model
@pytest.mark.parametrize(
    "args",
    [
        ["ask", "hi", "--set", "num_predict=3"],
        ["ask", "hi", "--set", "num_predict=3", "--json"],
        ["inspect", "hi", "--top", "2"],
        ["inspect", "hi", "--top", "2", "--json"],
        ["compare", "hi", "-n", "2", "--presets", "factual", "--set", "num_predict=3"],
        ["compare", "hi", "-n", "2", "--presets", "factual", "--set", "num_predict=3", "--json"],
        ["eval", "--limit", "1", "--presets", "factual"],
        ["eval", "--limit", "1", "--presets", "factual", "--json", "--verbose"],
        ["models"], ["models", "--json"], ["models", "SmolLM2-135M-Instruct.Q4_1"],
        ["presets", "list"], ["presets", "show", "creative"], ["presets", "parameters"],
        ["presets", "export", "creative"], ["--version"], ["--help"], ["ask", "--help"],
        ["ask", "hi", "--set", "temperature=-1"], ["eval", "--limit", "0"], ["nonsense"],
    ],
)  # fmt: skip
def test_every_output_ends_with_a_newline(args):
    r = andon(*args)
    assert r.stdout or r.stderr
    for stream in (r.stdout, r.stderr):
        assert stream == "" or stream.endswith("\n"), (args, stream[-80:])
