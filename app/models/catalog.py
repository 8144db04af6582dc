"""Models by name: `--model`, a Modelfile's FROM and `andon models` all go through here.

A model is given as a path to a .gguf file, an Ollama name (`qwen2.5:0.5b`; `qwen2.5` means
`qwen2.5:latest`, the namespace `library` is the default), or any name `andon models` lists. An
unknown name is one line with the closest names that exist.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from andon.app.models.files import (
    EMBEDDED_NAME,
    ModelInfo,
    ModelPathError,
    embedded_model_path,
    model_stem,
    packaged_gemma_info,
    path_exists,
    read_gguf_info,
)
from andon.app.models.gguf_limits import PATH_SHOWN, one_line
from andon.app.models.sources import Discovery, ModelEntry, discover, ollama_key
from andon.presets.modelfile import ModelfileError
from andon.presets.preset import Preset

_PATH_STARTS = ("/", "~", "./", "../", ".\\", "..\\")


@dataclass(frozen=True)
class ListedModel:
    """A model `andon models` shows: where it was found and what its header says."""

    entry: ModelEntry
    info: ModelInfo

    def to_json(self) -> dict[str, Any]:
        e, i = self.entry, self.info
        defaults = e.defaults
        return {
            "name": e.name, "source": e.source, "path": str(e.path), "location": str(e.location),
            "size": i.file_size, "architecture": i.architecture, "parameters": i.parameters,
            "quantization": i.quantization, "context_length": i.context_length,
            "embedding_length": i.embedding_length, "block_count": i.block_count, "head_count": i.head_count,
            "head_count_kv": i.head_count_kv, "vocab_size": i.vocab_size, "chat_template": i.has_template,
            "general_name": i.name, "split_count": i.split_count, "aliases": sorted(set(e.aliases)),
            "ready": e.path.is_file(),
            "defaults": None if defaults is None else {
                "parameters": _plain(defaults.parameters), "system": defaults.system, "notes": defaults.notes,
            },
        }  # fmt: skip


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def list_models() -> tuple[list[ListedModel], list[str]]:
    """Every usable model with its header, and the problems met (files skipped, with why)."""
    found = discover()
    problems = list(found.problems)
    infos: dict[Path, ModelInfo | None] = {}
    listed = []
    for entry in found.entries:
        if entry.problem:  # e.g. an Ollama model whose params layer cannot be read: shown, never used
            problems.append(f"{entry.name} ({entry.source}): {entry.problem}")
            continue
        if entry.path not in infos:
            try:
                infos[entry.path] = info_for(entry)
            except ModelPathError as exc:
                problems.append(f"{entry.name} ({entry.source}): {exc}")
                infos[entry.path] = None
        info = infos[entry.path]
        if info is not None and info.kind == "model":  # LoRA adapters and vision projectors are not listed
            listed.append(ListedModel(entry, info))
    return listed, problems


def info_for(entry: ModelEntry) -> ModelInfo:
    """The header of an entry's model (a packaged one is read from its chunks if not yet joined)."""
    if entry.source == "package" and not entry.path.is_file():
        return packaged_gemma_info()
    return read_gguf_info(entry.path)


def embedded_entry() -> ModelEntry:
    path = embedded_model_path()
    return ModelEntry(model_stem(path), "embedded", path, path.parent, aliases=("embedded",))


def find_model(text: str, base: Path | None = None, found: Discovery | None = None) -> ModelEntry:
    """The model a path or a name means; ModelPathError (one line, with the closest names) if none.

    `base` is the folder a relative path is taken from (a Modelfile's folder; else the current one).
    """
    text = text.strip()
    if not text:
        raise ModelPathError("the model is empty (give a name from `andon models` or the path of a .gguf file)")
    path = Path(text).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    if path_exists(path) and (not path.is_dir() or _looks_like_path(text)):
        return ModelEntry(model_stem(path), "file", path, path.parent)
    if _looks_like_path(text):
        where = " (a relative path is taken from the Modelfile's folder)" if base is not None else ""
        raise ModelPathError(f"model file not found: {one_line(str(path), PATH_SHOWN)}{where}")
    entry = _lookup(text, (found or discover()).entries)
    if entry.problem:
        raise ModelPathError(f"cannot use model {entry.name}: {entry.problem}")
    return entry


