"""Every path andon writes, from platformdirs (so XDG_CONFIG_HOME, XDG_DATA_HOME and XDG_CACHE_HOME move them)."""

from __future__ import annotations

from pathlib import Path

import platformdirs

APP = "andon"


def config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP, appauthor=False))


def data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP, appauthor=False))


def cache_dir() -> Path:
    """What andon measured and may measure again (speculative decoding's batch costs)."""
    return Path(platformdirs.user_cache_dir(APP, appauthor=False))


def presets_dir() -> Path:
    return config_dir() / "presets"


def history_db() -> Path:
    return data_dir() / "history.sqlite3"
