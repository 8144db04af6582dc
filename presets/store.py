"""Built-in presets shipped as files, user presets as TOML files in the user config directory.

A user preset shadows a built-in one of the same name; deleting it brings the built-in back.
A broken file never stops andon: it is reported (file, field, reason), left untouched, and the
other presets still load.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import tomli_w
from andon.presets.parameters import ParameterError, Parameters
from andon.presets.paths import presets_dir
from andon.presets.preset import Preset, PresetError, check_name
from andon.presets.text import TextError, read_text
from pydantic import ValidationError

__all__ = ["DEFAULT_PRESET", "PresetEntry", "PresetError", "PresetProblem", "PresetStore"]

DEFAULT_PRESET = "balanced"
_DOC_KEYS = {"description", "task", "system", "model", "parameters"}


@dataclass(frozen=True)
class PresetProblem:
    path: Path
    field: str | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.path}" + (f": {self.field}" if self.field else "")
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class PresetEntry:
    preset: Preset
    source: Literal["builtin", "user"]
    shadows_builtin: bool = False


def parse_document(name: str, text: str, path: Path) -> Preset:
    """A preset from the text of its TOML file; PresetError naming file, field and reason."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PresetError(str(PresetProblem(path, None, f"not valid TOML ({exc})"))) from None
    return preset_from_document(name, doc, path)


