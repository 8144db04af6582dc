"""Every path andon writes, from platformdirs (so XDG_CONFIG_HOME, XDG_DATA_HOME and XDG_CACHE_HOME move them)."""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
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


def preset_file_named(name: str) -> bool:
    """Whether a preset of that name has a file, the user's or a built-in one, looked up without
    reading it (no pydantic): `andon --preset NAME` checks this before its first frame and reads the
    preset behind it (a name with no file gets PresetStore's one line before the app starts)."""
    if not name or any(c in name for c in "/\\\0") or name.startswith("."):
        return False
    return (presets_dir() / f"{name}.toml").is_file() or (builtin_presets() / f"{name}.toml").is_file()


def builtin_presets() -> Traversable:
    """The folder of the presets andon ships (their TOML files)."""
    return resources.files("andon.presets") / "builtin"
