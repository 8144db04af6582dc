"""What the app remembers between runs (the theme chosen in the palette), in andon's config folder.

The file is small JSON (`tui.json`). Reading never fails: a missing file is no setting, a damaged
one is a line in andon's log and no setting. Writing goes through a temporary file renamed over the
old one, so a crash never leaves half a file.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from andon.app.tui.failures import log_file
from andon.presets.paths import config_dir


def settings_path() -> Path:
    return config_dir() / "tui.json"


def log_line(text: str) -> None:
    """One line in andon's log (where the app's unexpected errors go); never fails."""
    try:
        path = log_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as log:
            log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")
    except OSError:
        pass


class UiSettings:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else settings_path()

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:  # unreadable, not UTF-8, not JSON
            log_line(f"{self.path} could not be read ({exc}); the app's defaults are used")
            return {}
        if not isinstance(data, dict):
            log_line(f"{self.path} is not a JSON object; the app's defaults are used")
            return {}
        return data

    def theme(self) -> str | None:
        """The theme saved last, or None (none saved, or the file is damaged: logged)."""
        theme = self._read().get("theme")
        if theme is not None and not isinstance(theme, str):
            log_line(f"{self.path}: theme {theme!r} is not a name; the default theme is used")
            return None
        return theme

    def save_theme(self, name: str) -> None:
        """Remember the theme; OSError if the file cannot be written (the caller says so)."""
        data = {**self._read(), "theme": name}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(data, indent=2) + "\n", "utf-8")
        os.replace(temporary, self.path)