def preset_from_document(name: str, doc: dict[str, Any], path: Path) -> Preset:
    unknown = sorted(set(doc) - _DOC_KEYS)
    if unknown:
        allowed = ", ".join(sorted(_DOC_KEYS))
        raise PresetError(str(PresetProblem(path, unknown[0], f"unknown field (allowed: {allowed})")))
    raw_params = doc.get("parameters", {})
    if not isinstance(raw_params, dict):
        raise PresetError(str(PresetProblem(path, "parameters", "must be a table of parameter = value")))
    try:
        params = Parameters.of(raw_params)
    except ParameterError as exc:
        field = str(exc).split(":", 1)[0]
        raise PresetError(str(PresetProblem(path, f"parameters.{field}", str(exc).split(": ", 1)[-1]))) from None
    fields = {k: v for k, v in doc.items() if k != "parameters"}
    try:
        return Preset(name=name, parameters=params, **fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or None
        raise PresetError(str(PresetProblem(path, where, err["msg"]))) from None


class PresetStore:
    """Presets by name: built-in ones from the package, user ones from `user_dir`."""

    def __init__(self, user_dir: Path | None = None) -> None:
        self.user_dir = user_dir if user_dir is not None else presets_dir()

    # --- reading ------------------------------------------------------------------------------

    def builtin_names(self) -> list[str]:
        return sorted(p.name[:-5] for p in _builtin_files().iterdir() if p.name.endswith(".toml"))

    def user_path(self, name: str) -> Path:
        return self.user_dir / f"{check_name(name)}.toml"

    def _user_files(self) -> tuple[list[Path], list[PresetProblem]]:
        """The user's preset files, and a problem for what stands where a file or folder should."""
        if not self.user_dir.is_dir():
            blocker = _blocker(self.user_dir)
            return [], [
                PresetProblem(blocker, None, "is a file, not a folder; user presets cannot be read")
            ] if blocker else []
        found = sorted(self.user_dir.glob("*.toml"))
        problems = [PresetProblem(p, None, _not_a_file(p)) for p in found if not p.is_file()]
        return [p for p in found if p.is_file()], problems

    def _read(self, name: str, path: Path) -> Preset:
        try:
            return parse_document(name, read_text(path), path)
        except (OSError, TextError) as exc:
            raise PresetError(str(_problem(path, exc))) from None

    def builtin(self, name: str) -> Preset:
        f = _builtin_files() / f"{name}.toml"
        if not f.is_file():
            raise PresetError(f"no built-in preset named {name!r}")
        return parse_document(name, f.read_text("utf-8"), Path(f"builtin/{name}.toml"))

    def scan(self) -> tuple[list[PresetEntry], list[PresetProblem]]:
        """Every preset that loads, and a problem for each user file that does not."""
        builtins = {n: self.builtin(n) for n in self.builtin_names()}
        entries: dict[str, PresetEntry] = {n: PresetEntry(p, "builtin") for n, p in builtins.items()}
        files, problems = self._user_files()
        for path in files:
            name = path.stem
            try:
                check_name(name)
                preset = self._read(name, path)
            except PresetError as exc:
                problems.append(_problem(path, exc))
                continue
            entries[name] = PresetEntry(preset, "user", shadows_builtin=name in builtins)
        return [entries[n] for n in sorted(entries)], problems

    def names(self) -> list[str]:
        return [e.preset.name for e in self.scan()[0]]

    def load(self, name: str) -> Preset:
        """The user preset of that name, else the built-in one; PresetError says why not."""
        path = self.user_path(name)
        if path.is_file():
            return self._read(name, path)
        if path.exists():
            raise PresetError(f"{path}: {_not_a_file(path)}; rename or remove it to use preset {name!r}")
        if name in self.builtin_names():
            return self.builtin(name)
        known = ", ".join(self.names())
        raise PresetError(f"no preset named {name!r} (presets: {known})")

    # --- writing ------------------------------------------------------------------------------

    def save(self, preset: Preset) -> Path:
        """Write the preset atomically: a temporary file in the same folder, then a rename."""
        path = self.user_path(preset.name)
        data = tomli_w.dumps(preset.to_document(), multiline_strings=True)
        if path.exists() and not path.is_file():
            raise PresetError(f"cannot save preset {preset.name!r}: {path} {_not_a_file(path)}; rename or remove it")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_atomically(path, data)
        except OSError as exc:
            raise PresetError(f"cannot save preset {preset.name!r} to {path}: {_reason(path.parent, exc)}") from None
        return path

    def delete(self, name: str) -> Path:
        path = self.user_path(name)
        if not path.is_file():
            if path.exists():
                raise PresetError(f"{path} {_not_a_file(path)}; andon leaves it alone")
            if name in self.builtin_names():
                raise PresetError(f"{name!r} is a built-in preset and cannot be deleted")
            raise PresetError(f"no user preset named {name!r}")
        try:
            path.unlink()
        except OSError as exc:
            raise PresetError(f"cannot delete {path}: {exc.strerror or exc}") from None
        return path


def _builtin_files():
    return resources.files("andon.presets") / "builtin"


def _write_atomically(path: Path, data: str) -> None:
    """A temporary file in the same folder, then a rename: a reader never sees half a preset."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _not_a_file(path: Path) -> str:
    return "is a folder, not a preset file" if path.is_dir() else "is not a regular file"


def _blocker(folder: Path) -> Path | None:
    """The file that stands where `folder` or one of its parents should be a folder, if any."""
    for p in (folder, *folder.parents):
        if p.exists():
            return None if p.is_dir() else p
    return None


def _reason(folder: Path, exc: OSError) -> str:
    blocker = _blocker(folder)
    if blocker is not None:
        return f"{blocker} is a file, not a folder"
    return exc.strerror or str(exc)


def _problem(path: Path, exc: BaseException) -> PresetProblem:
    if isinstance(exc, TextError):
        return PresetProblem(path, None, exc.detail.removeprefix("is "))
    if isinstance(exc, OSError):
        return PresetProblem(path, None, f"cannot be read: {exc.strerror or exc}")
    text = str(exc)
    prefix = f"{path}: "
    if text.startswith(prefix):
        rest = text[len(prefix) :]
        field, _, reason = rest.partition(": ")
        if reason and " " not in field:
            return PresetProblem(path, field, reason)
        return PresetProblem(path, None, rest)
    return PresetProblem(path, None, text)
