"""`andon presets export` / `import` as a user runs them: text comes back as it was saved, a value
`presets save` refuses is refused by import too (file, line, what is allowed; nothing written),
and a file or folder in the wrong place is one line saying what should be there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from andon.presets.paths import presets_dir
from andon.presets.store import PresetStore

EMBEDDED = "FROM ./SmolLM2-135M-Instruct.Q4_1.gguf\n"  # what export writes for the embedded model


def andon(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "andon", *args], capture_output=True, text=True, timeout=120,
                          env=os.environ.copy(), cwd=cwd)  # fmt: skip


def refused(r: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Exit 2 and one line on stderr holding every needle: no traceback, no OSError's bare words."""
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("andon: "), r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def export_import(tmp_path: Path, *save_args: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """Save preset q1 with these arguments, export it to a file, import that as q2; (export's result, its text)."""
    assert andon("presets", "save", "q1", "--from", "balanced", *save_args).returncode == 0
    exported = andon("presets", "export", "q1")
    assert exported.returncode == 0, exported.stderr
    (tmp_path / "M").write_text(exported.stdout, newline="")
    imported = andon("presets", "import", str(tmp_path / "M"), "--name", "q2")
    assert imported.returncode == 0, imported.stderr
    return exported, exported.stdout


@pytest.mark.parametrize(
    "system",
    [
        'Wrap code in """ fences.',
        'Say "hi"',
        '"quoted" and \\"escaped\\" C:\\temp\\new',
        "  leading and trailing  ",
        "first line\nMESSAGE user hi\nTEMPLATE {{ .Prompt }}\nPARAMETER temperature 2\n# not a comment\n",
        'End with """',
    ],
)
def test_a_system_prompt_comes_back_from_its_modelfile_as_it_was(tmp_path, system):
    exported, _ = export_import(tmp_path, "--system", system)
    store = PresetStore()
    assert store.load("q2").system == system == store.load("q1").system
    assert store.load("q2").parameters == store.load("q1").parameters
    assert exported.stderr == ""  # Ollama reads it the same: nothing to warn about


def test_text_ollamas_syntax_cannot_hold_comes_back_with_a_warning(tmp_path):
    system = 'Answer in this form:\n"""\ncode\n"""\n'  # lines that end with """: no Ollama form holds them
    stops = '["<|im_end|>", "\\u001b[0m", "a \\"b\\"\\n"]'
    exported, text = export_import(tmp_path, "--system", system, "--set", f"stop={stops}")
    q1, q2 = PresetStore().load("q1"), PresetStore().load("q2")
    assert q2.system == system and q2.parameters.stop == q1.parameters.stop == ("<|im_end|>", "\x1b[0m", 'a "b"\n')
    warnings = exported.stderr.strip().splitlines()
    assert len(warnings) == 2 and all(w.startswith("andon: warning: Ollama will not see the ") for w in warnings)
    assert 'line 2 ends with """' in warnings[1] and "U+001B" in warnings[0]
    assert "\x1b" not in text  # the file holds nothing a terminal would obey
    assert 'PARAMETER stop "<|im_end|>"' in text.splitlines()  # what Ollama can read, it still gets


@pytest.mark.parametrize(
    ("lines", "needles"),
    [
        ("DRAFT /etc/passwd\n", ["line 2: DRAFT /etc/passwd", "not a GGUF model file"]),
        ("# andon parameters that Ollama does not know:\n# PARAMETER draft \"/etc/passwd\"\n",
         ["line 3: draft /etc/passwd", "not a GGUF model file"]),
        ("DRAFT ./missing.gguf\n", ["line 2: DRAFT ./missing.gguf", "model file not found"]),
        ("PARAMETER temperature hot\n", ["line 2: temperature: 'hot' is not allowed (must be a number >= 0)"]),
        ("PARAMETER flavour 1\n", ["line 2: flavour: unknown parameter"]),
        ("# andon parameters that Ollama does not know:\n# PARAMETER format {\"type\": \"nope\"}\n",
         ["line 3: format: the schema is not valid"]),
        ("# andon parameters that Ollama does not know:\n# PARAMETER grammar \"root ::= missing\"\n",
         ["line 3: grammar:", "missing"]),
        ("# andon parameters that Ollama does not know:\n# SYSTEM \"\\ud800\"\n", ["line 3: SYSTEM", "lone surrogate"]),
        ("# andon parameters that Ollama does not know:\n# TASK poetry\n", ["line 3: TASK 'poetry'", "factual"]),
    ],
)  # fmt: skip
def test_import_refuses_what_presets_save_refuses_and_writes_nothing(tmp_path, lines, needles):
    (tmp_path / "M").write_text(EMBEDDED + lines)
    refused(
        andon("presets", "import", str(tmp_path / "M"), "--name", "bad", cwd=tmp_path), f"{tmp_path / 'M'}: ", *needles
    )
    assert not presets_dir().exists() or not list(presets_dir().iterdir())


def test_presets_save_refuses_the_same_draft_and_grammar(tmp_path):
    refused(andon("presets", "save", "bad", "--set", "draft=/etc/passwd"), "draft", "not a GGUF model file")
    refused(andon("presets", "save", "bad", "--set", "grammar=root ::= missing"), "grammar", "missing")
    refused(andon("presets", "save", "bad", "--set", 'stop=["\\ud800"]'), "cannot save preset 'bad'", "lone surrogate")
    assert not presets_dir().exists() or not list(presets_dir().iterdir())


def test_a_modelfile_that_is_not_a_file_is_one_line(tmp_path):
    refused(andon("presets", "import", str(tmp_path)), f"cannot import {tmp_path}: {tmp_path} is a folder, not a file")
    refused(andon("presets", "import", str(tmp_path / "nope" / "M")), "does not exist", "give the path of a Modelfile")
    (tmp_path / "f").write_text("x")
    refused(andon("presets", "import", str(tmp_path / "f" / "M")), f"{tmp_path / 'f'} is a file, not a folder")
    refused(andon("presets", "import", str(tmp_path / ("m" * 300))), "is 300 bytes long", "255")
    refused(andon("presets", "import", "/dev/zero"), "not a regular file")


def test_a_presets_folder_that_is_a_broken_link_is_one_line(tmp_path):
    presets_dir().parent.mkdir(parents=True)
    presets_dir().symlink_to(tmp_path / "gone")
    r = andon("presets", "save", "mine")
    refused(r, "cannot save preset 'mine'", f"{presets_dir()} is a link to", "which does not exist", "folder")
    assert "File exists" not in r.stderr
    listing = andon("presets", "list")
    assert listing.returncode == 0 and "balanced" in listing.stdout and "is a link to" in listing.stderr


def test_a_config_path_too_long_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / ("c" * 300)))
    refused(andon("presets", "save", "mine"), "is 300 bytes long, more than a file system allows (255)")
    listing = andon("presets", "list")
    assert listing.returncode == 0 and "balanced" in listing.stdout
