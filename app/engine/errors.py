"""The engine's error that every part of it may raise: kept apart so that they import it from here,
not from each other (loading, prompt and rpc did, in a circle)."""

from __future__ import annotations


class ModelLoadError(Exception):
    """The model could not be loaded; the message says why in a user's words."""
