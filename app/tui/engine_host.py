"""The app's engine: loaded in the background, used by one worker at a time, reloaded when the
model settings (num_ctx, num_gpu, num_thread, num_batch) change."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from andon.app.engine import ModelLoadError, ModelOptions
from andon.presets.parameters import Parameters
from andon.samplers import Chain


class EngineLike(Protocol):
    """What the app needs of an engine; tests pass a fake that yields scripted tokens."""

    n_ctx: int
    options: ModelOptions

    @property
    def model_name(self) -> str: ...

    def stream(self, messages, params: Parameters, cancelled=None, chain: Chain | None = None): ...

    def chat_tokens(self, messages) -> list[int]: ...

    def close(self) -> None: ...


EngineFactory = Callable[[ModelOptions], EngineLike]


class EngineHost:
    def __init__(self, factory: EngineFactory, model_path: Path | Callable[[], Path], verbose: bool = False) -> None:
        self.factory = factory
        self._model_path = model_path
        self.verbose = verbose
        self.engine: EngineLike | None = None
        self.error: str | None = None
        self.loaded = threading.Event()  # set once the first load has ended, well or not
        self.lock = threading.RLock()  # a reply, an inspection or a reload: one at a time

    def options(self, params: Parameters) -> ModelOptions:
        try:
            path = self._model_path() if callable(self._model_path) else self._model_path
        except Exception as exc:  # e.g. the embedded model is not installed: reported by the load
            path = Path(f"<{exc}>")
        return ModelOptions.from_parameters(path, params, self.verbose)

    def load(self, options: ModelOptions) -> None:
        """Load (blocking, on a worker thread); a failure is kept in `error`, never raised."""
        with self.lock:
            self.close()
            try:
                self.engine, self.error = self.factory(options), None
            except (ModelLoadError, OSError, ValueError) as exc:
                self.error = str(exc)
            except Exception as exc:  # never a traceback in the app
                self.error = f"could not load the model: {type(exc).__name__}: {exc}"
        self.loaded.set()

    def engine_for(self, params: Parameters) -> EngineLike:
        """The engine for these parameters, reloaded if its model options differ. Hold `lock`."""
        engine = self.engine
        if engine is None:
            raise ModelLoadError(f"the model is not loaded ({self.error or 'unknown error'})")
        wanted = self.options(params)
        if wanted != engine.options:
            self.load(wanted)
            if self.engine is None:
                raise ModelLoadError(self.error or "the model could not be reloaded")
            engine = self.engine
        return engine

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None
