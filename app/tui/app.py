"""andon's chat app: the engine host, the keys and the screens. The widgets hold the rest.

The open chat is a ChatView built from its ChatSession; the chat list creates, renames, deletes
and exports chats; the status bar is bound (data_bind) to the app's reactive fields, which follow
the open view's. An unexpected error is one line and a log entry, never the end of the app.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from andon.app.chat import ChatSession
from andon.app.history import Chat, History, HistoryError
from andon.app.tui.chat_list import ChatList
from andon.app.tui.chat_view import ChatView
from andon.app.tui.commands import PresetCommands
from andon.app.tui.engine_host import EngineFactory, EngineHost, EngineLike
from andon.app.tui.failures import Unexpected, guarded, record
from andon.app.tui.panels import InspectorPanel, ParameterPanel
from andon.app.tui.screens import PresetPicker
from andon.app.tui.widgets import ChatInput, StatusBar
from andon.presets.store import DEFAULT_PRESET, PresetError, PresetStore
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Footer, LoadingIndicator
from textual.worker import Worker, WorkerState

__all__ = ["AndonApp", "EngineFactory", "EngineLike"]

SIGNALS = (signal.SIGTERM, signal.SIGHUP)  # end the app cleanly: the terminal is restored


class AndonApp(App[None]):
    CSS_PATH = "andon.tcss"
    TITLE = "andon"
    AUTO_FOCUS = "#input"  # typing goes to the message box from the first frame
    COMMANDS = App.COMMANDS | {PresetCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "stop", "Stop", id="reply.stop"),
        Binding("ctrl+t", "next_preset", "Next preset", id="preset.next"),
        Binding("f3", "pick_preset", "Presets", id="preset.pick"),
        Binding("f4", "toggle_parameters", "Parameters", id="parameters.toggle"),
        Binding("f5", "toggle_inspector", "Inspector", id="inspector.toggle"),
        Binding("ctrl+n", "new_chat", "New chat", id="chat.new"),
        Binding("ctrl+r", "regenerate", "Regenerate", id="reply.regenerate"),
        Binding("ctrl+l", "edit_last", "Edit last", id="message.edit"),
        Binding("f9", "copy_reply", "Copy reply", id="reply.copy"),
        Binding("f10", "copy_code", "Copy code", id="reply.copy_code"),
        Binding("f2", "rename_chat", "Rename", id="chat.rename"),
        Binding("f8", "delete_chat", "Delete chat", id="chat.delete"),
        Binding("ctrl+s", "export_chat", "Export", id="chat.export"),
    ]

    # what the status bar shows: the model's from the host, the rest from the open ChatView
    model_name = reactive("")
    model_note = reactive("")
    preset_label = reactive("")
    tokens_per_second: reactive[float | None] = reactive(None)
    context_used = reactive(0)
    num_ctx = reactive(0)
    chat_note = reactive("")

    class Loaded(Message):
        """The first model load has ended (see the host's engine and error)."""

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
    ) -> None:
        super().__init__()
        self.host = EngineHost(engine_factory, model_path, verbose)
        self.history = history or History()
        self.store = store or PresetStore()
        self.start_preset = preset
        self._switching = asyncio.Lock()  # one chat opens at a time

    @property
    def view(self) -> ChatView:
        return self.query_one(ChatView)

    @property
    def session(self) -> ChatSession:
        return self.view.session

    @property
    def chats(self) -> ChatList:
        return self.query_one(ChatList)

    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            yield ChatList(self.history, id="chats")
            with Vertical(id="chat"):  # the open chat's ChatView is mounted first in here
                yield InspectorPanel(self.host, id="inspector", classes="hidden")
                yield LoadingIndicator(id="loading")
                yield ChatInput(id="input")
            yield ParameterPanel(id="parameters", classes="hidden")
        yield StatusBar(id="status").data_bind(
            AndonApp.model_name, AndonApp.model_note, AndonApp.preset_label, AndonApp.tokens_per_second,
            AndonApp.context_used, AndonApp.num_ctx, AndonApp.chat_note,
        )  # fmt: skip
        yield Footer()

    @guarded
    async def on_mount(self) -> None:
        self._catch_signals(True)
        try:
            recovered = self.history.recover_interrupted()
            await self.open_chat(self._first_chat())
        except HistoryError as exc:
            self.exit(return_code=2, message=f"andon: {exc}")
            return
        if recovered:
            self.view.say(f"{recovered} reply interrupted last time was kept and marked stopped.")
        self.query_one(ChatInput).focus()
        options = self.host.options(self.session.params)
        self.model_name = options.path.name
        self.load_engine(options)

    # --- chats --------------------------------------------------------------------------------

    def _first_chat(self) -> Chat:
        """The latest chat no other andon is writing, else a new one (always new with --preset)."""
        if not self.start_preset:
            for chat in self.history.chats():
                if self.history.claim_chat(chat.id):
                    return chat
        return self._new_chat()

    def _new_chat(self) -> Chat:
        preset = self.start_preset or DEFAULT_PRESET
        try:
            self.store.load(preset)
        except PresetError:
            preset = DEFAULT_PRESET
        return self.chats.create(preset)

    async def open_chat(self, chat: Chat) -> None:
        """Show the chat in a new view; a reply being written in the old one is stopped and saved."""
        async with self._switching:
            session = ChatSession(self.history, chat, self.store)
            owned = self.history.claim_chat(chat.id)
            for old in self.query(ChatView):
                await old.stop_reply()
                await old.remove()
                if old.session.chat.id != chat.id:
                    self._release(old.session.chat)
            view = ChatView(session, self.host)
            await self.query_one("#chat").mount(view, before=0)
            for name in ChatView.STATUS_FIELDS:
                self.watch(view, name, self._mirror(name))
            if not owned:
                pid = self.history.writer_pid(chat.id)
                view.say(f"Another andon (process {pid}) is writing this chat: it is read-only here. "
                         "Ctrl+N starts a new chat.", error=True)  # fmt: skip
        self.chats.reload(chat.id)
        self._chat_changed(session)

    def _mirror(self, name: str) -> Callable[[object], None]:
        return lambda value: setattr(self, name, value)

    def _release(self, chat: Chat) -> None:
        with suppress(HistoryError):  # the claim ends with this process anyway
            self.history.release_chat(chat.id)

    def _chat_changed(self, session: ChatSession) -> None:
        self.query_one(ParameterPanel).show(session.params, session.preset.parameters)
        self.query_one(InspectorPanel).show_for(session)

    @on(ChatList.Chosen)
    @guarded
    async def _chat_chosen(self, event: ChatList.Chosen) -> None:
        if event.chat.id != self.session.chat.id:
            await self.open_chat(event.chat)
            self.query_one(ChatInput).focus()

    @on(ChatView.ChatChanged)
    @guarded
    def _view_changed(self, event: ChatView.ChatChanged) -> None:
        self.chats.reload(event.session.chat.id)
        self.query_one(ParameterPanel).show(event.session.params, event.session.preset.parameters)

    @guarded
    async def action_new_chat(self) -> None:
        await self.open_chat(self._new_chat())
        self.query_one(ChatInput).focus()

    @work(group="dialog", exit_on_error=False)
    async def action_rename_chat(self) -> None:
        await self.chats.rename(self.session.chat)

    @work(group="dialog", exit_on_error=False)
    async def action_delete_chat(self) -> None:
        view = self.view
        if await self.chats.confirm_delete(view.session.chat):
            await view.stop_reply()
            following = self.chats.delete(view.session.chat)
            await self.open_chat(following or self._new_chat())

    @guarded
    def action_export_chat(self) -> None:
        self.chats.export(self.session.chat)

    # --- presets and panels -------------------------------------------------------------------

    def preset_names(self) -> list[str]:
        return self.store.names()

    def switch_preset(self, name: str) -> None:
        self.view.switch_preset(name)

    @guarded
    def action_next_preset(self) -> None:
        self.view.next_preset()

    @work(group="dialog", exit_on_error=False)
    async def action_pick_preset(self) -> None:
        view = self.view
        name = await self.push_screen_wait(PresetPicker(self.store.names(), view.session.preset.name))
        if name:
            view.switch_preset(name)

    @guarded
    def action_toggle_parameters(self) -> None:
        panel = self.query_one(ParameterPanel)
        panel.toggle_class("hidden")
        panel.show(self.session.params, self.session.preset.parameters)

    @guarded
    def action_toggle_inspector(self) -> None:
        panel = self.query_one(InspectorPanel)
        panel.toggle_class("hidden")
        panel.show_for(self.session)

    @on(ParameterPanel.Edited)
    @guarded
    def _parameter_edited(self, event: ParameterPanel.Edited) -> None:
        self.view.set_parameter(event.name, event.text)

    @on(InspectorPanel.Chosen)
    @guarded
    def _inspect_chosen(self, event: InspectorPanel.Chosen) -> None:
        self.query_one(InspectorPanel).show_for(self.session, event.position)

    @on(ChatView.ReplyEnded)
    @guarded
    def _reply_ended(self, event: ChatView.ReplyEnded) -> None:
        self.query_one(InspectorPanel).show_for(event.session)

    # --- messages and replies -----------------------------------------------------------------

    @on(ChatInput.Submitted)
    @guarded
    async def _submitted(self, event: ChatInput.Submitted) -> None:
        taken = False
        try:
            taken = await self.view.submit(event.text)
        finally:
            if not taken:  # not sent: what the user typed goes back into the box
                self.query_one(ChatInput).restore(event.text)

    @guarded
    def action_stop(self) -> None:
        self.view.stop()

    @guarded
    async def action_regenerate(self) -> None:
        if not self.view.replying:
            await self.view.regenerate()

    @guarded
    def action_edit_last(self) -> None:
        text = None if self.view.replying else self.view.edit_last()
        if text is not None:
            box = self.query_one(ChatInput)
            box.text = text
            box.focus()
            self.notify("Edit the message and press Enter to resend it (the replies after it are replaced).")

    @guarded
    def action_copy_reply(self) -> None:
        self._copy(self.view.last_reply(), "Reply copied", "There is no reply to copy.")

    @guarded
    def action_copy_code(self) -> None:
        self._copy(self.view.last_code(), "Code block copied", "The last reply has no code block.")

    def _copy(self, text: str | None, done: str, missing: str) -> None:
        if text is None:
            self.notify(missing, severity="warning")
            return
        self.copy_to_clipboard(text)
        self.notify(done)

    # --- the model ----------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def load_engine(self, options) -> None:
        self.call_from_thread(setattr, self, "model_note", f"loading {options.path.name}…")
        self.host.load(options)
        self.post_message(self.Loaded())

    @guarded
    def on_andon_app_loaded(self, message: Loaded) -> None:
        self.query_one("#loading").display = False
        engine = self.host.engine
        if engine is None:
            self.view.say(f"error: {self.host.error}", error=True)
            self.model_note = "model not loaded"
            return
        self.model_name, self.model_note = engine.model_name, ""

    # --- errors and the end -------------------------------------------------------------------

    def on_unexpected(self, message: Unexpected) -> None:
        """The one handler not guarded (it is the guard's end): it must not fail."""
        line = record(message.error)
        try:
            self.view.say(line, error=True)
        except Exception:
            self.notify(line, severity="error", markup=False)

    @guarded
    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.post_message(Unexpected(event.worker.error))

    def _catch_signals(self, install: bool) -> None:
        try:
            loop = asyncio.get_running_loop()
            for signum in SIGNALS:
                if install:
                    loop.add_signal_handler(signum, self._signalled, signum)
                else:
                    loop.remove_signal_handler(signum)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # no signal handlers here (Windows, or not the main thread): the default applies

    def _signalled(self, signum: int) -> None:
        self.post_message(self.Terminate(signum))

    @guarded
    async def on_andon_app_terminate(self, message: Terminate) -> None:
        """SIGTERM or SIGHUP: save the reply being written as stopped, then exit cleanly."""
        for view in self.query(ChatView):
            await view.stop_reply()
        self.exit(return_code=128 + message.signum)

    @guarded
    def on_unmount(self) -> None:
        self._catch_signals(False)
        self.workers.cancel_all()
        for view in self.query(ChatView):
            self._release(view.session.chat)
        with self.host.lock:  # a reply thread still ending keeps the engine until it is done
            self.host.close()
