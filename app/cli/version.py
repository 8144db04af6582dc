"""`andon --version`: andon's version, and the llama-cpp-python and llama.cpp it runs on.

Fast: llama_cpp is not imported (that loads every backend); llama.cpp's commit is asked of ggml's
small base library alone, where the installed llama-cpp-python keeps it.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
from importlib import metadata
from pathlib import Path
from typing import Any

HELP = "print the versions of andon, llama-cpp-python and llama.cpp"
_GGML_BASE = ("libggml-base.so", "libggml-base.dylib", "ggml-base.dll")


def version_text() -> str:
    """Two lines: `andon X.Y.Z`, then llama-cpp-python's version and llama.cpp's commit where known."""
    from andon import __version__

    try:
        binding = f"llama-cpp-python {metadata.version('llama_cpp_python')}"
    except metadata.PackageNotFoundError:
        return f"andon {__version__}\nllama-cpp-python is not installed"
    commit, ggml = _ggml_build()
    return f"andon {__version__}\n{binding}" + (f" (llama.cpp {commit}, ggml {ggml})" if commit else "")


def _ggml_build() -> tuple[str, str]:
    """llama.cpp's commit and ggml's version from the ggml llama-cpp-python ships; ("", "") if unknown."""
    spec = importlib.util.find_spec("llama_cpp")  # finds the package without running it
    if spec is None or not spec.submodule_search_locations:
        return "", ""
    lib = Path(next(iter(spec.submodule_search_locations))) / "lib"
    for name in _GGML_BASE:
        try:
            ggml = ctypes.CDLL(str(lib / name))
            return _text(ggml.ggml_commit), _text(ggml.ggml_version)
        except (OSError, AttributeError):  # not this platform's name, or a ggml too old to say
            continue
    return "", ""


def _text(function: Any) -> str:
    function.restype, function.argtypes = ctypes.c_char_p, []
    return (function() or b"").decode("utf-8", "replace")


class VersionAction(argparse.Action):
    """`--version` / `-V`: print version_text() and exit 0 (argparse's own action wants the text up front)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help=HELP)

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        print(version_text())
        parser.exit()
