"""Loading a GGUF into llama.cpp: the options, a refusal before allocating what cannot fit, and
one clear line when llama.cpp fails (blaming the file only when the file is the cause)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from andon.app.engine import llama_log
from andon.app.engine.errors import ModelLoadError
from andon.app.models.files import ModelPathError, check_gguf
from andon.presets.parameters import Parameters

if TYPE_CHECKING:
    from llama_cpp import Llama

THREADS_PER_CORE = 4
MEMORY_SHARE = 0.9  # of the available memory, what the model and its KV cache may take
KV_BYTES_PER_VALUE = 2  # llama.cpp's default KV cache type is f16
# More KV cache per token than any published GGUF model needs (a 65B model without grouped-query
# attention needs 2.5 MiB): a context below num_ctx times this fits without reading the metadata.
MAX_KV_BYTES_PER_TOKEN = 4 << 20
_META_KEYS = ("block_count", "embedding_length", "attention.head_count", "attention.head_count_kv",
              "attention.key_length", "attention.value_length", "attention.kv_lora_rank", "context_length")  # fmt: skip


@dataclass(frozen=True)
class ModelOptions:
    path: Path
    num_ctx: int = 4096
    num_gpu: int = -1
    num_thread: int = 0
    num_batch: int = 512
    verbose: bool = False
    rpc: tuple[str, ...] = ()  # llama.cpp RPC servers (host:port) for the layers (app/engine/rpc.py)
    # llama.cpp's default on CPU (auto); it also makes a token's logits the same whether it is
    # evaluated alone or in a batch, so verifying drafts changes no greedy choice (off: benchmarks)
    flash_attn: bool = True
    # called with the fraction loaded (0 to 1) while llama.cpp reads the weights (app/engine/load_progress.py)
    progress: Callable[[float], None] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_parameters(cls, path: Path, params: Parameters, verbose: bool = False) -> ModelOptions:
        return cls(
            path, params.num_ctx, params.num_gpu, params.num_thread, params.num_batch, verbose, tuple(params.rpc)
        )


def load_llama(options: ModelOptions) -> Llama:
    """The model loaded with a context of num_ctx tokens, or ModelLoadError saying why not."""
    import llama_cpp
    from andon.app.engine import load_progress, rpc
    from jinja2 import TemplateError

    llama_log.install(options.verbose)
    try:
        path = check_gguf(options.path)
    except ModelPathError as exc:
        raise ModelLoadError(str(exc)) from None
    check_threads(options.num_thread)
    if not options.rpc:  # with RPC servers, the weights and the cache are mostly theirs
        check_memory(path, options.num_ctx)
    try:
        with load_progress.reporting(options.progress):  # rpc.load returns once the model loaded
            return rpc.load(
                options.rpc,
                lambda: llama_cpp.Llama(
                    str(path),
                    n_ctx=options.num_ctx,
                    n_gpu_layers=options.num_gpu,
                    n_threads=options.num_thread or None,
                    n_threads_batch=options.num_thread or None,  # num_thread means every thread, as in Ollama
                    n_batch=min(options.num_batch, options.num_ctx),
                    flash_attn=options.flash_attn,
                    verbose=options.verbose,
                ),
            )
    except (ValueError, RuntimeError, OSError) as exc:
        raise ModelLoadError(_load_failure(path, options, str(exc))) from None
    except TemplateError as exc:  # llama-cpp-python compiles the file's chat templates as it loads
        from andon.app.engine.prompt import invalid_template

        raise invalid_template(path.name, exc) from None


def _load_failure(path: Path, options: ModelOptions, message: str) -> str:
    detail = llama_log.last_error() or message
    if "load model" in message:  # llama-cpp-python: "Failed to load model from file"
        return (
            f"could not load model {path}: {detail} "
            "(the file may be truncated, damaged, or of an architecture this llama.cpp does not support)"
        )
    return (
        f"could not create a context of {options.num_ctx} tokens (num_ctx) for {path.name}: {detail} "
        "(lower num_ctx or num_batch)"
    )


# --- what this machine can take ---------------------------------------------------------------------


def check_threads(num_thread: int) -> None:
    """Refuse more threads than THREADS_PER_CORE per CPU core this process may use."""
    cores = cpu_cores()
    if num_thread > THREADS_PER_CORE * cores:
        raise ModelLoadError(
            f"num_thread: {num_thread} is not allowed on this machine (must be <= {THREADS_PER_CORE * cores}: "
            f"{THREADS_PER_CORE} per CPU core, and andon may use {cores})"
        )


def cpu_cores() -> int:
    """The CPU cores this process may run on (its affinity where the system says, else all)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# --- memory ---------------------------------------------------------------------------------------


