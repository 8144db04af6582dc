"""Errors whose message is written for the user: one line on stderr, exit status 2."""

from __future__ import annotations

from app.engine import ContextFullError, ModelLoadError
from app.history import HistoryError
from app.model_files import ModelFileError
from presets.modelfile import ModelfileError
from presets.parameters import ParameterError
from presets.store import PresetError


class UsageError(Exception):
    """Bad command-line usage, reported like every other user error."""


USER_ERRORS = (
    ParameterError,
    PresetError,
    ModelLoadError,
    ModelFileError,
    ModelfileError,
    ContextFullError,
    HistoryError,
    UsageError,
)
