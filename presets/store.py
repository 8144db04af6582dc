"""Built-in presets shipped as files, user presets as TOML files in the user config directory.

A user preset shadows a built-in one of the same name; deleting it brings the built-in back.
A broken file never stops andon: it is reported (file, field, reason), left untouched, and the
other presets still load.
"""

from __future__ import annotations

import errno
import os
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import tomli_w
from andon.presets.parameters import ParameterError, Parameters
from andon.presets.paths import builtin_presets, presets_dir
from andon.presets.preset import Preset, PresetError, check_name
from andon.presets.text import TextError, check, read_text
from pydantic import ValidationError

__all__ = ["DEFAULT_PRESET", "PresetEntry", "PresetError", "PresetProblem", "PresetStore", "os_reason"]

DEFAULT_PRESET = "balanced"
_DOC_KEYS = {"description", "task", "system", "model", "parameters", "messages", "template"}


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
        return sorted(p.name[:-5] for p in builtin_presets().iterdir() if p.name.endswith(".toml"))

    def user_path(self, name: str) -> Path:
        return self.user_dir / f"{check_name(name)}.toml"

    def _user_files(self) -> tuple[list[Path], list[PresetProblem]]:
        """The user's preset files, and a problem for what stands where a file or folder should."""
        folder = self.user_dir
        try:
            if not folder.is_dir():
                blocker = _blocker(folder)
                if blocker:
                    return [], [PresetProblem(blocker, None, "is a file, not a folder; user presets cannot be read")]
                if folder.is_symlink():  # a broken link
                    why = f"is a link to {os.readlink(folder)}, which does not exist; user presets cannot be read"
                    return [], [PresetProblem(folder, None, why)]
                return [], []
            found = sorted(folder.glob("*.toml"))
            problems = [PresetProblem(p, None, _not_a_file(p)) for p in found if not p.is_file()]
            return [p for p in found if p.is_file()], problems
        except OSError as exc:  # a path too long, a folder andon may not read
            return [], [PresetProblem(folder, None, f"cannot be read: {os_reason(exc, folder)}")]

    def _read(self, name: str, path: Path) -> Preset:
        try:
            return parse_document(name, read_text(path), path)
        except (OSError, TextError) as exc:
            raise PresetError(str(_problem(path, exc))) from None

    def builtin(self, name: str) -> Preset:
        f = builtin_presets() / f"{name}.toml"
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
        if _is_file(path, f"read preset {name!r} from"):
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
        document = preset.to_document()
        _check_text(preset.name, document)
        data = tomli_w.dumps(document, multiline_strings=True)
        try:
            if path.exists() and not path.is_file():
                raise PresetError(
                    f"cannot save preset {preset.name!r}: {path} {_not_a_file(path)}; rename or remove it"
                )
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_atomically(path, data)
        except OSError as exc:
            raise PresetError(f"cannot save preset {preset.name!r} to {path}: {os_reason(exc, path)}") from None
        return path

    def delete(self, name: str) -> Path:
        path = self.user_path(name)
        if not _is_file(path, "delete"):
            if path.exists():
                raise PresetError(f"{path} {_not_a_file(path)}; andon leaves it alone")
            if name in self.builtin_names():
                raise PresetError(f"{name!r} is a built-in preset and cannot be deleted")
            raise PresetError(f"no user preset named {name!r}")
        try:
            path.unlink()
        except OSError as exc:
            raise PresetError(f"cannot delete {path}: {os_reason(exc, path)}") from None
        return path


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


def _is_file(path: Path, doing: str) -> bool:
    """Whether `path` is a file; PresetError (one line) when it cannot even be looked at."""
    try:
        return path.is_file()
    except OSError as exc:  # Python 3.11's is_file raises for a path too long or a folder not searchable
        raise PresetError(f"cannot {doing} {path}: {os_reason(exc, path)}") from None


def _not_a_file(path: Path) -> str:
    return "is a folder, not a preset file" if path.is_dir() else "is not a regular file"


def _blocker(folder: Path) -> Path | None:
    """The file that stands where `folder` or one of its parents should be a folder, if any."""
    for p in (folder, *folder.parents):
        if p.exists():
            return None if p.is_dir() else p
    return None


def os_reason(exc: OSError, path: Path) -> str:
    """Why reading or writing `path` failed, as one line that says what should be there.

    The system's own words ("File exists", "Not a directory") name a symptom; this names the thing
    in the way: a file or a broken link where a folder should be, a folder where a file should be.
    """
    try:
        in_the_way = _in_the_way(path)
        if in_the_way:
            return in_the_way
        is_dir = path.is_dir()
    except OSError:  # the path cannot even be looked at (too long, no permission): the error says why
        is_dir = False
    code = exc.errno
    if code == errno.EISDIR or (code == errno.EEXIST and is_dir):
        return f"{path} is a folder, not a file"
    if code == errno.ENAMETOOLONG:
        longest = max(path.parts, key=lambda part: len(os.fsencode(part)))
        size = len(os.fsencode(longest))
        if size > 255:
            return f"the name {longest[:24]}... is {size} bytes long, more than a file system allows (255)"
        return f"the path is too long for the file system ({len(os.fsencode(str(path)))} bytes)"
    reasons = {
        errno.ENOENT: f"{path} does not exist",
        errno.EACCES: "permission denied (its permissions, or its folder's, keep andon out)",
        errno.EPERM: "the system does not permit it",
        errno.EROFS: "the file system is read-only",
        errno.ENOSPC: "the disk is full",
        errno.ELOOP: f"{path} is a loop of symbolic links",
    }
    return reasons.get(code or 0, exc.strerror or str(exc))


def _in_the_way(path: Path) -> str:
    """A broken link on the way to `path`, or a file where one of its folders should be ("" if none)."""
    for p in (path, *path.parents):
        if p.is_symlink() and not p.exists():
            needed = "folder" if p != path else "file"
            return f"{p} is a link to {os.readlink(p)}, which does not exist (a {needed} is needed there)"
        if p.exists():
            return f"{p} is a file, not a folder" if p != path and not p.is_dir() else ""
    return ""


def _check_text(name: str, document: dict[str, Any], where: str = "") -> None:
    """PresetError naming the field that holds a lone surrogate (JSON's \\ud800): it is not text, and a
    preset file is UTF-8."""
    for key, value in document.items():
        field = f"{where}{key}"
        if isinstance(value, dict):
            _check_text(name, value, f"{field}.")
        items = value if isinstance(value, list) else [value]
        for index, item in enumerate(items):
            if isinstance(item, dict):  # an example message
                _check_text(name, item, f"{field}[{index}].")
        for item in (key, *items):
            if isinstance(item, str):
                try:
                    check(item, field)
                except TextError as exc:
                    raise PresetError(f"cannot save preset {name!r}: {field} {exc.detail}") from None


def _problem(path: Path, exc: BaseException) -> PresetProblem:
    if isinstance(exc, TextError):
        return PresetProblem(path, None, exc.detail.removeprefix("is "))
    if isinstance(exc, OSError):
        return PresetProblem(path, None, f"cannot be read: {os_reason(exc, path)}")
    text = str(exc)
    prefix = f"{path}: "
    if text.startswith(prefix):
        rest = text[len(prefix) :]
        field, _, reason = rest.partition(": ")
        if reason and " " not in field:
            return PresetProblem(path, field, reason)
        return PresetProblem(path, None, rest)
    return PresetProblem(path, None, text)
