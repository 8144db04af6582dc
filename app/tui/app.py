"""andon's chat app: the engine host, the keys and the screens. The widgets hold the rest.

The ChatScreen wires the chat list, the open chat (a ChatView built from one ChatSession), the
panels and the status bar. An unexpected error is one line and a log entry, never the end of the
app; SIGTERM and SIGHUP end it cleanly (the terminal restored, the reply being written saved), and so
does a terminal that is closed; input the terminal parser cannot read is skipped (app/tui/terminal.py).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from andon.app.chat.history import History
from andon.app.tui.commands import ModelCommands, ParameterCommands, PresetCommands
from andon.app.tui.failures import Unexpected, guarded, record
from andon.app.tui.keys import bindings, palette
from andon.app.tui.screens.start import StartScreen
from andon.app.tui.terminal import AndonDriver, TerminalGone
from andon.app.tui.ui_settings import UiSettings, log_line
from textual import events, work
from textual.app import App, SystemCommand
from textual.binding import BindingType
from textual.driver import Driver
from textual.drivers.linux_driver import LinuxDriver
from textual.message import Message
from textual.screen import Screen
from textual.theme import Theme

if TYPE_CHECKING:  # the chat screen and what it needs are read when the chat is built (fast_start)
    from andon.app.chat.session import ChatSession
    from andon.app.tui.engine_host import EngineFactory, EngineHost, EngineLike
    from andon.app.tui.screens.chat import ChatScreen
    from andon.presets.store import PresetStore

__all__ = ["AndonApp"]

SIGNALS = (signal.SIGTERM, signal.SIGHUP)
# keys read this soon after the first frame were typed before the terminal's raw mode: Enter came as
# a newline (Ctrl+J) then. Later ones are as typed (Ctrl+J is a new line).
BEFORE_RAW = 0.05


class AndonApp(App[None]):
    CSS_PATH = "andon.tcss"
    TITLE = "andon"
    COMMANDS = App.COMMANDS | {PresetCommands, ModelCommands, ParameterCommands}
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]  # noqa: RUF012 (Textual declares it)
    BINDINGS: ClassVar[list[BindingType]] = bindings()  # the chat screen's keys (keys.py)

    @dataclass
    class Terminate(Message):
        signum: int

    def __init__(
        self,
        engine_factory: EngineFactory,
        model_path: Path | Callable[[], Path],
        *,
        history: History | None = None,
        store: PresetStore | None = None,
        preset: str | None = None,
        verbose: bool = False,
        rpc: tuple[str, ...] = (),
        model: str = "",  # how --model named the model at model_path ("": not given)
        ui_settings: UiSettings | None = None,
        fast_start: bool = False,  # draw a message box first, read the chat screen behind it (`andon`)
    ) -> None:
        super().__init__()
        self.history = history or History()
        self.ui_settings = ui_settings or UiSettings()
        self._saved_theme = ""
        self._early_keys: list[tuple[events.Key | events.Paste, bool]] | None = []  # typed before the chat
        self._first_frame_at: float | None = None  # when the first frame was drawn (raw mode long on)
        self._chat_arguments = (engine_factory, model_path, verbose, rpc, model, store, preset)
        self._chat: ChatScreen | None = None
        self._host: EngineHost | None = None
        self.fast_start = fast_start
        if not fast_start:
            self.build_chat()

    def build_chat(self) -> ChatScreen:
        """The engine host and the chat screen (reading the modules they need, most of andon)."""
        if self._chat is None:
            from andon.app.tui.engine_host import EngineHost
            from andon.app.tui.screens.chat import ChatScreen
            from andon.presets.store import PresetStore

            factory, path, verbose, rpc, model, store, preset = self._chat_arguments
            self._host = EngineHost(factory, path, verbose, rpc, model)
            self.store = store or PresetStore()
            self._chat = ChatScreen(self._host, self.history, self.store, preset)
        return self._chat

    @property
    def chat_screen(self) -> ChatScreen:
        return self.build_chat()

    @property
    def host(self) -> EngineHost:
        self.build_chat()
        assert self._host is not None
        return self._host

    @guarded
    async def on_event(self, event: events.Event) -> None:
        """Keys typed while andon starts wait for the chat screen (they were lost in a terminal),
        shown meanwhile in the first frame's box; typing after a click on the conversation or on
        empty space goes to the message box."""
        if isinstance(event, (events.Key, events.Paste)) and self._early_keys is not None:
            before_raw = self._first_frame_at is None or time.monotonic() - self._first_frame_at < BEFORE_RAW
            self._early_keys.append((event, before_raw))
            if self.screen_stack and isinstance(self.screen_stack[-1], StartScreen):
                self.screen_stack[-1].echo(_typed(event, before_raw))
            return
        chat = self._chat
        if isinstance(event, events.Key) and chat is not None and chat.is_current:
            chat.catch_typing(event)  # typing after a click elsewhere still goes in
        await super().on_event(event)

    def input_ready(self) -> None:
        """The chat screen has its message box: the keys typed until now go to it, in order."""
        keys, self._early_keys = self._early_keys or [], None
        for key, before_raw in keys:
            if isinstance(key, events.Paste):
                self.post_message(events.Paste(key.text))
                continue
            # before raw mode the terminal turned Enter into a newline (ctrl+j): it was an Enter
            enter = before_raw and key.key == "ctrl+j"
            name, character = ("enter", "\r") if enter else (key.key, key.character)
            self.post_message(events.Key(name, character))

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        """Textual's own (theme, keys, quit...) and, on the chat screen, every action of andon's."""
        yield from super().get_system_commands(screen)
        chat = self._chat
        if chat is None or not chat.is_current:
            return
        for title, text, action in palette():
            yield SystemCommand(title, text, partial(chat.run_action, action))

    def get_driver_class(self) -> type[Driver]:
        """andon's driver where Textual would use its LinuxDriver: input it cannot read is skipped,
        a paste arrives as pasted, a closed terminal ends the app (AndonDriver)."""
        driver = super().get_driver_class()
        return AndonDriver if driver is LinuxDriver else driver

    def get_default_screen(self) -> Screen[None]:
        """The chat screen; with fast_start, first a message box drawn from Textual alone."""
        return StartScreen() if self._chat is None else self._chat

    @property
    def session(self) -> ChatSession:
        """The open chat's session."""
        return self.chat_screen.view.session

    @property
    def engine(self) -> EngineLike | None:
        return self.host.engine

    @guarded
    def on_mount(self) -> None:
        self._catch_signals(True)
        self._restore_theme()
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        self.call_after_refresh(self._first_frame_drawn)

    def _first_frame_drawn(self) -> None:
        self._first_frame_at = time.monotonic()
        if self._chat is None:
            self._read_the_rest()  # behind the first frame

    @work(thread=True, exclusive=True, group="start", exit_on_error=False)
    @guarded
    def _read_the_rest(self) -> None:
        """Read the chat screen's modules behind the first frame (a thread: the box echoes keys
        meanwhile), then build the chat screen and show it in the first frame's place."""
        import andon.app.tui.engine_host
        import andon.app.tui.screens.chat  # noqa: F401
        from andon.presets.store import PresetError, PresetStore

        preset, store = self._chat_arguments[6], self._chat_arguments[5]
        if preset is not None:
            try:
                (store or PresetStore()).load(preset)  # its file was found before the first frame
            except PresetError as exc:  # but cannot be read: one line, as an unknown preset gets
                self.call_from_thread(self.exit, None, 2, f"andon: {exc}")
                return
        self.call_from_thread(self._show_chat)

    @guarded
    def _show_chat(self) -> None:
        self.push_screen(self.build_chat())  # over the first frame, which stays below unseen

    # --- the theme, remembered ----------------------------------------------------------------

    def _restore_theme(self) -> None:
        """The theme chosen last time; an unknown one is a line in the log and the default."""
        name = self.ui_settings.theme()
        if name is not None and name not in self.available_themes:
            log_line(f"the saved theme {name!r} ({self.ui_settings.path}) is not known; the default is used")
        elif name is not None:
            self.theme = name
        self._saved_theme = self.theme

    def _theme_changed(self, theme: Theme) -> None:
        """The palette's "Change theme" (or anything else) set a theme: remember it."""
        name = self.theme  # the one in force now, whichever signal arrives last
        if name == self._saved_theme:
            return
        try:
            self.ui_settings.save_theme(name)
        except OSError as exc:
            self.notify(f"The theme could not be saved in {self.ui_settings.path}: {exc.strerror or exc}",
                        severity="warning", markup=False)  # fmt: skip
            return
        self._saved_theme = name

    # --- errors and the end -------------------------------------------------------------------

    def on_unexpected(self, message: Unexpected) -> None:
        """The one handler not guarded (it is where the guard ends): it must not fail."""
        line = record(message.error)
        try:
            assert self._chat is not None
            self._chat.view.say(line, error=True)
        except Exception:
            self.notify(line, severity="error", markup=False)

    def _catch_signals(self, install: bool) -> None:
        try:
            loop = asyncio.get_running_loop()
            for signum in SIGNALS:
                if install:
                    loop.add_signal_handler(signum, self._signalled, signum)
                else:
                    loop.remove_signal_handler(signum)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # no handlers here (Windows, or not the main thread): the default applies

    def _signalled(self, signum: int) -> None:
        self.post_message(self.Terminate(signum))

    @guarded
    async def on_andon_app_terminate(self, message: Terminate) -> None:
        """SIGTERM or SIGHUP: save the reply being written as stopped, then exit cleanly."""
        if self._chat is not None:
            await self._chat.stop_all()
        self.exit(return_code=128 + message.signum)

    @guarded
    async def on_terminal_gone(self, message: TerminalGone) -> None:
        """The terminal was closed (the driver saw it before or without a SIGHUP): as SIGHUP."""
        await self.on_andon_app_terminate(self.Terminate(signal.SIGHUP))

    @guarded
    def on_unmount(self) -> None:
        self._catch_signals(False)
        self.workers.cancel_all()
        if self._host is None:  # ended before the chat was built: no engine was started
            return
        with self._host.lock:  # a reply thread still ending keeps the engine until it is done
            self._host.close()


def _typed(event: events.Key | events.Paste, before_raw: bool) -> str:
    """What a key or a paste typed before the chat screen was ready shows in the first frame."""
    if isinstance(event, events.Paste):
        return event.text
    if event.key in ("backspace", "ctrl+h"):
        return "\b"
    if event.key == "enter" or (before_raw and event.key == "ctrl+j"):
        return ""  # an Enter: it sends once the chat is there
    if event.key in ("ctrl+j", "shift+enter"):
        return "\n"
    return event.character if event.is_printable and event.character else ""
