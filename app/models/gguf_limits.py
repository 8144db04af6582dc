"""Header values llama.cpp cannot load, checked before a model is handed to it.

llama.cpp checks some header values with GGML_ASSERT, which ends the whole process (SIGABRT, no
exception to catch): a layer count above LLAMA_MAX_LAYERS, more experts than LLAMA_MAX_EXPERTS or
expert counts that contradict each other, an unknown RoPE scaling type, a model without a vocabulary.
Others are refused by llama.cpp with an exception whose message does not name the value. Each rule
here is one line of llama.cpp's own loader (the llama.cpp that llama-cpp-python 0.3.36 vendors:
src/llama-model.cpp `load_hparams`, src/llama-hparams.h, src/llama-vocab.cpp) and says which key,
its value and what llama.cpp allows. `problem` answers None for a header llama.cpp can take.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from andon.app.control_text import visible
from andon.app.models.gguf_header import GGUFArray, GGUFHeader

MAX_LAYERS = 512  # LLAMA_MAX_LAYERS (llama-hparams.h)
MAX_EXPERTS = 1024  # LLAMA_MAX_EXPERTS (llama-hparams.h)
ROPE_SCALING_TYPES = ("none", "linear", "yarn", "longrope")  # LLAMA_ROPE_SCALING_TYPES (llama-model.cpp)
SENTENCEPIECE = "llama"  # tokenizer.ggml.model of a SentencePiece vocabulary (llama-vocab.cpp)
NO_VOCABULARY = ("none", "no_vocab")  # tokenizer.ggml.model of a model without one (llama-vocab.cpp)
# Keys llama.cpp reads as one value for every layer or an array of one value per layer (get_key_or_arr).
PER_LAYER = ("feed_forward_length", "attention.head_count", "attention.head_count_kv", "expert_used_count")
# Architectures whose token embedding is not one row per token of the vocabulary (a draft head's).
OWN_EMBEDDING_ROWS = ("eagle3", "dflash")
# Architectures where llama.cpp treats a single expert as none (llama-model.cpp, load_hparams).
ONE_EXPERT_IS_NONE = ("hunyuan-dense", "hunyuan_vl")
PATH_SHOWN = 200  # the most characters of a path a message shows (one_line)
INT32_MAX = (1 << 31) - 1  # llama.cpp returns the trained context as a signed 32-bit number

KV = Mapping[str, Any]


def problem(kv: KV, shapes: Mapping[str, tuple[int, ...]]) -> str | None:
    """Why llama.cpp cannot load a model with this header (one line naming the key, its value and
    what llama.cpp allows), or None. `shapes` are the dimensions of every tensor, of every part."""
    arch = kv.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        said = "missing" if arch is None else f"{one_line(repr(arch))}, not a name"
        return f"general.architecture is {said}: llama.cpp needs it to know what model the file holds"
    if not known_architecture(arch):
        return (
            f"its architecture {one_line(arch)!r} (general.architecture) is not one this llama.cpp knows "
            "(a newer llama-cpp-python may know it)"
        )
    rules: tuple[Callable[[KV, str], str | None], ...] = (
        _layers, _context, _embedding, _experts, _rope_scaling, _vocabulary,
    )  # fmt: skip
    for rule in rules:
        found = rule(kv, arch)
        if found:
            return found
    return _embedding_rows(kv, arch, shapes)


def cut_short(header: GGUFHeader, size: int) -> str | None:
    """Why a file is incomplete: its tensors' data reaching past its end (an unfinished download)."""
    if header.data_end <= size:
        return None
    return (
        f"the file is cut short: its tensors' data ends at byte {header.data_end:,} but the file has "
        f"{size:,} bytes (an unfinished download or copy?)"
    )


def kind_problem(kind: str) -> str | None:
    """Why a GGUF file of this general.type is not a model to load on its own."""
    if kind == "adapter":
        return "it is a LoRA adapter (general.type adapter), not a model: llama.cpp loads it only beside its model"
    if kind == "mmproj":
        return "it is a vision projector (mmproj), not a model: llama.cpp loads it only beside its model"
    return None


