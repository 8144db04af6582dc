"""The chat screen's model controller: each chat's own model, loaded in a worker with llama.cpp's
progress shown.

A chat remembers its model (`Chat.model`: a name from `andon models` or a path; "" for a chat made
before andon remembered models, which takes the model in use). Opening a chat loads its model; a
model that is gone (file deleted, name no longer found) is said in one line and the model in use
stays, the chat's messages and its stored model untouched. Ctrl+O, `/model`, `/load MODEL` and the
command palette switch the open chat's model; a reply being written is stopped first (it is kept,
as Esc keeps it), and a load that fails is one line while the model loaded before stays in use.

A preset made for a model (a Modelfile's FROM) brings it, as `ollama run mario` and `andon ask
--preset mario` do: a chat with no model of its own starts on it (unless andon was started with
--model, which wins as it does for `ask`), and switching a chat to such a preset (F3, Ctrl+T,
`/preset`, `/load`, the palette) switches the model the same way Ctrl+O does. A preset without a
model keeps the model in use; a preset's model that cannot be found is one line, the model stays.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from andon.app.chat.history import Chat, HistoryError
from andon.app.chat.session import ChatSession
from andon.app.chat.settings import context_warning, trained_context
from andon.app.models.catalog import preset_model_problem
from andon.app.models.files import ModelPathError
from andon.app.tui.engine_host import EngineHost, ModelChoice, choice_of
from andon.app.tui.failures import guarded
from andon.app.tui.screens.model_picker import ModelPicker, model_summary
from andon.presets.modelfile import TEMPLATE_UNUSED
from andon.presets.preset import Preset
from andon.presets.store import PresetError
from textual.worker import get_current_worker

if TYPE_CHECKING:
    from andon.app.tui.widgets.chat_view import ChatView
    from textual.app import App
    from textual.screen import Screen

PROGRESS_STEP = 0.02  # the progress line moves by at least 2% (llama.cpp reports every tensor)
BAR_CELLS = 12


def progress_bar(fraction: float) -> str:
    done = round(max(0.0, min(1.0, fraction)) * BAR_CELLS)
    return "█" * done + "░" * (BAR_CELLS - done) + f" {fraction:4.0%}"


@dataclass
class LoadRequest:
    """One model load the screen asked for: which model, for which chat, and how to report it."""

    number: int  # loads are numbered: only the latest one's outcome is shown
    wanted: str | ModelChoice  # a name (resolved on the worker) or a model already resolved
    session: ChatSession
    explicit: bool  # asked for by the user (announced, remembered by the chat)
    presets: tuple[str, ...] = ()  # /load NAME: said as well when NAME is no model
    preset: str = ""  # the preset whose model this is (named if it cannot be found)


@dataclass
class LoadEnded:
    """A load has ended: `choice` None if the name was not found, `error` if it did not load."""

    request: LoadRequest
    choice: ModelChoice | None
    error: str | None
    seconds: float = 0.0
    warning: str | None = None
    context: int | None = None  # the open chat's prompt tokens under the model now loaded


class ModelController:
    """The open chat's model, owned by the chat screen: which model a chat uses, loads and switches.

    What it needs of the screen is given to it: `screen` runs its workers and callbacks (and its app
    shows the picker), `view` is the open conversation, `note` sets the status bar's model note and
    `ended` says that a load ended (the name of the model now in use; None when this one did not load).
    """

    def __init__(
        self,
        host: EngineHost,
        screen: Screen[Any],
        view: Callable[[], ChatView],
        note: Callable[[str], None],
        ended: Callable[[str | None], None],
    ) -> None:
        self.host = host
        self.screen = screen
        self._view, self._note, self._ended = view, note, ended
        host.progress = self._report_progress  # called on the loading thread
        self.chat_model: ModelChoice | None = None  # the open chat's model, once resolved
        self._loads = 0
        self._loading = ""  # the name of the model loading now, for the progress line
        self._shown = -1.0  # the fraction the progress line shows
        self._said: set[tuple[str, ...]] = set()  # lines said once per run of andon
        self._trained: dict[Path, int | None] = {}  # the trained context of the models loaded

    @property
    def app(self) -> App[Any]:  # `guarded` reports an unexpected error to it
        return self.screen.app

    @property
    def view(self) -> ChatView:
        return self._view()

    # --- which model a chat uses ----------------------------------------------------------------

    async def model_of(self, chat: Chat, preset: Preset | None = None) -> tuple[ModelChoice, str | None]:
        """The chat's model (resolved on a thread): its own, else its preset's (not over --model), else
        the model in use; and, if the one it should use cannot be found, the line that says so."""
        wanted = chat.model or (preset.model if preset is not None and not self.host.start_model else None) or ""
        try:
            choice = await asyncio.to_thread(self.host.resolve, wanted)
            gone = None
        except ModelPathError as exc:
            choice = await asyncio.to_thread(self.host.resolve, "")
            using = choice.name or choice.path.name
            if chat.model or preset is None:
                gone = (f"This chat's model {chat.model!r} cannot be used ({exc}): it goes on with {using}, and "
                        "its messages are kept. Ctrl+O or /model picks another.")  # fmt: skip
            else:
                gone = f"error: {preset_model_problem(preset.name, wanted, str(exc))}; {using} stays in use."
        self.chat_model = choice
        return choice, gone

    def follow_model(self, session: ChatSession, choice: ModelChoice, gone: str | None) -> None:
        """After a chat opened: say if its model is gone, and load its model if another is in use."""
        session.model_ref, session.model_path = choice.ref, choice.path
        if gone is not None:
            self.view.say(gone, error=True)
        self._say_notes(choice)
        if session.preset.template:
            self.say_once(f"preset {session.preset.name}: {TEMPLATE_UNUSED}", key=("template", session.preset.name))
        loaded = self.host.current
        if self._loads and (loaded is None or loaded.path != choice.path):
            self.load_model(choice, session, explicit=False)
        elif self._loads:  # the model in use is the chat's: a new chat keeps it (Ctrl+N on an Ollama model)
            self._remember(session, choice, explicit=False)

    def start_loading(self, session: ChatSession) -> None:
        """The first load, once the first chat is open (its model, else the one andon started with)."""
        self.load_model(self.chat_model or self.host.start_choice(), session, explicit=False)

    # --- switching -----------------------------------------------------------------------------

    @guarded
    async def switch_model(self, name: str, presets: tuple[str, ...] = (), preset: str = "") -> None:
        """Switch the open chat to the model `name` (`preset`'s, if it is a preset's); a reply being
        written is stopped (and kept) first."""
        view = self.view
        if not view.owned:
            view.say("This chat is read-only here (another andon writes it): its model stays.", error=True)
            return
        if view.replying:
            await view.stop_reply()
            view.say("The reply was stopped to switch models (what it wrote is kept).")
        self.load_model(name, view.session, explicit=True, presets=presets, preset=preset)

    def follow_preset(self, session: ChatSession) -> None:
        """After the chat's settings changed: a preset switched to that is made for another model
        brings it (loaded as Ctrl+O loads one, its progress shown); its Go TEMPLATE is said unused once."""
        preset = session.take_switched_preset()
        if preset is None:
            return
        if preset.template:
            self.say_once(f"preset {preset.name}: {TEMPLATE_UNUSED}", key=("template", preset.name))
        if preset.model and preset.model not in (session.model_ref, str(session.model_path)):
            self.screen.run_worker(
                self.switch_model(preset.model, preset=preset.name), group="dialog", exit_on_error=False
            )

    @guarded
    def choose_model(self, name: str) -> None:
        """The command palette's "Model: NAME"."""
        self.screen.run_worker(self.switch_model(name), group="dialog", exit_on_error=False)

    async def pick_model(self) -> None:
        """Ctrl+O (and `/model` alone): the picker, then the switch (in the screen's dialog worker)."""
        current = self.host.current or self.chat_model
        name = await self.app.push_screen_wait(ModelPicker(current.ref if current else ""))
        if name:
            await self.switch_model(name)

    async def model_entries(self) -> list[tuple[str, str]]:
        """The command palette's models: (name, one line about it), listed on a thread."""
        from andon.app.models.catalog import list_models

        listed, _ = await asyncio.to_thread(list_models)
        return [(m.entry.name, model_summary(m)) for m in listed]

    # --- loading ---------------------------------------------------------------------------------

    def load_model(
        self,
        wanted: str | ModelChoice,
        session: ChatSession,
        explicit: bool,
        presets: tuple[str, ...] = (),
        preset: str = "",
    ) -> None:
        self._loads += 1
        self.host.loaded.clear()  # a message sent now waits for this model
        self._loading = wanted if isinstance(wanted, str) else (wanted.name or wanted.path.name)
        self._shown = -1.0
        self._note(f"loading {self._loading}…")
        request = LoadRequest(self._loads, wanted, session, explicit, presets, preset)
        self.screen.run_worker(
            partial(self._load, request), name="_load", group="load", exclusive=True, thread=True, exit_on_error=False
        )

    @guarded
    def _load(self, request: LoadRequest) -> None:
        """On the worker's thread: resolve and load; the outcome goes back to the screen's thread."""
        started = time.monotonic()
        try:
            choice = request.wanted if isinstance(request.wanted, ModelChoice) else choice_of(request.wanted)
        except ModelPathError as exc:
            self.host.loaded.set()
            self.screen.call_later(self._loaded, LoadEnded(request, None, _unknown(request, str(exc))))
            return
        warning, context = None, None
        try:
            if get_current_worker().is_cancelled:  # another load was asked for meanwhile
                return
            params = request.session.params_on(choice.defaults)
            error = self.host.switch(choice, params)
            if error is None:
                if choice.path not in self._trained:
                    self._trained[choice.path] = trained_context(choice.path)
                warning = context_warning(params.num_ctx, self._trained[choice.path], choice.name)
                context = self._context_of(request.session) if request.explicit else None  # only a switch shows it
        except PresetError as exc:  # the chat's preset file went bad meanwhile
            error = str(exc)
        finally:
            self.host.loaded.set()
        ended = LoadEnded(request, choice, error, time.monotonic() - started, warning, context)
        self.screen.call_later(self._loaded, ended)

    def _context_of(self, session: ChatSession) -> int | None:
        """The chat's prompt tokens under the engine loaded now (another model counts them otherwise)."""
        engine = self.host.engine
        if engine is None or not session.messages:
            return 0 if engine is not None else None
        try:
            with self.host.lock:
                return len(engine.chat_tokens(session.engine_messages(), session.params.think))
        except Exception:  # a template that refuses this chat says so at the next reply
            return None

    def _report_progress(self, fraction: float) -> None:
        if fraction - self._shown >= PROGRESS_STEP or (fraction >= 1.0 > self._shown):
            self._shown = fraction
            self.screen.call_later(self._progressed, fraction)

    @guarded
    def _progressed(self, fraction: float) -> None:
        if self._loading:
            self._note(f"loading {self._loading} {progress_bar(fraction)}")

    @guarded
    def _loaded(self, message: LoadEnded) -> None:
        request = message.request
        if request.number != self._loads:
            return  # another load came after it
        self._loading = ""
        engine, choice = self.host.engine, message.choice
        if choice is None or message.error:
            self._failed(message, engine is not None)
            return
        self._ended(choice.name or (engine.model_name if engine else ""))
        self._note("")
        if request.session is self.view.session:
            self._remember(request.session, choice, request.explicit)
            if request.explicit:  # the figures of the model before are not this model's
                self.view.model_changed(message.context)
            self.view.refresh_welcome()  # an empty chat's welcome names the model now loaded
        if request.explicit:
            self.view.say(f"Model {choice.name or choice.path.name} loaded ({message.seconds:.1f} s).")
        self._say_notes(choice)
        if message.warning:
            self.say_once(message.warning, key=(str(choice.path), str(request.session.params.num_ctx)))

    def _failed(self, message: LoadEnded, still_loaded: bool) -> None:
        # a model found that did not load, or a preset's model not found: the model in use stays
        current = self.host.current if message.choice is not None or message.request.preset else None
        using = f" {current.name or current.path.name} stays in use." if still_loaded and current else ""
        self._ended(None)
        self._note("" if still_loaded else "model not loaded")
        self.view.say(f"error: {message.error}.{using}" if using else f"error: {message.error}", error=True)

    def _remember(self, session: ChatSession, choice: ModelChoice, explicit: bool) -> None:
        """The chat keeps the model it was switched to (a new chat, the model it started on: reopened,
        it runs on that model, not on the one andon starts with)."""
        session.model_ref, session.model_path = choice.ref, choice.path
        fresh = not session.chat.model and not session.messages
        if not choice.ref or session.chat.model == choice.ref or not (explicit or fresh):
            return
        try:
            session.use_model(choice.ref, choice.defaults)
        except (HistoryError, PresetError) as exc:
            self.view.say(f"error: this chat could not remember its model: {exc}", error=True)
            return
        self.view.settings_changed()

    # --- lines said once ---------------------------------------------------------------------------

    def check_context(self, session: ChatSession) -> None:
        """After a settings change: num_ctx past the trained context of the model in use, said once."""
        current = self.host.current
        if current is None:
            return
        warning = context_warning(session.params.num_ctx, self._trained.get(current.path), current.name)
        if warning:
            self.say_once(warning, key=(str(current.path), str(session.params.num_ctx)))

    def say_once(self, text: str, key: tuple[str, ...]) -> None:
        if key not in self._said:
            self._said.add(key)
            self.view.say(f"warning: {text}", error=True)

    def _say_notes(self, choice: ModelChoice) -> None:
        """What andon left out of an Ollama model's own defaults (unknown parameters), once per model."""
        for note in choice.defaults.notes if choice.defaults else []:
            self.say_once(f"{choice.name}: {note}", key=(choice.ref, note))


def _unknown(request: LoadRequest, error: str) -> str:
    name = request.wanted if isinstance(request.wanted, str) else request.wanted.ref
    if request.preset:
        return preset_model_problem(request.preset, name, error)
    if not request.presets:
        return error
    return f"{name!r} is not a preset ({', '.join(request.presets)}) nor a model: {error}"
