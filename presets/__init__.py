"""Parameters and presets: pydantic models, built-in presets, files on disk, Ollama compatibility."""

from andon.presets.parameters import ALL_SPECS, DEFAULTS, ParameterError, Parameters, describe

__all__ = ["ALL_SPECS", "DEFAULTS", "ParameterError", "Parameters", "describe"]
