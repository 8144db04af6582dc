"""andon's chat app: stream replies from the local model, switch presets, tune parameters."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import ClassVar, cast

from andon.app.chat import ChatSession
from andon.app.engine import Done, Engine, ReplyNotice
from andon.app.history import History, StoredMessage
from andon.app.tui.engine_host import EngineFactory, EngineHost, EngineLike
from andon.app.tui.reply import ReplyError, TextBatch, Update, run_reply
from andon.app.tui.screens import ConfirmScreen, PresetPicker, PromptScreen
from andon.app.tui.widgets import (
    ChatInput,
    ChatItem,
    ChatList,
    Conversation,
    InspectorPanel,
    MessageBox,
    ParameterPanel,
    StatusBar,
    last_code_block,
    parse_field,
)
from andon.app.tui.widgets import Notice as NoticeLine
from andon.presets.parameters import ParameterError, Parameters
from andon.presets.paths import data_dir
from andon.presets.store import DEFAULT_PRESET, PresetStore
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Footer, LoadingIndicator, Markdown
from textual.widgets.markdown import MarkdownStream
from textual.worker import Worker, get_current_worker

__all__ = ["AndonApp", "EngineFactory", "EngineLike"]


class PresetCommands(Provider):
    """Command palette: "Preset: NAME" switches the chat's preset."""

    async def discover(self) -> Hits:
        app = self.app
        assert isinstance(app, AndonApp)
        for name in app.store.names():
            yield DiscoveryHit(f"Preset: {name}", partial(app.switch_preset, name), help="Switch this chat's preset")

    async def search(self, query: str) -> Hits:
        app = self.app
        assert isinstance(app, AndonApp)
        matcher = self.matcher(query)
        for name in app.store.names():
            text = f"Preset: {name}"
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), partial(app.switch_preset, name), help="Switch preset")


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

    class Loaded(Message):
        """The first model load has ended (see the host's engine and error)."""

    @dataclass
    class ReplyUpdate(Message):
        update: Update

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
        self.session: ChatSession | None = None
        self.streaming: MessageBox | None = None
        self._stream: MarkdownStream | None = None
        self._editing: StoredMessage | None = None
        self.last_tps: float | None = None
        self.context_used = 0
        self._status_note = ""

    @property
    def engine(self) -> EngineLike | None:
        return self.host.engine

    # --- layout -------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            yield ChatList(id="chats")
            with Vertical(id="chat"):
                yield Conversation(id="conversation")
                yield InspectorPanel(id="inspector", classes="hidden")
                yield LoadingIndicator(id="loading")
                yield ChatInput(id="input")
            yield ParameterPanel(id="parameters", classes="hidden")
        yield StatusBar(id="status")
        yield Footer()

    def on_mount(self) -> None:
        recovered = self.history.recover_interrupted()
        chats = self.history.chats()
        chat = chats[0] if chats and not self.start_preset else self._new_chat_record()
        self.open_chat(chat.id)
        if recovered:
            self.say(f"{recovered} reply interrupted last time was kept and marked stopped.")
        self.query_one(ChatInput).focus()
        self.load_engine(self.host.options(self.session.params if self.session else Parameters()))

    # --- the model ----------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="load")
    def load_engine(self, options) -> None:
        self.call_from_thread(self.set_status_note, f"loading {options.path.name}…")
        self.host.load(options)
        self.post_message(self.Loaded())

    def on_andon_app_loaded(self, message: Loaded) -> None:
        self.query_one("#loading").display = False
        if self.host.error:
            self.say(f"error: {self.host.error}", error=True)
        self.update_status()

    # --- chats --------------------------------------------------------------------------------

    def _new_chat_record(self):
        preset = self.start_preset or DEFAULT_PRESET
        try:
            self.store.load(preset)
        except Exception:
            preset = DEFAULT_PRESET
        return self.history.create_chat("New chat", preset)

    def open_chat(self, chat_id: int) -> None:
        chat = self.history.chat(chat_id)
        if chat is None:
            return
        self.session = ChatSession(self.history, chat, self.store)
        conv = self.query_one(Conversation)
        conv.remove_children()
        conv.mount_all(MessageBox(m) for m in self.session.messages if m.role in ("user", "assistant"))
        if self.session.warning:
            self.say(f"warning: {self.session.warning}", error=True)
        conv.scroll_end(animate=False)
        self.context_used = 0
        self.refresh_chats()
        self.refresh_parameters()
        self.update_status()

    @work(exclusive=True, group="chats")
    async def refresh_chats(self) -> None:
        lst = self.query_one(ChatList)
        chats = self.history.chats()
        await lst.clear()
        await lst.extend(ChatItem(c) for c in chats)
        if self.session is not None:
            ids = [c.id for c in chats]
            if self.session.chat.id in ids:
                lst.index = ids.index(self.session.chat.id)

    @on(ChatList.Chosen)
    def _chat_chosen(self, event: ChatList.Chosen) -> None:
        if self.session and event.chat.id != self.session.chat.id:
            self.action_stop()
            self.open_chat(event.chat.id)
            self.query_one(ChatInput).focus()

    def action_new_chat(self) -> None:
        self.action_stop()
        self.open_chat(self._new_chat_record().id)
        self.query_one(ChatInput).focus()

    def action_rename_chat(self) -> None:
        if self.session is None:
            return
        session = self.session

        def renamed(title: str | None) -> None:
            if title:
                session.chat.title = title
                self.history.update_chat(session.chat)
                self.refresh_chats()

        self.push_screen(PromptScreen("Rename chat", session.chat.title), renamed)

    def action_delete_chat(self) -> None:
        if self.session is None:
            return
        chat = self.session.chat

        def answered(yes: bool | None) -> None:
            if yes:
                self.action_stop()
                self.history.delete_chat(chat.id)
                rest = self.history.chats()
                self.open_chat(rest[0].id if rest else self._new_chat_record().id)

        self.push_screen(ConfirmScreen(f"Delete the chat '{chat.title}'?"), answered)

    def action_export_chat(self) -> None:
        if self.session is None:
            return
        folder = data_dir() / "exports"
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in self.session.chat.title)[:40] or "chat"
        path = folder / f"{self.session.chat.id}-{safe}.md"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path.write_text(self.history.to_markdown(self.session.chat.id), "utf-8")
        except OSError as exc:
            self.notify(f"Could not write {path}: {exc.strerror}", title="Export failed", severity="error")
            return
        self.notify(f"Exported to {path}", title="Export")

    # --- presets and parameters ---------------------------------------------------------------

    def switch_preset(self, name: str, keep_changes: bool = True) -> None:
        if self.session is None:
            return
        try:
            self.session.switch_preset(name, keep_changes)
        except Exception as exc:
            self.say(f"error: {exc}", error=True)
            return
        self.notify(f"Preset '{name}' applies from the next reply", title="Preset")
        self.settings_changed()

    def action_next_preset(self) -> None:
        if self.session is None:
            return
        names = self.store.names()
        current = self.session.preset.name
        nxt = names[(names.index(current) + 1) % len(names)] if current in names else names[0]
        self.switch_preset(nxt)

    def action_pick_preset(self) -> None:
        if self.session is None:
            return

        def picked(name: str | None) -> None:
            if name:
                self.switch_preset(name)

        self.push_screen(PresetPicker(self.store.names(), self.session.preset.name), picked)

    def action_toggle_parameters(self) -> None:
        panel = self.query_one(ParameterPanel)
        panel.toggle_class("hidden")
        if not panel.has_class("hidden"):
            self.refresh_parameters()

    def action_toggle_inspector(self) -> None:
        panel = self.query_one(InspectorPanel)
        panel.toggle_class("hidden")
        if not panel.has_class("hidden"):
            self.refresh_inspector()

    def refresh_inspector(self, position: int | None = None) -> None:
        panel = self.query_one(InspectorPanel)
        if panel.has_class("hidden") or self.session is None:
            return
        reply = self.session.last("assistant")
        tokens = reply.stats.get("tokens", []) if reply else []
        if position is None:
            engine = self.engine
            pieces = (
                [engine.token_text(t) for t in tokens] if engine is not None and hasattr(engine, "token_text") else []
            )
            panel.set_tokens(pieces)
        if self.is_streaming():
            panel.show_text("The inspector updates when the reply ends.")
            return
        panel.show_text("computing…")
        self.inspect(self.session, position)

    @on(InspectorPanel.Chosen)
    def _inspect_chosen(self, event: InspectorPanel.Chosen) -> None:
        self.refresh_inspector(event.position)

    @work(thread=True, exclusive=True, group="inspect")
    def inspect(self, session: ChatSession, position: int | None) -> None:
        from andon.app.inspector import inspect_chat

        panel = self.query_one(InspectorPanel)
        if not self.host.loaded.wait(60) or self.engine is None or not hasattr(self.engine, "logits"):
            self.call_from_thread(panel.show_text, "The model is not loaded, or this engine cannot be inspected.")
            return
        reply = session.last("assistant")
        tokens = reply.stats.get("tokens", []) if reply else []
        try:
            with self.host.lock:
                engine = cast(Engine, self.engine)  # checked above: a real engine, not a test fake
                text = inspect_chat(engine, session.engine_messages(), tokens, session.params, position)
        except Exception as exc:  # shown in the panel, never a traceback
            text = f"error: {type(exc).__name__}: {exc}"
        self.call_from_thread(panel.show_text, text)

    def refresh_parameters(self) -> None:
        panel = self.query_one(ParameterPanel)
        if self.session is not None and not panel.has_class("hidden"):
            panel.show(self.session.params, self.session.preset.parameters)

    @on(ParameterPanel.Edited)
    def _parameter_edited(self, event: ParameterPanel.Edited) -> None:
        if self.session is None:
            return
        try:
            self.session.set_parameters({event.name: parse_field(event.name, event.text)})
        except (ParameterError, ValueError) as exc:
            self.notify(str(exc), title="Not changed", severity="error")
        self.settings_changed()

    def settings_changed(self) -> None:
        self.refresh_parameters()
        self.update_status()

    # --- sending and streaming ----------------------------------------------------------------

    @on(ChatInput.Submitted)
    def _submitted(self, event: ChatInput.Submitted) -> None:
        text = event.text.strip()
        if text.startswith("/"):
            self.run_command(text)
            return
        if self.session is None:
            return
        if self.is_streaming():
            self.notify("A reply is still being written: Esc stops it.", severity="warning")
            self.query_one(ChatInput).text = event.text
            return
        if self._editing is not None:
            self.session.truncate_from(self._editing)
            self._editing = None
            self.open_chat(self.session.chat.id)
        message = self.session.add_user(event.text)
        self.query_one(Conversation).mount(MessageBox(message))
        self.refresh_chats()
        self.start_reply()

    def run_command(self, line: str) -> None:
        from andon.app.slash import run_slash

        if self.session is None:
            return
        self.say(line)
        result = run_slash(self.session, line)
        if result.action == "quit":
            self.exit()
            return
        if result.text:
            self.say(result.text, error=not result.ok)
        if result.action == "cleared":
            self.open_chat(self.session.chat.id)
            self.say(result.text)
        elif result.action == "settings":
            self.settings_changed()
            self.refresh_chats()

    def is_streaming(self) -> bool:
        return any(w.group == "reply" and w.is_running for w in self.workers)

    def start_reply(self) -> None:
        assert self.session is not None
        reply = self.session.start_reply()
        box = MessageBox(reply)
        self.query_one(Conversation).mount(box)
        self.streaming = box
        self._stream = Markdown.get_stream(box.body)
        self.query_one(Conversation).anchor()
        if not self.host.loaded.is_set():
            self.set_status_note("waiting for the model to load…")
        self.generate(self.session, reply)

    @work(thread=True, exclusive=True, group="reply")
    def generate(self, session: ChatSession, reply: StoredMessage) -> None:
        worker = get_current_worker()
        # The reply thread needs the GIL back quickly after each llama.cpp call; the UI thread
        # renders in between. A shorter switch interval while a reply streams keeps tokens flowing.
        interval = sys.getswitchinterval()
        sys.setswitchinterval(0.001)

        def emit(update: Update) -> None:
            self.post_message(self.ReplyUpdate(update))

        try:
            run_reply(self.host, self.history, session, reply, lambda: worker.is_cancelled, emit)
        finally:
            sys.setswitchinterval(interval)

    async def on_andon_app_reply_update(self, message: ReplyUpdate) -> None:
        update = message.update
        if isinstance(update, TextBatch):
            if self._stream is not None:
                await self._stream.write(update.text)
            if update.tokens_per_second > 0:
                self.last_tps = update.tokens_per_second  # live while the reply streams
                self.update_status()
        elif isinstance(update, ReplyError):
            self.say(update.text, error=True)
        elif isinstance(update, ReplyNotice):
            self.say(update.text)
        else:
            await self._end_stream(update)

    async def _end_stream(self, done: Done) -> None:
        box = self.streaming
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None
        if box is not None:
            await box.body.update(box.message.content)  # one full render at the end
            box.refresh_header()
        self.streaming = None
        if done.usage.completion_tokens:
            self.last_tps = done.usage.tokens_per_second
            self.context_used = done.usage.prompt_tokens + done.usage.completion_tokens
        self.update_status()
        self.refresh_inspector()

    def action_stop(self) -> None:
        self.workers.cancel_group(self, "reply")

    def action_regenerate(self) -> None:
        if self.session is None or self.is_streaming():
            return
        last = self.session.last("assistant")
        if last is None or self.session.messages[-1].id != last.id:
            self.notify("There is no reply to regenerate.", severity="warning")
            return
        self.session.truncate_from(last)
        self.open_chat(self.session.chat.id)
        self.start_reply()

    def action_edit_last(self) -> None:
        if self.session is None or self.is_streaming():
            return
        last = self.session.last("user")
        if last is None:
            return
        self._editing = last
        box = self.query_one(ChatInput)
        box.text = last.content
        box.focus()
        self.notify("Edit the message and press Enter to resend it (the replies after it are replaced).")

    def action_copy_reply(self) -> None:
        last = self.session.last("assistant") if self.session else None
        if last is None or not last.content:
            self.notify("There is no reply to copy.", severity="warning")
            return
        self.copy_to_clipboard(last.content)
        self.notify("Reply copied")

    def action_copy_code(self) -> None:
        last = self.session.last("assistant") if self.session else None
        code = last_code_block(last.content) if last else None
        if code is None:
            self.notify("The last reply has no code block.", severity="warning")
            return
        self.copy_to_clipboard(code)
        self.notify("Code block copied")

    # --- status -------------------------------------------------------------------------------

    def say(self, text: str, error: bool = False) -> None:
        conv = self.query_one(Conversation)
        conv.mount(NoticeLine(text, error))
        conv.scroll_end(animate=False)

    def set_status_note(self, note: str) -> None:
        self._status_note = note
        self.update_status()

    def update_status(self) -> None:
        if self.session is None:
            return
        engine = self.engine
        note = self._status_note
        if self.host.loaded.is_set():
            note = "" if engine is not None else "model not loaded"
            self._status_note = ""
        model = engine.model_name if engine is not None else self.host.options(self.session.params).path.name
        self.query_one(StatusBar).show(
            model=model,
            preset=self.session.preset.name + (" *" if self.session.changes else ""),
            tps=self.last_tps,
            used=self.context_used,
            num_ctx=engine.n_ctx if engine is not None else self.session.params.num_ctx,
            note=note,
        )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.update_status()

    def on_unmount(self) -> None:
        self.workers.cancel_all()
        self.host.close()
