"""A GGUF file's header (key-value metadata and tensor list), read without loading the weights.

`read(path)` uses llama.cpp's own reader, ggml's `gguf_init_from_file` with `no_alloc` (gguf.h), from
the ggml-base library llama-cpp-python ships: the same code that loads the model, in C, a few
milliseconds per file. If that library is not where llama-cpp-python keeps its libraries, the `gguf`
package's GGUFReader (by llama.cpp's authors, pure Python: seconds for a large vocabulary) is used.
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gguf import GGUFValueType

LARGE_ARRAY = 4096  # arrays longer than this (the vocabulary) keep only their length

_SCALARS: dict[int, Any] = {
    GGUFValueType.UINT8: ctypes.c_uint8, GGUFValueType.INT8: ctypes.c_int8,
    GGUFValueType.UINT16: ctypes.c_uint16, GGUFValueType.INT16: ctypes.c_int16,
    GGUFValueType.UINT32: ctypes.c_uint32, GGUFValueType.INT32: ctypes.c_int32,
    GGUFValueType.UINT64: ctypes.c_uint64, GGUFValueType.INT64: ctypes.c_int64,
    GGUFValueType.FLOAT32: ctypes.c_float, GGUFValueType.FLOAT64: ctypes.c_double,
    GGUFValueType.BOOL: ctypes.c_bool,
}  # fmt: skip


class GGUFHeaderError(Exception):
    """The header could not be read; the message is llama.cpp's (or the gguf package's) reason."""


@dataclass(frozen=True)
class GGUFArray:
    length: int
    values: tuple[Any, ...] = ()  # empty for string arrays and arrays longer than LARGE_ARRAY


@dataclass(frozen=True)
class GGUFHeader:
    kv: dict[str, Any]  # key -> str | int | float | bool | GGUFArray
    tensors: list[tuple[int, int, int]]  # (elements, ggml type, bytes) of each tensor
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # each tensor's name -> its dimensions
    data_end: int = 0  # the file offset where the last tensor's data ends: the least size of a whole file


def read(path: Path) -> GGUFHeader:
    """The header of one GGUF file; GGUFHeaderError says why it cannot be read."""
    lib = _library()
    return _read_native(lib, path) if lib is not None else read_with_gguf_package(path)


class _InitParams(ctypes.Structure):
    _fields_ = [("no_alloc", ctypes.c_bool), ("ctx", ctypes.c_void_p)]


@functools.cache
def _library() -> Any:
    """ggml-base from llama-cpp-python's library folder, with gguf.h's signatures; None if absent."""
    try:
        import llama_cpp
    except ImportError:
        return None
    # The ggml-base libllama itself uses (a wheel may hold a second copy under another file name, whose
    # log would not go where app/engine/llama_log.py routes llama.cpp's): its symbols through libllama's handle.
    lib = getattr(llama_cpp.llama_cpp, "_lib", None)
    if lib is None or not hasattr(lib, "gguf_init_from_file"):
        try:
            from llama_cpp._ctypes_extensions import load_shared_library

            base = os.environ.get("LLAMA_CPP_LIB_PATH") or Path(llama_cpp.__file__).parent / "lib"
            lib = load_shared_library("ggml-base", Path(base))
        except (ImportError, OSError, RuntimeError, FileNotFoundError):
            return None
    c = ctypes
    signatures: dict[str, tuple[Any, list[Any]]] = {
        "gguf_init_from_file": (c.c_void_p, [c.c_char_p, _InitParams]),
        "gguf_free": (None, [c.c_void_p]),
        "gguf_get_n_kv": (c.c_int64, [c.c_void_p]),
        "gguf_get_key": (c.c_char_p, [c.c_void_p, c.c_int64]),
        "gguf_get_kv_type": (c.c_int, [c.c_void_p, c.c_int64]),
        "gguf_get_arr_type": (c.c_int, [c.c_void_p, c.c_int64]),
        "gguf_get_arr_n": (c.c_size_t, [c.c_void_p, c.c_int64]),
        "gguf_get_arr_data": (c.c_void_p, [c.c_void_p, c.c_int64]),
        "gguf_get_val_str": (c.c_char_p, [c.c_void_p, c.c_int64]),
        "gguf_get_val_data": (c.c_void_p, [c.c_void_p, c.c_int64]),
        "gguf_get_n_tensors": (c.c_int64, [c.c_void_p]),
        "gguf_get_tensor_ne": (c.POINTER(c.c_int64), [c.c_void_p, c.c_int64]),
        "gguf_get_tensor_type": (c.c_int, [c.c_void_p, c.c_int64]),
        "gguf_get_tensor_size": (c.c_size_t, [c.c_void_p, c.c_int64]),
        "gguf_get_tensor_name": (c.c_char_p, [c.c_void_p, c.c_int64]),
        "gguf_get_tensor_offset": (c.c_size_t, [c.c_void_p, c.c_int64]),
        "gguf_get_data_offset": (c.c_size_t, [c.c_void_p]),
        "gguf_find_key": (c.c_int64, [c.c_void_p, c.c_char_p]),
        "gguf_get_arr_str": (c.c_char_p, [c.c_void_p, c.c_int64, c.c_size_t]),
    }
    try:
        for name, (restype, argtypes) in signatures.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = restype, argtypes
    except AttributeError:
        return None
    return lib


def _read_native(lib: Any, path: Path) -> GGUFHeader:
    from andon.app.engine import llama_log

    mark = llama_log.error_count()  # this file's own error, not one an earlier file logged
    ctx = lib.gguf_init_from_file(os.fsencode(path), _InitParams(True, None))
    if not ctx:
        raise GGUFHeaderError(llama_log.first_error_since(mark) or "llama.cpp could not read its GGUF header")
    try:
        kv = {lib.gguf_get_key(ctx, i).decode("utf-8", "replace"): _native_value(lib, ctx, i)
              for i in range(lib.gguf_get_n_kv(ctx))}  # fmt: skip
        tensors, shapes, data_end = [], {}, lib.gguf_get_data_offset(ctx)
        for t in range(lib.gguf_get_n_tensors(ctx)):
            ne, size = lib.gguf_get_tensor_ne(ctx, t), lib.gguf_get_tensor_size(ctx, t)
            tensors.append((ne[0] * ne[1] * ne[2] * ne[3], lib.gguf_get_tensor_type(ctx, t), size))
            shapes[lib.gguf_get_tensor_name(ctx, t).decode("utf-8", "replace")] = _dimensions(ne[0:4])
            data_end = max(data_end, lib.gguf_get_data_offset(ctx) + lib.gguf_get_tensor_offset(ctx, t) + size)
    finally:
        lib.gguf_free(ctx)
    return GGUFHeader(kv, tensors, shapes, data_end)


def strings(path: Path, key: str) -> Iterator[bytes]:
    """The items of one string array of the header (the vocabulary's tokens), one by one, so that a
    caller may stop early; nothing where the key is not a string array. GGUFHeaderError as `read`."""
    lib = _library()
    if lib is None:
        field = read_gguf_reader(path).fields.get(key)
        if field is not None and field.types[:1] == [GGUFValueType.ARRAY] and field.types[-1] == GGUFValueType.STRING:
            yield from (bytes(field.parts[i]) for i in field.data)
        return
    ctx = lib.gguf_init_from_file(os.fsencode(path), _InitParams(True, None))
    if not ctx:
        raise GGUFHeaderError("llama.cpp could not read its GGUF header")
    try:
        k = lib.gguf_find_key(ctx, key.encode())
        if k < 0 or lib.gguf_get_kv_type(ctx, k) != GGUFValueType.ARRAY:
            return
        if lib.gguf_get_arr_type(ctx, k) != GGUFValueType.STRING:
            return
        for i in range(lib.gguf_get_arr_n(ctx, k)):
            yield lib.gguf_get_arr_str(ctx, k, i)
    finally:
        lib.gguf_free(ctx)


def _dimensions(ne: Any) -> tuple[int, ...]:
    """A tensor's sizes without the trailing 1s ggml pads its four dimensions with (at least one)."""
    dims = [int(n) for n in ne]
    while len(dims) > 1 and dims[-1] == 1:
        dims.pop()
    return tuple(dims)


def _native_value(lib: Any, ctx: int, i: int) -> Any:
    kind = lib.gguf_get_kv_type(ctx, i)
    if kind == GGUFValueType.STRING:
        return lib.gguf_get_val_str(ctx, i).decode("utf-8", "replace")
    if kind == GGUFValueType.ARRAY:
        n = lib.gguf_get_arr_n(ctx, i)
        item = _SCALARS.get(lib.gguf_get_arr_type(ctx, i))
        if item is None or n > LARGE_ARRAY or n == 0:
            return GGUFArray(n)
        data = ctypes.cast(lib.gguf_get_arr_data(ctx, i), ctypes.POINTER(item * n)).contents
        return GGUFArray(n, tuple(data))
    ctype = _SCALARS.get(kind)
    if ctype is None:
        return None
    return ctypes.cast(lib.gguf_get_val_data(ctx, i), ctypes.POINTER(ctype)).contents.value


def read_gguf_reader(path: Path) -> Any:
    """The gguf package's GGUFReader over the file; GGUFHeaderError if it cannot read it."""
    from gguf import GGUFReader

    try:
        return GGUFReader(path)
    except (ValueError, KeyError, IndexError, OSError) as exc:
        raise GGUFHeaderError(f"the gguf package could not read its header ({exc})") from None


def read_with_gguf_package(path: Path) -> GGUFHeader:
    """The same header through the `gguf` package's GGUFReader (pure Python, slow on big vocabularies)."""
    reader = read_gguf_reader(path)
    kv: dict[str, Any] = {}
    for name, f in reader.fields.items():
        if name.startswith("GGUF."):  # the reader's own entries for version and counts
            continue
        if f.types[0] == GGUFValueType.ARRAY:
            n = len(f.data)
            small = n <= LARGE_ARRAY and f.types[-1] != GGUFValueType.STRING
            kv[name] = GGUFArray(
                n, tuple(v.item() if hasattr(v, "item") else v for v in f.contents()) if small and n else ()
            )
        else:
            value = f.contents()
            kv[name] = value.item() if hasattr(value, "item") else value
    tensors = [(int(t.n_elements), int(t.tensor_type), int(t.n_bytes)) for t in reader.tensors]
    shapes = {t.name: _dimensions(t.shape) for t in reader.tensors}
    data_end = max((int(t.data_offset) + int(t.n_bytes) for t in reader.tensors), default=0)
    return GGUFHeader(kv, tensors, shapes, data_end)
