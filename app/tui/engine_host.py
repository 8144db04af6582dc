"""The app's engine: loaded in the background, used by one worker at a time, reloaded when the
model settings (num_ctx, num_gpu, num_thread, num_batch) change. A reload that fails keeps the
model that was loaded before, and the next change of settings tries again."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Protocol

import numpy as np
from andon.app.engine import CancelCheck, Event, Message, ModelLoadError, ModelOptions
from andon.presets.parameters import Parameters
from andon.samplers import Chain, Vocab
from numpy.typing import NDArray


class EngineLike(Protocol):
    """What the app needs of an engine (`Engine`); tests pass a fake that yields scripted tokens."""

    n_ctx: int
    n_vocab: int
    options: ModelOptions

    @property
    def model_name(self) -> str: ...

    def stream(
        self,
        messages: Sequence[Message],
        params: Parameters,
        cancelled: CancelCheck | None = None,
        chain: Chain | None = None,
    ) -> Iterator[Event]: ...

    def chat_tokens(self, messages: Sequence[Message]) -> list[int]: ...

    def tokenize(self, text: str, *, special: bool = True, add_bos: bool = False) -> list[int]: ...

    def piece(self, token: int, *, special: bool = False) -> bytes: ...

    def token_text(self, token: int) -> str: ...

    def vocab_for(self, params: Parameters) -> Vocab | None: ...

    def prefill(self, tokens: Sequence[int]) -> int: ...

    def logits(self) -> NDArray[np.float32]: ...

    def close(self) -> None: ...


EngineFactory = Callable[[ModelOptions], EngineLike]


class EngineHost:
    def __init__(
        self,
        factory: EngineFactory,
        model_path: Path | Callable[[], Path],
        verbose: bool = False,
        rpc: tuple[str, ...] = (),
    ) -> None:
        self.factory = factory
        self._model_path = model_path
        self.verbose = verbose
        self.rpc = rpc  # `andon --rpc`: the RPC servers of the chats whose parameters name none
        self.engine: EngineLike | None = None
        self.error: str | None = None  # why the last load failed; None after a load that worked
        self.loaded = threading.Event()  # set once the first load has ended, well or not
        self.lock = threading.RLock()  # a reply, an inspection or a reload: one at a time
        self._failed: ModelOptions | None = None  # the options of the last load that failed

    def options(self, params: Parameters) -> ModelOptions:
        try:
            path = self._model_path() if callable(self._model_path) else self._model_path
        except Exception as exc:  # e.g. the embedded model is not installed: reported by the load
            path = Path(f"<{exc}>")
        options = ModelOptions.from_parameters(path, params, self.verbose)
        return options if options.rpc or not self.rpc else replace(options, rpc=self.rpc)

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
            self.engine = self.factory(options)
        except ModelLoadError as exc:
            return str(exc)
        except (OSError, ValueError) as exc:
            return f"could not load the model: {exc}"
        except Exception as exc:  # never a traceback in the app
            return f"could not load the model: {type(exc).__name__}: {exc}"
        return None
