"""What a client may ask for: a model by the name `andon models` lists, or `NAME@PRESET`.

A request names models only: a name is looked up among the models andon found (never taken as a
path), so nothing a request sends reaches a file outside the model folders andon already knows.
The discovery and each model's settings are kept a few seconds (a chat client asks every turn).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from andon.app.chat.settings import Settings, resolve_settings
from andon.app.engine.speculative import check_draft
from andon.app.engine.structured import grammar_for
from andon.app.models.catalog import info_for
from andon.app.models.files import ModelInfo
from andon.app.models.sources import Discovery, ModelEntry, discover, ollama_key
from andon.presets.parameters import ParameterError, Parameters
from andon.presets.store import PresetError, PresetStore

PRESET_MARK = "@"  # NAME@PRESET: a model with one of andon's presets
KEPT_S = 5.0  # how long a discovery or a model's settings are reused before they are read again
REFUSED_OPTIONS = {
    "rpc": "rpc: a request cannot set it (it would connect the server to other machines); "
    "set it in a preset on the server's machine",
}

T = TypeVar("T")


class UnknownModel(LookupError):
    """A model name that names no model andon found (HTTP 404, as Ollama answers)."""


@dataclass(frozen=True)
class Target:
    """A model and the preset a request asked for (None: the default preset)."""

    entry: ModelEntry
    preset: str | None


class _Kept:
    """Values reused for KEPT_S seconds, by key."""

    def __init__(self) -> None:
        self._values: dict[Any, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Any, make: Callable[[], T]) -> T:
        now = time.monotonic()
        with self._lock:
            kept = self._values.get(key)
        if kept is not None and now - kept[0] < KEPT_S:
            return kept[1]
        value = make()
        with self._lock:
            self._values[key] = (now, value)
        return value


class Catalog:
    """The models and presets a client may name, and the settings a request runs with."""

    def __init__(self, store: PresetStore | None = None) -> None:
        self.store = store or PresetStore()
        self._kept = _Kept()

    def models(self) -> list[ModelEntry]:
        """The usable models, as `andon models` finds them."""
        found: Discovery = self._kept.get("discovery", discover)
        return [e for e in found.entries if not e.problem]

    def info(self, entry: ModelEntry) -> ModelInfo:
        """The model's GGUF header (read once a while)."""
        return self._kept.get(("info", entry.path), lambda: info_for(entry))

    def presets(self) -> list[str]:
        return list(self._kept.get("presets", self.store.names))

    def names(self) -> list[tuple[str, ModelEntry]]:
        """Every name a client may choose: each model, then each model with each preset."""
        models, presets = self.models(), self.presets()
        return [(e.name, e) for e in models] + [(f"{e.name}{PRESET_MARK}{p}", e) for e in models for p in presets]

    def resolve(self, name: object) -> Target:
        """The model and preset `name` means; UnknownModel (one line) where it names none."""
        if not isinstance(name, str) or not name.strip():
            raise ParameterError("model: expected a model name (GET /api/tags or /v1/models lists them)")
        base, mark, preset = name.strip().rpartition(PRESET_MARK)
        if not mark:
            base, preset = preset, ""
        entry = self._entry(base)
        if preset and preset not in self.presets():
            raise UnknownModel(f"model {name!r} not found: no preset {preset!r} (presets: {', '.join(self.presets())})")
        return Target(entry, preset or None)

    def _entry(self, name: str) -> ModelEntry:
        query, full = name.lower(), ollama_key(name)
        models = self.models()
        for test in (lambda e: e.name.lower() == query, lambda e: query in e.aliases or full in e.aliases):
            found = [e for e in models if test(e)]
            if found:
                return found[0]
        raise UnknownModel(f"model {name!r} not found (GET /api/tags or /v1/models lists the models andon serves)")

    def settings(self, target: Target) -> Settings:
        """The preset over the model's own defaults, as `andon ask --model NAME --preset P` has them."""
        key = (target.entry.name, target.preset)
        try:
            return self._kept.get(key, lambda: resolve_settings(target.preset, (), None, target.entry.name))
        except PresetError as exc:
            raise UnknownModel(str(exc)) from None

    def parameters(self, target: Target, options: Mapping[str, Any]) -> Parameters:
        """The request's options over the model's settings, checked as `--set` checks them (one parser:
        ParameterError names the first problem); a draft model is named, never a path."""
        for name in options:
            if name in REFUSED_OPTIONS:
                raise ParameterError(REFUSED_OPTIONS[name])
        params = Parameters.of(options, base=self.settings(target).params)
        if "draft" in options and params.draft.strip() not in ("", "ngram"):
            try:
                draft = self._entry(params.draft.strip())
            except UnknownModel as exc:
                raise ParameterError(f"draft: {exc}") from None
            params = Parameters.of({"draft": str(draft.path)}, base=params)
        grammar_for(params)  # a bad schema or grammar is refused before any work
        check_draft(params)
        return params
