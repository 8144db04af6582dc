"""One engine process per model, shared by every preset of it and every client, PARALLEL replies at once.

A model's `Slot` holds its engine (app/engine/client.py's EngineProcess, the one the app and `andon
ask` use, started with PARALLEL slots: app/engine/scheduler.py decodes their replies in one batch)
and its `Turns`: up to PARALLEL requests run at once, the others wait in the order they came (a FIFO,
so no client waits behind a stream of later ones); loading or reloading the engine runs alone.
The routes call `Pool.reply` and never see how turns are given.
An engine stays loaded for its keep_alive after its last reply (Ollama's 5 minutes by default), is
reloaded where a request asks for other model options (num_ctx, num_gpu, ...), and is replaced by a
new one at the next request if its process died.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from andon.app.engine.client import EngineDied, EngineLike, EngineProcess
from andon.app.engine.generation import Event
from andon.app.engine.loading import ModelOptions
from andon.app.engine.prompt import Message
from andon.presets.parameters import Parameters

PARALLEL = 4  # replies decoded together on one model (llama-server's and Ollama's default slots)
WAIT_POLL_S = 0.1  # how often a request waiting for its turn asks whether its client is still there
REAP_POLL_S = 1.0  # how often engines past their keep_alive are closed

Gone = Callable[[], bool]


class ClientGone(Exception):
    """The client went away while its request waited for its turn."""


class Turns:
    """Requests on one engine, up to `capacity` at once, first come first served; an exclusive one
    (a load) runs alone."""

    def __init__(self, capacity: int = PARALLEL) -> None:
        self._cond = threading.Condition()
        self._queue: deque[tuple[object, bool]] = deque()
        self.capacity = capacity

    @contextlib.contextmanager
    def turn(self, gone: Gone, exclusive: bool = False) -> Iterator[None]:
        """Wait for this request's turn (ClientGone if its client leaves first), hold it while the body runs."""
        ticket = (object(), exclusive)
        with self._cond:
            self._queue.append(ticket)
            try:
                while not self._may_run(ticket):
                    self._cond.wait(WAIT_POLL_S)
                    if gone():
                        raise ClientGone
            except BaseException:
                self._leave(ticket)
                raise
        try:
            yield
        finally:
            with self._cond:
                self._leave(ticket)

    def _may_run(self, ticket: tuple[object, bool]) -> bool:
        """Among the first `capacity` in the queue, none before it exclusive (and none at all if it is)."""
        before = list(itertools.takewhile(lambda t: t is not ticket, self._queue))
        if ticket[1]:
            return not before
        return len(before) < self.capacity and not any(exclusive for _, exclusive in before)

    def _leave(self, ticket: tuple[object, bool]) -> None:
        self._queue.remove(ticket)
        self._cond.notify_all()

    def when_idle(self, action: Callable[[], None]) -> bool:
        """Run `action` if no request holds or waits for a turn (none can start meanwhile)."""
        with self._cond:
            if self._queue:
                return False
            action()
            return True

    def waiting(self) -> int:
        with self._cond:
            return len(self._queue)


@dataclass
class Slot:
    """One model's engine (None until a request loads it) and its turns."""

    path: Path
    turns: Turns = field(default_factory=Turns)
    engine: EngineLike | None = None
    expires: float | None = None  # time.monotonic() past which it is closed; None: kept
    name: str = ""  # the name the last request used, as /api/ps shows it

    def close(self) -> None:
        if self.engine is not None:
            engine, self.engine = self.engine, None
            engine.close()


StartEngine = Callable[[ModelOptions], EngineLike]
START: StartEngine = partial(EngineProcess, parallel=PARALLEL)  # an engine process with PARALLEL slots


class Pool:
    """Every model's slot; `reply` streams a reply on the model's engine in the request's turn."""

    def __init__(self, start: StartEngine = START) -> None:
        self._start = start
        self._slots: dict[Path, Slot] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        threading.Thread(target=self._reap, daemon=True, name="andon-serve-reaper").start()

    def slot(self, path: Path) -> Slot:
        with self._lock:
            return self._slots.setdefault(path, Slot(path))

    def loaded(self) -> list[Slot]:
        with self._lock:
            return [s for s in self._slots.values() if s.engine is not None]

    def reply(
        self,
        path: Path,
        name: str,
        messages: Sequence[Message],
        params: Parameters,
        keep_alive: float | None,
        gone: Gone,
        logprobs: int | None = None,
    ) -> Iterator[Event]:
        """The reply's events, once this request's turn comes; its engine is loaded (or reloaded
        with the request's model options) first. keep_alive: seconds to keep the engine after
        this reply (None: until the server ends; 0: closed at once). logprobs: as Engine.stream's."""
        slot = self.slot(path)
        with self.using(path, name, params, keep_alive, gone) as engine:
            yield from engine.stream(messages, params, cancelled=gone, logprobs=logprobs)
        if keep_alive == 0:
            slot.turns.when_idle(slot.close)

    @contextlib.contextmanager
    def using(self, path: Path, name: str, params: Parameters, keep_alive: float | None,
              gone: Gone) -> Iterator[EngineLike]:  # fmt: skip
        """The model's engine for one request, in its turn (loaded with the request's model options)."""
        slot = self.slot(path)
        with self._turn(slot, ModelOptions.from_parameters(path, params), gone) as engine:
            slot.name = name
            try:
                yield engine
            except EngineDied:
                slot.close()  # the next request starts a new engine
                raise
            finally:
                slot.expires = None if keep_alive is None else time.monotonic() + keep_alive

    def running(self, path: Path) -> EngineLike | None:
        """The model's engine if one is loaded, without waiting for a turn (a cancel)."""
        return self.slot(path).engine

    def load(self, path: Path, name: str, params: Parameters, keep_alive: float | None, gone: Gone) -> None:
        """Load the model without a reply (Ollama's empty prompt); keep_alive 0 unloads it."""
        slot = self.slot(path)
        with slot.turns.turn(gone, exclusive=True):
            if keep_alive == 0:
                slot.close()
                return
            slot.name = name
            self._engine(slot, ModelOptions.from_parameters(path, params))
            slot.expires = None if keep_alive is None else time.monotonic() + keep_alive

    @contextlib.contextmanager
    def _turn(self, slot: Slot, options: ModelOptions, gone: Gone) -> Iterator[EngineLike]:
        """A turn on the slot's engine with these options: shared where it is loaded with them,
        alone where it must be (re)loaded first."""
        exclusive = self._needs_load(slot, options)
        while True:
            with slot.turns.turn(gone, exclusive):
                if exclusive or not self._needs_load(slot, options):  # another request may have changed it
                    yield self._engine(slot, options)
                    return
            exclusive = True

    @staticmethod
    def _needs_load(slot: Slot, options: ModelOptions) -> bool:
        engine = slot.engine
        return engine is None or not engine.alive() or engine.options != options

    def _engine(self, slot: Slot, options: ModelOptions) -> EngineLike:
        engine = slot.engine
        if engine is not None and (not engine.alive() or engine.options != options):
            slot.close()
        if slot.engine is None:
            slot.engine = self._start(options)
        return slot.engine

    def _reap(self) -> None:
        while not self._closed.wait(REAP_POLL_S):
            now = time.monotonic()
            for slot in self.loaded():
                if slot.expires is not None and slot.expires <= now:
                    slot.turns.when_idle(slot.close)

    def close(self) -> None:
        """Close every engine (their memory returns)."""
        self._closed.set()
        with self._lock:
            slots = list(self._slots.values())
        for slot in slots:
            slot.close()
