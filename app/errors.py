"""Errors whose message is written for the user: one line on stderr, exit status 2."""

from __future__ import annotations

from andon.app.chat.history import HistoryError
from andon.app.engine.engine import ContextFullError, ModelLoadError
from andon.app.engine.grammar import GrammarError
from andon.app.models.files import ModelPathError
from andon.presets.modelfile import ModelfileError
from andon.presets.parameters import ParameterError
from andon.presets.store import PresetError
from andon.presets.text import TextError


class UsageError(Exception):
    """Bad command-line usage, reported like every other user error."""


USER_ERRORS = (
    ParameterError,
    PresetError,
    ModelLoadError,
    ModelPathError,
    ModelfileError,
    ContextFullError,
    HistoryError,
    UsageError,
    GrammarError,
    TextError,
)
