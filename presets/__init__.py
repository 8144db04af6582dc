"""Parameters and presets: pydantic models, built-in presets, files on disk, Ollama compatibility.

The names below are read on first use (PEP 562): `andon.presets.paths` alone does not read pydantic
and the sampler registry (the app's first frame needs the paths, not the parameters)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from andon.presets.parameters import ALL_SPECS, DEFAULTS, ParameterError, Parameters, describe

__all__ = ["ALL_SPECS", "DEFAULTS", "ParameterError", "Parameters", "describe"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from andon.presets import parameters

        return getattr(parameters, name)
    raise AttributeError(f"module 'andon.presets' has no attribute {name!r}")
