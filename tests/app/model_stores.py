"""Model stores built in a test folder the way Ollama, the Hugging Face hub and LM Studio lay them out."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import gguf
import numpy as np


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def add_ollama_model(
    store: Path, name: str, model: Path, digest: str, params: dict[str, Any] | None = None, system: str | None = None
) -> Path:
    """An Ollama manifest at manifests/HOST/NAMESPACE/MODEL/TAG, its blobs named by their sha256 digest."""
    blobs = store / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    model_blob = blobs / f"sha256-{digest}"
    if not model_blob.exists():
        model_blob.symlink_to(model)
    layers = [{"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{digest}",
               "size": model.stat().st_size}]  # fmt: skip
    if params is not None:
        layers.append(_blob_layer(blobs, "params", json.dumps(params).encode()))
    if system is not None:
        layers.append(_blob_layer(blobs, "system", system.encode()))
    config = _blob_layer(blobs, "config", b'{"model_format":"gguf"}')
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {**config, "mediaType": "application/vnd.docker.container.image.v1+json"},
                "layers": layers}  # fmt: skip
    host_ns_model, _, tag = name.rpartition(":")
    path = store / "manifests" / host_ns_model / tag
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest))
    return path


def _blob_layer(blobs: Path, kind: str, data: bytes) -> dict[str, Any]:
    hexdigest = hashlib.sha256(data).hexdigest()
    (blobs / f"sha256-{hexdigest}").write_bytes(data)
    return {"mediaType": f"application/vnd.ollama.image.{kind}", "digest": f"sha256:{hexdigest}", "size": len(data)}


def add_hf_file(cache: Path, repo: str, filename: str, model: Path, revision: str = "a" * 40) -> Path:
    """models--ORG--REPO/snapshots/REV/FILE -> ../../blobs/HASH, and refs/main naming REV."""
    root = cache / ("models--" + repo.replace("/", "--"))
    blob = root / "blobs" / sha256_of(model)
    blob.parent.mkdir(parents=True, exist_ok=True)
    if not blob.exists():
        blob.symlink_to(model)
    link = root / "snapshots" / revision / filename
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(blob, link.parent))
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(revision)
    return link


def fake_gguf(
    path: Path,
    arch: str = "llama",
    kind: str = "model",
    tensors: int = 3,
    split_max_tensors: int = 0,
    header: dict[str, Any] | None = None,
    embedding_rows: int | None = None,
) -> None:
    """A small GGUF with a header like a converter writes (not loadable: its weights are zeros).

    `header` changes keys ("{arch}" in a key is the architecture): an int is written as uint32, a
    list of ints as an array of them, a str as text, a (GGUFValueType, value) pair as that type,
    None leaves the key out. `embedding_rows` adds a token embedding (token_embd.weight) of that many rows.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(path, arch, split_max_tensors=split_max_tensors)
    keys: dict[str, Any] = {
        "general.type": kind, "general.name": f"fake {arch}", "{arch}.context_length": 1024,
        "{arch}.embedding_length": 64, "{arch}.block_count": 2, "{arch}.attention.head_count": 4,
        "general.file_type": (gguf.GGUFValueType.UINT32, int(gguf.LlamaFileType.ALL_F32)),
        "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.tokens": [f"t{i}" for i in range(100)],
    }  # fmt: skip
    keys.update(header or {})
    for key, value in keys.items():
        if value is not None:
            _add(w, key.replace("{arch}", arch), value)
    for i in range(tensors):
        w.add_tensor(f"blk.{i}.weight", np.zeros((16, 8), dtype=np.float32))
    if embedding_rows is not None:
        w.add_tensor("token_embd.weight", np.zeros((embedding_rows, 4), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def _add(w: gguf.GGUFWriter, key: str, value: Any) -> None:
    kinds = gguf.GGUFValueType
    if isinstance(value, tuple):
        w.add_key_value(key, value[1], value[0])
    elif isinstance(value, bool):
        w.add_key_value(key, value, kinds.BOOL)
    elif isinstance(value, int):
        w.add_key_value(key, value, kinds.UINT32)
    elif isinstance(value, str):
        w.add_key_value(key, value, kinds.STRING)
    else:
        item = kinds.STRING if value and isinstance(value[0], str) else kinds.UINT32
        w.add_key_value(key, list(value), kinds.ARRAY, sub_type=item)


def split_copy(model: Path, first_part: Path, max_tensors: int) -> list[Path]:
    """The model written again as a split GGUF (NAME-00001-of-0000N.gguf ...), with the gguf package."""
    from gguf.scripts.gguf_new_metadata import copy_with_new_metadata

    reader = gguf.GGUFReader(model)
    arch = reader.fields["general.architecture"].contents()
    stem = first_part.name.split("-00001-of-")[0]
    first_part.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(first_part.with_name(stem + ".gguf"), arch, split_max_tensors=max_tensors)
    copy_with_new_metadata(reader, writer, {}, [])
    return sorted(first_part.parent.glob(f"{stem}-*-of-*.gguf"))