def check_memory(path: Path, num_ctx: int) -> None:
    """Refuse, before anything is allocated, a context whose KV cache cannot fit in memory.

    The need is estimated from the model's metadata (layers, KV heads, head sizes, f16 values)
    plus the file's size for the weights; it must fit in MEMORY_SHARE of what the system can give
    without swapping (MemAvailable), leaving the rest for llama.cpp's compute buffers and the
    machine's other work. Without either figure the check is skipped.
    """
    available = available_memory()
    if available is None:
        return
    usable = int(available * MEMORY_SHARE)
    weights = path.stat().st_size
    if num_ctx * MAX_KV_BYTES_PER_TOKEN + weights <= usable:
        return
    meta = read_metadata(path, _META_KEYS)
    per_token = kv_bytes_per_token(meta)
    if per_token is None:
        return
    need = num_ctx * per_token
    if need + weights > usable:
        fits, trained = max(0, (usable - weights) // per_token), int(meta.get("context_length") or 0)
        lower = f"about {fits} would fit"  # or, when more fits, no more than the model was trained on
        if 0 < trained <= fits:
            lower = f"at most {trained}, the context it was trained on"
        raise ModelLoadError(
            f"num_ctx {num_ctx} needs about {_size(need)} of memory for the context (KV cache) of "
            f"{path.name}, plus {_size(weights)} for the model, but {_size(available)} is available: "
            f"lower num_ctx ({lower})"
        )


def available_memory() -> int | None:
    """Bytes the system can give without swapping: MemAvailable on Linux, else free pages."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def kv_bytes_per_token(meta: Mapping[str, Any]) -> int | None:
    """KV cache bytes per token of context, as llama.cpp allocates it (f16 keys and values in
    every layer); None for a model whose cache is not of that shape (MLA, recurrent) or unknown."""
    try:
        n_layer = int(meta["block_count"])
        n_head = _per_layer(meta["attention.head_count"], n_layer)
        n_head_kv = _per_layer(meta.get("attention.head_count_kv", meta["attention.head_count"]), n_layer)
        n_embd = int(meta["embedding_length"])
    except (KeyError, TypeError, ValueError):
        return None
    if "attention.kv_lora_rank" in meta or not n_head or not n_head[0]:
        return None
    k = int(meta.get("attention.key_length", n_embd // n_head[0]))
    v = int(meta.get("attention.value_length", n_embd // n_head[0]))
    return sum(n_head_kv) * (k + v) * KV_BYTES_PER_VALUE


def _per_layer(value: Any, n_layer: int) -> list[int]:
    """A value given once for all layers (8) or per layer (an array: [8, 8, 0])."""
    values = getattr(value, "values", None)  # gguf_header.GGUFArray
    if values is not None:
        return [int(x) for x in values]
    return [int(value)] * n_layer


def read_metadata(path: Path, keys: Iterable[str]) -> dict[str, Any]:
    """These values of the model's architecture ("block_count" is read as "llama.block_count")
    from its GGUF header, by llama.cpp's own reader without loading the weights; {} if the
    header cannot be read (loading the model then says why)."""
    from andon.app.models import gguf_header

    try:
        kv = gguf_header.read(path).kv
    except gguf_header.GGUFHeaderError:
        return {}
    arch = kv.get("general.architecture")
    return {key: kv[f"{arch}.{key}"] for key in keys if f"{arch}.{key}" in kv}


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
