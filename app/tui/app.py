"""andon's chat app: stream replies from the local model, switch presets, tune parameters."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import ClassVar, Protocol

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Footer, LoadingIndicator, Markdown
from textual.worker import Worker, get_current_worker

from app.chat import ChatSession
from app.engine import ContextFullError, Delta, Done, Event, ModelLoadError, ModelOptions, Notice, Usage
from app.history import History, StoredMessage
from app.tui.screens import ConfirmScreen, PresetPicker, PromptScreen
from app.tui.widgets import (
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
from app.tui.widgets import Notice as NoticeLine
from presets.parameters import ParameterError, Parameters
from presets.paths import data_dir
from presets.store import DEFAULT_PRESET, PresetStore
from samplers import Chain

SAVE_EVERY_S = 0.5  # how often a streaming reply is written to the history
FLUSH_EVERY_S = 0.1  # how often streamed text is handed to the UI (10 updates a second)


class EngineLike(Protocol):
    """What the app needs of an engine; tests pass a fake that yields scripted tokens."""

    model_name: str
    n_ctx: int
    options: ModelOptions

    def stream(self, messages, params: Parameters, cancelled=None, chain: Chain | None = None): ...

    def chat_tokens(self, messages) -> list[int]: ...

    def close(self) -> None: ...


EngineFactory = Callable[[ModelOptions], EngineLike]


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

    @dataclass
    class Loaded(Message):
        engine: EngineLike | None
        error: str | None = None
        seconds: float = 0.0

    @dataclass
    class ReplyEvent(Message):
        event: Event | str  # a str is an error to show

    class ReplyText(Message):
        """New text is waiting in the app's buffer (sent at most every FLUSH_EVERY_S)."""

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
        self.engine_factory = engine_factory
        self._model_path = model_path
        self.history = history or History()
        self.store = store or PresetStore()
        self.start_preset = preset
        self.verbose = verbose
        self.engine: EngineLike | None = None
        self.engine_error: str | None = None
        self.loaded = threading.Event()
        self.session: ChatSession | None = None
        self.streaming: MessageBox | None = None
        self._stream = None
        self._editing: StoredMessage | None = None
        self.last_tps: float | None = None
        self.context_used = 0
        self._status_note = ""
        self._pending: list[str] = []
        self._pending_lock = threading.Lock()
        self.engine_lock = threading.Lock()  # one user of the engine at a time: a reply or an inspection

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
        self.load_engine(self.model_options(self.session.params if self.session else Parameters()))

    def model_path(self) -> Path:
        return self._model_path() if callable(self._model_path) else self._model_path

    def model_options(self, params: Parameters) -> ModelOptions:
        try:
            path = self.model_path()
        except Exception as exc:  # the embedded model missing: reported when loading
            path = Path(f"<{exc}>")
        return ModelOptions.from_parameters(path, params, self.verbose)

    # --- the model ----------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="load")
    def load_engine(self, options: ModelOptions) -> None:
        self.loaded.clear()
        t0 = time.perf_counter()
        self.call_from_thread(self.set_status_note, f"loading {options.path.name}…")
        try:
            if self.engine is not None:
                self.engine.close()
                self.engine = None
            engine = self.engine_factory(options)
        except (ModelLoadError, OSError, ValueError) as exc:
            self.post_message(self.Loaded(None, str(exc)))
        except Exception as exc:  # never a traceback in the app
            self.post_message(self.Loaded(None, f"could not load the model: {type(exc).__name__}: {exc}"))
        else:
            self.post_message(self.Loaded(engine, None, time.perf_counter() - t0))

    def on_andon_app_loaded(self, message: Loaded) -> None:
        self.engine = message.engine
        self.engine_error = message.error
        self.loaded.set()
        self.query_one("#loading").display = False
        if message.error:
            self.say(f"error: {message.error}", error=True)
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
            pieces = [_piece(engine, t) for t in tokens] if engine is not None and hasattr(engine, "piece") else []
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
        from app.inspector import inspect_next, render

        if not self.loaded.wait(60) or self.engine is None:
            self.call_from_thread(self.query_one(InspectorPanel).show_text, "The model is not loaded.")
            return
        engine = self.engine
        if not hasattr(engine, "logits"):
            self.call_from_thread(self.query_one(InspectorPanel).show_text, "This engine cannot be inspected.")
            return
        messages = session.engine_messages()
        reply = session.last("assistant")
        chosen = None
        if position is not None and reply is not None and messages and messages[-1]["role"] == "assistant":
            reply_tokens = reply.stats.get("tokens", [])
            context = engine.chat_tokens(messages[:-1]) + reply_tokens[:position]
            chosen = reply_tokens[position] if position < len(reply_tokens) else None
            title = f"Reply token {position}: the candidates when it was chosen"
        else:
            context = engine.chat_tokens(messages)
            title = "Next token of this chat"
        try:
            with self.engine_lock:
                result = inspect_next(engine, context, session.params, top=10)
            text = render(result, with_prompt=False)
            if chosen is not None:
                text += f"\nchosen: {_piece(engine, chosen)!r} (id {chosen})"
        except Exception as exc:  # shown in the panel, never a traceback
            text = f"error: {type(exc).__name__}: {exc}"
        self.call_from_thread(self.query_one(InspectorPanel).show_text, f"{title}\n\n{text}")

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
        from app.slash import run_slash

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
        if not self.loaded.is_set():
            self.set_status_note("waiting for the model to load…")
        self.generate(self.session, reply)

    @work(thread=True, exclusive=True, group="reply")
    def generate(self, session: ChatSession, reply: StoredMessage) -> None:
        # The reply thread needs the GIL back quickly after each llama.cpp call; the UI thread
        # renders in between. A shorter switch interval while a reply streams keeps tokens flowing.
        interval = sys.getswitchinterval()
        sys.setswitchinterval(0.001)
        try:
            self._generate(session, reply)
        finally:
            sys.setswitchinterval(interval)

    def _generate(self, session: ChatSession, reply: StoredMessage) -> None:
        worker = get_current_worker()
        while not self.loaded.wait(0.1):
            if worker.is_cancelled:
                self._finish_unloaded(session, reply, "stopped")
                return
        params = session.params
        engine = self.engine
        if engine is None:
            self._finish_unloaded(session, reply, "error")
            self.post_message(self.ReplyEvent(f"error: the model is not loaded ({self.engine_error})"))
            return
        if engine.options.num_ctx != params.num_ctx or any(
            getattr(engine.options, k) != v for k, v in params.model_options().items()
        ):
            self.call_from_thread(self.set_status_note, "reloading the model for the new settings…")
            try:
                engine.close()
                engine = self.engine = self.engine_factory(self.model_options(params))
            except Exception as exc:
                self.engine = None
                self._finish_unloaded(session, reply, "error")
                self.post_message(self.ReplyEvent(f"error: {exc}"))
                return
        text: list[str] = []
        last_save = last_flush = time.monotonic()
        messages = session.engine_messages()
        try:
            for event in self._locked_stream(engine, messages, params, lambda: worker.is_cancelled):
                if isinstance(event, Delta):
                    text.append(event.text)
                    with self._pending_lock:
                        self._pending.append(event.text)
                    now = time.monotonic()
                    if now - last_flush > FLUSH_EVERY_S:
                        # one UI update per frame, not per token: the UI stays responsive
                        self.post_message(self.ReplyText())
                        last_flush = now
                    if now - last_save > SAVE_EVERY_S:
                        self.history.update_message(reply.id, "".join(text))
                        last_save = now
                    continue
                if isinstance(event, Done):
                    status = "stopped" if event.finish_reason == "cancelled" else "complete"
                    stats = {
                        "tokens": event.tokens,
                        "completion_tokens": event.usage.completion_tokens,
                        "prompt_tokens": event.usage.prompt_tokens,
                        "tokens_per_second": round(event.usage.tokens_per_second, 2),
                        "finish_reason": event.finish_reason,
                        "seed": event.seed,
                    }
                    self.history.update_message(reply.id, event.text, status, stats)
                    reply.content, reply.status, reply.stats = event.text, status, stats
                self.post_message(self.ReplyEvent(event))
        except ContextFullError as exc:
            self._finish_unloaded(session, reply, "error", "".join(text))
            self.post_message(self.ReplyEvent(f"error: {exc}"))
        except Exception as exc:  # never a traceback in the app
            self._finish_unloaded(session, reply, "error", "".join(text))
            self.post_message(self.ReplyEvent(f"error: the reply failed: {type(exc).__name__}: {exc}"))

    def _locked_stream(self, engine: EngineLike, messages, params: Parameters, cancelled):
        with self.engine_lock:
            yield from engine.stream(messages, params, cancelled=cancelled)

    def _finish_unloaded(self, session: ChatSession, reply: StoredMessage, status, text: str = "") -> None:
        """End a reply that did not finish normally: store what there is, close the stream."""
        self.history.update_message(reply.id, text, status)
        reply.content, reply.status = text, status
        self.post_message(self.ReplyEvent(Done(text, "cancelled", Usage(), -1)))

    def _take_pending(self) -> str:
        with self._pending_lock:
            text = "".join(self._pending)
            self._pending.clear()
        return text

    async def on_andon_app_reply_text(self, message: ReplyText) -> None:
        text = self._take_pending()
        if text and self._stream is not None:
            await self._stream.write(text)

    async def on_andon_app_reply_event(self, message: ReplyEvent) -> None:
        event = message.event
        if isinstance(event, str):
            self.say(event, error=True)
            return
        if isinstance(event, Notice):
            self.say(event.text)
        elif isinstance(event, Done):
            await self._end_stream(event)

    async def _end_stream(self, done: Done) -> None:
        self._take_pending()  # the final full update below shows it
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
        if self.loaded.is_set():
            note = "" if engine is not None else "model not loaded"
            self._status_note = ""
        model = engine.model_name if engine is not None else self.model_options(self.session.params).path.name
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
        if self.engine is not None:
            self.engine.close()


def _piece(engine, token: int) -> str:
    return engine.piece(token, special=True).decode("utf-8", "replace")