def _looks_like_path(text: str) -> bool:
    return text.lower().endswith(".gguf") or text.startswith(_PATH_STARTS)


def _lookup(text: str, entries: list[ModelEntry]) -> ModelEntry:
    query, full = text.lower(), ollama_key(text)
    exact = [e for e in entries if e.name.lower() == query]
    if exact:
        return exact[0]
    matches = [e for e in entries if query in e.aliases or full in e.aliases]
    files = {os.path.realpath(e.path) for e in matches}
    if len(files) == 1:
        return matches[0]
    if matches:
        names = ", ".join(e.name for e in matches[:5])
        raise ModelPathError(
            f"the model name {one_line(text)!r} fits several models: {names} (give one of these names)"
        )
    raise ModelPathError(unknown_model_message(text, entries))


def unknown_model_message(text: str, entries: list[ModelEntry]) -> str:
    by_key: dict[str, str] = {}
    for e in entries:
        by_key.setdefault(e.name.lower(), e.name)
        for alias in e.aliases:
            if alias.count("/") < 2:  # the long Ollama forms are not suggested
                by_key.setdefault(alias, e.name)
    query = text.lower()
    scores = {k: max(_similarity(query, k), _similarity(query, k[: len(query)])) for k in by_key}
    close = sorted((k for k, score in scores.items() if score >= 0.6), key=lambda k: -scores[k])
    names = list(dict.fromkeys(by_key[k] for k in close))[:3]
    hint = f"; closest: {', '.join(names)}" if names else ""
    return f"unknown model {one_line(text)!r}{hint} (`andon models` lists the models andon found; or give a .gguf path)"


def _similarity(a: str, b: str) -> float:
    """difflib's ratio; a long name is also compared by its start, so `smollm2` finds `SmolLM2-135M-...`."""
    return difflib.SequenceMatcher(None, a, b).ratio()


def model_for(model: str | None, preset: Preset | None = None) -> ModelEntry:
    """--model if given, else the model the preset was made for (its FROM), else the embedded one.

    A preset's model that cannot be found is an error naming the preset: never silently another model.
    """
    if model:
        return find_model(model)
    if preset is not None and preset.model:
        try:
            return find_model(preset.model)
        except ModelPathError as exc:
            problem = preset_model_problem(preset.name, preset.model, str(exc))
            raise ModelPathError(f"{problem}; pass --model to use another model with it") from None
    return embedded_entry()


def preset_model_problem(preset: str, model: str, error: str) -> str:
    """The line for a preset whose model (its FROM) cannot be found, in `ask` and in the app."""
    return f"preset {preset!r} is made for the model {model!r}, which cannot be used: {error}"


def resolve_from(arg: str, modelfile_folder: Path) -> str | None:
    """A Modelfile's FROM, checked at import: an absolute path or a model name to keep in the preset.

    None means the embedded model: andon's own export writes `FROM ./SmolLM2-135M-Instruct.Q4_1.gguf`
    for a preset made for no particular model, and that file name always means the embedded model.
    """
    if Path(arg).name == EMBEDDED_NAME and not path_exists(modelfile_folder / Path(arg).expanduser()):
        return None
    try:
        entry = find_model(arg, base=modelfile_folder)
    except ModelPathError as exc:
        raise ModelfileError(str(exc)) from None
    if entry.source == "file":
        return os.path.abspath(entry.path)  # absolute, symlinks kept (a split model is found by its name)
    return None if entry.source == "embedded" else entry.name


def display_name(model: str | Path) -> str:
    """A short readable name for a model path or name: its Ollama or `andon models` name, else the file stem."""
    text = str(model)
    path = Path(text).expanduser()
    found = discover()
    try:
        exists = path_exists(path)
    except ModelPathError:
        return one_line(text)
    if not exists:
        try:
            return _lookup(text, found.entries).name
        except ModelPathError:
            return text
    same = [e for e in found.entries if e.path == path.absolute()]  # an Ollama blob: its name, not its digest
    real = os.path.realpath(path)
    same = same or [e for e in found.entries if os.path.realpath(e.path) == real]
    return same[0].name if same else model_stem(path)


def human_size(n: int) -> str:
    """A file's size as `andon models` and the model picker show it."""
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def human_count(n: int) -> str:
    """A parameter count as `andon models` and the model picker show it."""
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"