def missing_byte_tokens(tokens: Iterable[bytes]) -> str | None:
    """Why a SentencePiece vocabulary cannot be used: it lacks a token for some of the 256 bytes.

    llama.cpp spells text it has no token for byte by byte ("<0x41>", or the byte itself) and, where
    the vocabulary has no such token, ends the process (llama_vocab::byte_to_token throws out of
    llama_tokenize). The scan stops as soon as every byte is found (early in a real vocabulary).
    """
    wanted = {f"<0x{b:02X}>".encode(): b for b in range(256)}
    found: set[int] = set()
    for token in tokens:
        byte = wanted.get(token)
        if byte is None and len(token) == 1:
            byte = token[0]
        if byte is not None:
            found.add(byte)
            if len(found) == len(wanted):
                return None
    missing = [b for b in range(256) if b not in found]
    return (
        f"its SentencePiece vocabulary (tokenizer.ggml.model {SENTENCEPIECE!r}) has no token for {len(missing)} "
        f"of the 256 bytes (<0x{missing[0]:02X}> first), which llama.cpp needs to spell any text byte by byte"
    )


@functools.cache
def _library_text() -> bytes | None:
    """The bytes of the libllama llama-cpp-python loaded (its architecture names are string constants)."""
    try:
        import llama_cpp

        return Path(llama_cpp.llama_cpp._lib._name).read_bytes()
    except (ImportError, AttributeError, OSError, TypeError):
        return None


def known_architecture(arch: str) -> bool:
    """Whether this llama.cpp has the architecture in its table (LLM_ARCH_NAMES), found as the
    NUL-ended string constant in its library; True where the library cannot be read (not checked)."""
    text = _library_text()
    return text is None or (arch.encode("utf-8", "replace") + b"\0" in text and arch != "(unknown)")


# --- the rules --------------------------------------------------------------------------------------


def _layers(kv: KV, arch: str) -> str | None:
    key = f"{arch}.block_count"
    n = _whole(kv, key)
    if n is None:
        return _missing_or_not_whole(kv, key, "the number of layers")
    if not 1 <= n <= MAX_LAYERS:
        return f"{key} is {n}, but llama.cpp allows 1 to {MAX_LAYERS} layers (LLAMA_MAX_LAYERS)"
    for name in PER_LAYER:
        value = kv.get(f"{arch}.{name}")
        if isinstance(value, GGUFArray) and value.length != n:
            return f"{arch}.{name} has {value.length} values, but llama.cpp needs one per layer: {n} ({key})"
    for name in ("nextn_predict_layers", "posnet.block_count", "convnext.block_count"):
        inner = _whole(kv, f"{arch}.{name}")
        if inner is not None and not 0 <= inner <= n:
            return f"{arch}.{name} is {inner}, but llama.cpp allows 0 to the model's {n} layers ({key})"
    return None


def _context(kv: KV, arch: str) -> str | None:
    key = f"{arch}.context_length"
    n = _whole(kv, key)
    if n is None:
        return _missing_or_not_whole(kv, key, "the trained context length")
    if not 0 <= n <= INT32_MAX:
        return f"{key} is {n}, but llama.cpp allows 0 to {INT32_MAX} tokens"
    return None


def _embedding(kv: KV, arch: str) -> str | None:
    key = f"{arch}.embedding_length"
    n = _whole(kv, key)
    if n is None:
        return _missing_or_not_whole(kv, key, "the embedding length")
    if n < 1:
        return f"{key} is {n}, but a model's embedding length is at least 1"
    return None


