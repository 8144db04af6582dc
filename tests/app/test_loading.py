"""Loading a model: what this machine cannot take is refused in one line, before it is allocated."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from andon.app.engine import loading
from andon.app.engine.loading import ModelLoadError, check_memory, check_threads, kv_bytes_per_token, read_metadata
from andon.presets import Parameters
from andon.presets.parameters import ParameterError

GiB = 1 << 30


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("num_thread", 100000, "must be a whole number >= 0 and <= 512"),
        ("num_thread", 2147483647, "must be a whole number >= 0 and <= 512"),
        ("num_batch", 10**30, "must be a whole number >= 1 and <= 16777216"),
        ("num_ctx", 10**9, "must be a whole number >= 64 and <= 16777216"),
    ],
)
def test_values_no_machine_can_take_are_refused_like_any_other(name, value, allowed):
    with pytest.raises(ParameterError) as err:
        Parameters.of({name: value})
    assert str(err.value) == f"{name}: {value} is not allowed ({allowed})"


def test_more_threads_than_four_per_core_are_refused_as_the_model_loads(monkeypatch):
    monkeypatch.setattr(loading, "cpu_cores", lambda: 2)
    check_threads(8)
    check_threads(0)
    with pytest.raises(ModelLoadError) as err:
        check_threads(9)
    assert str(err.value) == (
        "num_thread: 9 is not allowed on this machine (must be <= 8: 4 per CPU core, and andon may use 2)"
    )


@pytest.mark.model
def test_the_kv_cache_estimate_is_what_llama_cpp_allocates(model_path, capsys):
    """The oracle: llama.cpp's own log line `llama_kv_cache: size = 45.00 MiB (2048 cells, ...)`."""
    from andon.app.engine.engine import Engine, ModelOptions

    per_token = kv_bytes_per_token(read_metadata(model_path, loading._META_KEYS))
    engine = Engine(ModelOptions(model_path, num_ctx=2048, verbose=True))
    engine.close()
    log = capsys.readouterr().err
    size, cells = re.search(r"llama_kv_cache: size = +([\d.]+) MiB \( *(\d+) cells", log).groups()
    assert per_token is not None and per_token * int(cells) == pytest.approx(
        float(size) * (1 << 20), abs=0.01 * (1 << 20)
    )


@pytest.mark.model
def test_a_context_that_cannot_fit_is_refused_before_allocating(model_path, monkeypatch):
    per_token = kv_bytes_per_token(read_metadata(model_path, loading._META_KEYS))
    assert per_token == 30 * 2 * 3 * 64 * 2  # SmolLM2-135M: 30 layers, K and V, 3 KV heads of 64, f16
    monkeypatch.setattr(loading, "available_memory", lambda: 2 * GiB)
    check_memory(model_path, 16384)  # 360 MiB: fits
    with pytest.raises(ModelLoadError) as err:
        check_memory(model_path, 100_000)
    assert str(err.value) == (
        "num_ctx 100000 needs about 2.1 GiB of memory for the context (KV cache) of "
        f"{model_path.name}, plus {loading._size(model_path.stat().st_size)} for the model, but 2.0 GiB is "
        "available: lower num_ctx (at most 8192, the context it was trained on)"  # about 78000 would fit
    )
    monkeypatch.setattr(loading, "available_memory", lambda: GiB // 4)  # less than the trained context fits
    with pytest.raises(ModelLoadError, match=r"lower num_ctx \(about \d+ would fit\)"):
        check_memory(model_path, 100_000)


@pytest.mark.model
def test_the_command_line_refuses_a_huge_context_in_one_line_without_blaming_the_file():
    r = subprocess.run(
        [sys.executable, "-m", "andon", "ask", "hi", "--set", "num_ctx=16777216"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2 and r.stdout == ""
    line = r.stderr.strip()
    assert "\n" not in line and line.startswith("andon: num_ctx 16777216 needs about ")
    assert "lower num_ctx" in line and "damaged" not in line and "truncated" not in line


def test_the_estimate_follows_llama_cpps_layout_per_layer():
    """llama.cpp: K and V of n_embd_head * n_head_kv(layer) values per layer, f16."""
    from andon.app.models.gguf_header import GGUFArray

    uniform = {"block_count": 4, "embedding_length": 1024, "attention.head_count": 16, "attention.head_count_kv": 4}
    assert kv_bytes_per_token(uniform) == 4 * 4 * (64 + 64) * 2  # head size n_embd / n_head
    per_layer = {**uniform, "attention.head_count_kv": GGUFArray(4, (4, 4, 0, 2)), "attention.key_length": 128,
                 "attention.value_length": 96}  # fmt: skip
    assert kv_bytes_per_token(per_layer) == (4 + 4 + 0 + 2) * (128 + 96) * 2
    assert kv_bytes_per_token({**uniform, "attention.kv_lora_rank": 512}) is None  # MLA: not this layout
    assert kv_bytes_per_token({"block_count": 4}) is None  # unknown: the check is skipped


def test_the_advice_on_a_context_past_training_is_one_that_can_be_followed(tmp_path):
    """A header's trained context of 0 says nothing (no line); one below the least num_ctx cannot be stayed
    within by lowering num_ctx (it was advised: 'set num_ctx 0 or less')."""
    from andon.app.chat.settings import resolve_settings

    from tests.app.model_stores import fake_gguf

    def warnings(trained: int) -> tuple[str, ...]:
        path = tmp_path / f"trained-{trained}.gguf"
        fake_gguf(path, header={"{arch}.context_length": trained})
        return resolve_settings(None, ["num_ctx=4096"], model=str(path)).warnings

    assert warnings(0) == ()
    (line,) = warnings(32)
    assert "above the 32 tokens" in line and "num_ctx cannot be below 64, so keep conversations under 32 tokens" in line
    assert "set num_ctx" not in line
    (line,) = warnings(1024)
    assert "above the 1024 tokens" in line and "set num_ctx 1024 or less to stay within it" in line
    assert warnings(8192) == ()
