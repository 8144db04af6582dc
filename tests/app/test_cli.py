"""`andon` as a user runs it: real processes, real exit codes, nothing but one line on errors."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def andon(*args: str, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    # standard input is always a pipe: piped text joins the prompt, and an inherited one might never end
    return subprocess.run(
        [sys.executable, "-m", "andon", *args],
        input=stdin or "", capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})},
    )  # fmt: skip


def assert_user_error(result, *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]


@pytest.mark.model
def test_ask_answers_on_stdout():
    r = andon("ask", "What is the capital of Japan?", "--set", "temperature=0")
    assert r.returncode == 0, r.stderr
    assert "Tokyo" in r.stdout
    assert r.stderr == ""  # llama.cpp's log stays silent


@pytest.mark.model
def test_ask_reads_standard_input():
    r = andon("ask", "-", "--set", "temperature=0", stdin="What is the capital of Japan?")
    assert r.returncode == 0 and "Tokyo" in r.stdout


@pytest.mark.model
def test_ask_json_object():
    r = andon("ask", "What is the capital of Japan?", "--preset", "factual", "--json", "--set", "num_predict=40")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert "Tokyo" in out["text"]
    assert out["finish_reason"] in ("stop", "length")
    assert set(out["usage"]) == {"prompt_tokens", "completion_tokens", "ttft_s", "tokens_per_second"}
    assert out["usage"]["completion_tokens"] > 0
    assert out["parameters"]["temperature"] == 0.0 and out["parameters"]["num_predict"] == 40
    # the model by the name `andon models` lists, which --model takes back (not the file's general.name)
    again = andon("ask", "hi", "--model", out["model"], "--set", "num_predict=1")
    assert out["model"] == "SmolLM2-135M-Instruct.Q4_1" and again.returncode == 0, again.stderr


@pytest.mark.model
def test_system_and_stop_options():
    r = andon("ask", "What is the capital of Japan?", "--set", "temperature=0", "--set", "stop=Tokyo",
              "--system", "Answer in one sentence.")  # fmt: skip
    assert r.returncode == 0 and "Tokyo" not in r.stdout


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--set", "temperature=-1"], ["temperature", "-1", ">= 0"]),
        (["--set", "temprature=1"], ["temprature", "unknown parameter", "temperature"]),
        (["--set", "top_k=many"], ["top_k", "'many'", "whole number"]),
        (["--set", "top_p=1.5"], ["top_p", "1.5", "<= 1"]),
        (["--set", "mirostat=3"], ["mirostat", "0, 1, 2"]),
        (["--set", "temperature"], ["NAME=VALUE"]),
        (["--model", "/no/such/model.gguf"], ["not found", "/no/such/model.gguf"]),
        (["--preset", "nosuch"], ["no preset named 'nosuch'", "balanced"]),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(args, needles):
    assert_user_error(andon("ask", "hi", *args), *needles)


def test_file_that_is_not_gguf(tmp_path):
    fake = tmp_path / "model.gguf"
    fake.write_text("this is not a model")
    assert_user_error(andon("ask", "hi", "--model", str(fake)), "not a GGUF model file", str(fake))


@pytest.mark.model
def test_broken_gguf_file(tmp_path, model_path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(model_path.read_bytes()[:4000])
    assert_user_error(andon("ask", "hi", "--model", str(broken)), "cannot read the GGUF header", str(broken))


def with_gguf_text(model: Path, path: Path, key: str, value: str) -> Path:
    """A copy of `model` whose GGUF text `key` (the chat template, the name) is `value`, padded
    with spaces to the stored text's length so that the file keeps its layout; the gguf package
    reads the stored text."""
    import gguf

    field = gguf.GGUFReader(model).get_field(key)
    assert field is not None, key
    old, new = field.contents().encode(), value.encode()
    assert len(new) <= len(old)
    data = model.read_bytes()
    assert data.count(old) == 1
    path.write_bytes(data.replace(old, new.ljust(len(old))))
    return path


@pytest.mark.model
@pytest.mark.parametrize(
    ("template", "needles"),
    [
        # not valid Jinja: llama-cpp-python's load compiles it
        ("{% for m in messages %}{{ m.content }", ["the chat template of bad.gguf is not valid", "'}'", "line 1"]),
        ("{% if messages %}{{ messages[0].content }}", ["is not valid", "endif"]),
        # valid, but it fails as it formats the conversation; its message spans lines and holds an escape
        ('{{ raise_exception("no system\nrole \x1b]2;pwned\x07 here") }}',
         ["cannot format this conversation: no system role ^[]2;pwned^G here"]),
        ("{{ messages[7].content }}", ["cannot format this conversation"]),
        ("{% for m in messages %}{{ m.content + 1 }}{% endfor %}", ["cannot format this conversation"]),
    ],
)  # fmt: skip
def test_a_chat_template_that_fails_is_one_line_and_exit_2(tmp_path, model_path, template, needles):
    bad = with_gguf_text(model_path, tmp_path / "bad.gguf", "tokenizer.chat_template", template)
    r = andon("ask", "hi", "--model", str(bad), "--set", "num_predict=1")
    assert_user_error(r, *needles)
    assert r.stdout == "" and "internal error" not in r.stderr and "\x1b" not in r.stderr


def test_usage_errors_are_one_line_too():
    assert_user_error(andon("ask"), "the prompt is empty")  # nothing piped, no argument
    assert_user_error(andon("frobnicate"), "frobnicate")
    assert_user_error(andon("ask", "   "), "empty")


def test_unknown_preset_for_the_app_is_one_line():
    assert_user_error(andon("--preset", "nosuch"), "no preset named 'nosuch'")


def test_parameters_listing_has_every_parameter_with_help():
    from andon.presets.parameters import ALL_SPECS

    r = andon("presets", "parameters")
    assert r.returncode == 0
    for name, spec in ALL_SPECS.items():
        assert name in r.stdout and spec.description in r.stdout


@pytest.mark.model
def test_ctrl_c_stops_the_reply_and_keeps_what_was_written():
    import signal
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "andon", "ask", "Write a very long story about a dragon.", "--set", "seed=3",
         "--set", "temperature=0.8"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    first = proc.stdout.read(20)  # the reply has started
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert len(first + rest) > 20
    assert "reply stopped" in err and "Traceback" not in err


def _history_file(tmp_path) -> Path:
    from andon.app.chat.history import History

    path = tmp_path / "data" / "andon" / "history.sqlite3"
    with History(path) as h:
        for i in range(30):
            chat = h.create_chat(f"chat {i}", "balanced")
            h.add_message(chat.id, "user", "a question " * 60)
    return path


def _damage(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[4 * 4096 : 5 * 4096] = b"\xa5" * 4096  # one page overwritten
    path.write_bytes(bytes(data))


def _future(path: Path) -> None:
    import sqlite3

    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode = DELETE")
        db.execute("PRAGMA user_version = 999")


@pytest.mark.parametrize(
    ("spoil", "needles"),
    [
        (lambda p: p.write_bytes(b"not a database at all" * 100), ["is not an SQLite database"]),
        (_damage, ["is damaged"]),
        (_future, ["newer andon", "999"]),
    ],
)
def test_a_history_andon_cannot_use_is_one_line_and_left_alone(tmp_path, spoil, needles):
    path = _history_file(tmp_path)
    spoil(path)
    before = hashlib.md5(path.read_bytes()).hexdigest()
    r = andon("--preset", "factual")
    assert_user_error(r, str(path), "has not changed it", "move it aside", *needles)
    assert hashlib.md5(path.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["history.sqlite3"]


# --- text that is not UTF-8: refused with where, the byte and its offset, wherever it enters ------


def andon_bytes(*args: str | bytes, stdin: bytes = b"") -> subprocess.CompletedProcess:
    """andon with raw bytes in its arguments and standard input, as a shell passes them."""
    return subprocess.run(
        [sys.executable, "-m", "andon", *args], input=stdin, capture_output=True, timeout=120,
        env={**os.environ, "LC_ALL": "C.UTF-8"},
    )  # fmt: skip


def assert_refused_bytes(result, *needles: str) -> None:
    err = result.stderr.decode("utf-8")
    assert result.returncode == 2, err
    assert len(err.strip().splitlines()) == 1 and "internal error" not in err, err
    for needle in needles:
        assert needle in err, err


@pytest.mark.parametrize(
    ("args", "stdin", "needles"),
    [
        (["ask", "-"], b"caf\xe9 au lait", ["standard input", "byte 0xe9 at offset 3"]),
        (["ask", b"caf\xe9"], b"", ["the prompt", "byte 0xe9 at offset 3"]),
        (["ask", "hi", "--system", b"be \xff brief"], b"", ["--system", "byte 0xff at offset 3"]),
        (["ask", "hi", "--set", b"stop=\xfe\xfe"], b"", ["--set stop", "byte 0xfe at offset 5"]),
        (["ask", "hi", "--preset", b"x\xff"], b"", ["--preset", "byte 0xff at offset 1"]),
        (["inspect", b"\xc3("], b"", ["the prompt", "byte 0xc3 at offset 0"]),
        (["presets", "save", "mine", "--description", b"\x80"], b"", ["--description", "byte 0x80"]),
    ],
)
def test_text_that_is_not_utf8_is_refused_where_it_enters(args, stdin, needles):
    assert_refused_bytes(andon_bytes(*args, stdin=stdin), "not valid UTF-8", *needles)


def test_preset_files_and_modelfiles_that_are_not_utf8(tmp_path):
    folder = tmp_path / "config" / "andon" / "presets"
    folder.mkdir(parents=True)
    latin1 = folder / "latin.toml"
    latin1.write_bytes(b'description = "caf\xe9"\n')
    assert_user_error(andon("presets", "show", "latin"), str(latin1), "not valid UTF-8", "byte 0xe9 at offset 18")
    listing = andon("presets", "list")
    assert listing.returncode == 0 and "balanced" in listing.stdout
    assert "latin.toml" in listing.stderr and "byte 0xe9" in listing.stderr
    assert latin1.read_bytes() == b'description = "caf\xe9"\n'
    modelfile = tmp_path / "Modelfile"
    modelfile.write_bytes(b'FROM x\nSYSTEM """\xff"""\n')
    r = andon("presets", "import", str(modelfile), "--name", "m")
    assert_user_error(r, str(modelfile), "not valid UTF-8", "byte 0xff at offset 17")


# --- preset names and paths that cannot be preset files ------------------------------------------


@pytest.mark.parametrize(
    ("command", "name"),
    [
        (["ask", "hi", "--preset"], "../x"),
        (["presets", "show"], "a/b"),
        (["presets", "export"], "my preset"),
        (["presets", "delete"], "../x"),
        (["presets", "save"], ".hidden"),
        (["compare", "hi", "--presets"], "a/b"),
        (["inspect", "hi", "--preset"], "x" * 65),
    ],
)
def test_a_preset_name_with_a_path_in_it_is_one_line(command, name):
    assert_user_error(andon(*command, name), "preset name", repr(name), "is not allowed", "letters, digits")


def test_a_config_folder_that_is_a_file(tmp_path):
    config = tmp_path / "config"
    config.write_text("not a folder")
    assert_user_error(andon("presets", "save", "mine", "--from", "creative"), "cannot save preset 'mine'",
                      str(config), "is a file, not a folder")  # fmt: skip
    listing = andon("presets", "list")
    assert listing.returncode == 0 and "creative" in listing.stdout and str(config) in listing.stderr
    assert andon("presets", "show", "creative").returncode == 0
    assert config.read_text() == "not a folder"


def test_a_folder_where_a_preset_file_should_be(tmp_path):
    folder = tmp_path / "config" / "andon" / "presets" / "mine.toml"
    folder.mkdir(parents=True)
    for args in (["presets", "show", "mine"], ["presets", "save", "mine"], ["presets", "delete", "mine"],
                 ["ask", "hi", "--preset", "mine"]):  # fmt: skip
        assert_user_error(andon(*args), str(folder), "is a folder, not a preset file")
    listing = andon("presets", "list")
    assert listing.returncode == 0 and "mine.toml: is a folder, not a preset file" in listing.stderr
    assert folder.is_dir()


def test_a_model_path_that_is_a_fifo_is_refused_at_once(tmp_path):
    fifo = tmp_path / "model.gguf"
    os.mkfifo(fifo)
    assert_user_error(andon("ask", "hi", "--model", str(fifo)), str(fifo), "not a regular file")
