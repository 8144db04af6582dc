"""The app's engine: loaded in the background, used by one worker at a time, reloaded when the
model settings (num_ctx, num_gpu, num_thread, num_batch) change. A reload that fails keeps the
model that was loaded before, and the next change of settings tries again.

The model is the open chat's (`current`, a ModelChoice): the chat screen resolves a chat's model
and switches to it (`switch`); a switch that fails keeps the model that was loaded before. Before
any chat chose one, it is the model andon was started with (`--model`, else the embedded one).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from andon.app.engine.client import EngineLike
from andon.app.engine.engine import ModelLoadError, ModelOptions
from andon.app.models.files import ModelPathError, model_stem
from andon.presets.modelfile import ImportedModelfile
from andon.presets.parameters import Parameters

EngineFactory = Callable[[ModelOptions], EngineLike]


@dataclass(frozen=True)
class ModelChoice:
    """A model a chat can use, resolved: what the chat stores, its name, its file, its defaults."""

    ref: str  # what the chat stores: a name from `andon models` or an absolute path ("": none recorded)
    name: str  # short and readable, for the status bar and the lines andon writes ("": unknown)
    path: Path
    defaults: ImportedModelfile | None = None  # an Ollama model's params and system layers


def choice_of(text: str) -> ModelChoice:
    """The model a name or a path means (ModelPathError, one line with the closest names, if none).

    It reads the model folders (and may join a packaged model from its chunks): call it off the UI thread.
    """
    from andon.app.models.catalog import display_name, find_model

    entry = find_model(text)
    path = entry.load_path()
    if entry.source == "file":
        return ModelChoice(os.path.abspath(entry.path), display_name(path), path, entry.defaults)
    return ModelChoice(entry.name, entry.name, path, entry.defaults)


class EngineHost:
    def __init__(
        self,
        factory: EngineFactory,
        model_path: Path | Callable[[], Path],
        verbose: bool = False,
        rpc: tuple[str, ...] = (),
        model: str = "",
    ) -> None:
        self.factory = factory
        self._model_path = model_path  # the model andon was started with
        self.start_model = model  # how `--model` named it ("": not given, the embedded model)
        self.verbose = verbose
        self.rpc = rpc  # `andon --rpc`: the RPC servers of the chats whose parameters name none
        self.current: ModelChoice | None = None  # the open chat's model, once a chat chose one
        self.progress: Callable[[float], None] | None = None  # told the fraction loaded while a model loads
        self._start: ModelChoice | None = None
        self.engine: EngineLike | None = None
        self.error: str | None = None  # why the last load failed; None after a load that worked
        self.loaded = threading.Event()  # set once the first load has ended, well or not
        self.lock = threading.RLock()  # a reply, an inspection or a reload: one at a time
        self._failed: ModelOptions | None = None  # the options of the last load that failed

    def options(self, params: Parameters, model: ModelChoice | None = None) -> ModelOptions:
        """The options to load `model` (else the current one) with these parameters."""
        model = model or self.current
        path = model.path if model is not None else self._start_path()
        options = ModelOptions.from_parameters(path, params, self.verbose)
        return options if options.rpc or not self.rpc else replace(options, rpc=self.rpc)

    def _start_path(self) -> Path:
        try:
            return self._model_path() if callable(self._model_path) else self._model_path
        except Exception as exc:  # e.g. the embedded model is not installed: reported by the load
            return Path(f"<{exc}>")

    # --- which model ----------------------------------------------------------------------------

    def start_choice(self) -> ModelChoice:
        """The model andon was started with (off the UI thread: it may read the model folders)."""
        if self._start is None:
            self._start = choice_of(self.start_model) if self.start_model else self._unnamed(self._start_path())
        return self._start

    def model_label(self) -> str:
        """The short name of the model in use (or about to be), "" when not known yet; no files read."""
        model = self.current or self._start
        return model.name if model is not None else ""

    def resolve(self, ref: str) -> ModelChoice:
        """A chat's model: its ref resolved, or the model in use for a chat that has none recorded.

        ModelPathError when the chat's model is gone (its file deleted, its name no longer found).
        """
        if not ref:
            return self.current or self.start_choice()
        start = self.start_choice()
        return start if ref == start.ref else choice_of(ref)

    @staticmethod
    def _unnamed(path: Path) -> ModelChoice:
        """The start model without --model: the embedded model, known by its name in `andon models`."""
        from andon.app.models.catalog import embedded_entry

        try:
            entry = embedded_entry()  # the embedded model's entry, without scanning every model folder
        except ModelPathError:
            entry = None
        if entry is not None and os.path.realpath(entry.path) == os.path.realpath(path):
            return ModelChoice(entry.name, entry.name, path)
        return ModelChoice("", model_stem(path) if path.is_file() else "", path)

    def switch(self, model: ModelChoice, params: Parameters) -> str | None:
        """Load `model` as the current one (blocking, on a worker thread); None if it worked, else why not.

        When it fails, the model loaded before is loaded again and stays the current one.
        """
        with self.lock:
            options = self.options(params, model)
            if self.engine is not None and self.engine.options == options:  # that model is loaded already
                self.current, self.error = model, None
                self.loaded.set()
                return None
            self.load(options)
            if self.error is None or self.engine is None:  # nothing to go back to: it stays the one asked for
                self.current = model
            return self.error

    def load(self, options: ModelOptions) -> None:
        """Load (blocking, on a worker thread); a failure is kept in `error`, never raised.

        The engine loaded before is closed first (two copies of a model may not fit in memory);
        if the new one fails, the old one is loaded again, so the app goes on as it was.
        """
        with self.lock:
            previous = self.engine.options if self.engine is not None else None
            self.close()
            self.error = self._try(options)
            self._failed = options if self.error is not None else None
            if self.error is not None and previous is not None and self._try(previous) is not None:
                self.engine = None  # the old model could not come back either
        self.loaded.set()

    def engine_for(self, params: Parameters) -> EngineLike:
        """The engine for these parameters, reloaded if its model options differ. Hold `lock`.

        ModelLoadError if they cannot be loaded; options that just failed are not tried again
        until something else was asked for.
        """
        wanted = self.options(params)
        if self.engine is not None and not self.engine.alive():  # it died (killed, crashed): a new one
            self.close()
            self._failed = None
        if self.engine is not None and self.engine.options == wanted:
            self._failed = None
            return self.engine
        if wanted != self._failed:
            self.load(wanted)
        if self.engine is None or self.engine.options != wanted:
            raise ModelLoadError(self.error or "the model could not be loaded")
        return self.engine

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None

    def _try(self, options: ModelOptions) -> str | None:
        """Load into `engine`; None if it worked, else why not (in the user's words)."""
        try:
            self.engine = self.factory(replace(options, progress=self.progress))
        except ModelLoadError as exc:
            return str(exc)
        except (OSError, ValueError) as exc:
            return f"could not load the model: {exc}"
        except Exception as exc:  # never a traceback in the app
            return f"could not load the model: {type(exc).__name__}: {exc}"
        return None