def _experts(kv: KV, arch: str) -> str | None:
    """llama.cpp's asserts on the mixture-of-experts counts (llama-model.cpp, load_hparams)."""
    count_key, used_key = f"{arch}.expert_count", f"{arch}.expert_used_count"
    groups_key, group_used_key = f"{arch}.expert_group_count", f"{arch}.expert_group_used_count"
    experts, used = _whole(kv, count_key) or 0, _largest(kv, used_key)
    groups, group_used = _whole(kv, groups_key) or 0, _whole(kv, group_used_key) or 0
    if arch in ONE_EXPERT_IS_NONE and experts <= 1:
        experts, used = 0, 0
    if experts > MAX_EXPERTS:
        return f"{count_key} is {experts}, but llama.cpp allows at most {MAX_EXPERTS} experts (LLAMA_MAX_EXPERTS)"
    if experts == 0:
        if used:
            return f"{used_key} is {used}, but the model has no experts ({count_key} is 0 or missing)"
        if groups:
            return f"{groups_key} is {groups}, but the model has no experts ({count_key} is 0 or missing)"
        return None
    if used == 0:
        return f"{used_key} is 0 or missing, but a model with experts ({count_key} is {experts}) must use at least one"
    if used > experts:
        return f"{used_key} is {used}, but llama.cpp allows at most the model's {experts} experts ({count_key})"
    if groups >= experts:
        return f"{groups_key} is {groups}, but llama.cpp needs fewer groups than the {experts} experts ({count_key})"
    if groups > 1 and experts % groups:
        return f"{groups_key} is {groups}, but it must divide the {experts} experts ({count_key}) evenly"
    if groups > 1 and not 1 <= group_used < groups:
        return f"{group_used_key} is {group_used}, but llama.cpp allows 1 to {groups - 1} of the {groups} groups"
    return None


def _rope_scaling(kv: KV, arch: str) -> str | None:
    key = f"{arch}.rope.scaling.type"
    value = kv.get(key)
    if isinstance(value, str) and value not in ROPE_SCALING_TYPES:
        return f"{key} is {one_line(value)!r}, but llama.cpp knows only {', '.join(ROPE_SCALING_TYPES)}"
    return None


def _vocabulary(kv: KV, arch: str) -> str | None:
    model = kv.get("tokenizer.ggml.model")
    if not isinstance(model, str):
        return "tokenizer.ggml.model is missing: llama.cpp needs the kind of tokenizer to read the vocabulary"
    if model in NO_VOCABULARY:
        return f"it has no vocabulary (tokenizer.ggml.model is {model!r}): andon needs one to turn text into tokens"
    if not isinstance(kv.get("tokenizer.ggml.tokens"), GGUFArray):
        return "tokenizer.ggml.tokens is missing: llama.cpp needs the vocabulary's tokens"
    return None


def _embedding_rows(kv: KV, arch: str, shapes: Mapping[str, tuple[int, ...]]) -> str | None:
    """The token embedding has one row per token of the vocabulary (llama.cpp refuses it otherwise)."""
    tokens, shape = kv.get("tokenizer.ggml.tokens"), shapes.get("token_embd.weight")
    if not isinstance(tokens, GGUFArray) or shape is None or len(shape) != 2 or arch in OWN_EMBEDDING_ROWS:
        return None
    if shape[1] != tokens.length:
        return (
            f"token_embd.weight has {shape[1]} rows but tokenizer.ggml.tokens lists {tokens.length} tokens: "
            "llama.cpp needs one row per token"
        )
    return None


# --- reading values ---------------------------------------------------------------------------------


def _whole(kv: KV, key: str) -> int | None:
    value = kv.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _largest(kv: KV, key: str) -> int:
    """A per-layer value's largest (an array), or the value itself; 0 when missing."""
    value = kv.get(key)
    if isinstance(value, GGUFArray):
        return max((int(v) for v in value.values), default=0)
    return _whole(kv, key) or 0


def _missing_or_not_whole(kv: KV, key: str, what: str) -> str:
    if key not in kv:
        return f"{key} is missing: llama.cpp needs {what}"
    value = kv[key]
    shown = f"a list of {value.length}" if isinstance(value, GGUFArray) else repr(value)
    return f"{key} is {one_line(shown)}, but llama.cpp needs {what} as a whole number"


def one_line(text: str, limit: int = 60) -> str:
    """Text from a file, or typed as a model's name, shown in one line of a message: control
    characters visible (a newline as ^J), cut to `limit` characters."""
    text = visible(text).replace("\n", "^J").replace("\t", "^I")
    return text if len(text) <= limit else text[: limit - 1] + "…"
