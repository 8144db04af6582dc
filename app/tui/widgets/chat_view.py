"""The conversation of one chat, built from its ChatSession: switching chats builds a new view.

The view owns what belongs to the chat: its messages on screen (a Conversation: the latest ones
mounted, older ones a press away), the reply being written (a thread worker that streams into its
own MessageBox), slash commands, and what the status bar shows of the chat: it writes them in the
StatusFields it is given (the screen's, bound down to the bar).
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, replace

from andon.app.chat.history import HistoryError, StoredMessage, first_match
from andon.app.chat.session import ChatSession
from andon.app.control_text import visible
from andon.app.engine.engine import Done
from andon.app.engine.structured import check_change
from andon.app.tui.engine_host import EngineHost
from andon.app.tui.failures import guarded
from andon.app.tui.keys import help_keys, keys_of, welcome_hints
from andon.app.tui.reply import ReplyError, ReplyNote, TextBatch, Update, write_reply
from andon.app.tui.widgets.conversation import Conversation
from andon.app.tui.widgets.message_box import (
    EarlierMessages,
    MessageBox,
    NoticeLine,
    StatusFields,
    last_code_block,
    preset_summary,
)
from andon.app.tui.widgets.panels import parse_field
from andon.presets.parameters import ParameterError
from textual import work
from textual.message import Message
from textual.worker import Worker, get_current_worker

STOP_WAIT_S = 5.0  # how long a stop waits for the reply thread to save the reply


def timings(done: Done) -> str:
    """What `/set verbose` shows after a reply, as `ollama run --verbose` does."""
    u = done.usage
    prompt_rate = u.prompt_eval_tokens / u.ttft_s if u.ttft_s > 0 else 0.0
    return (
        f"total duration: {u.total_s:.2f}s · prompt: {u.prompt_tokens} tokens ({u.prompt_eval_tokens} evaluated, "
        f"{prompt_rate:.1f} tokens/s, first token after {u.ttft_s:.2f}s) · reply: {u.completion_tokens} tokens, "
        f"{u.tokens_per_second:.1f} tokens/s{_drafts(done)} · finish reason: {done.finish_reason}"
    )


def _not_continued(reply: StoredMessage | None) -> str:
    """Why the reply cannot be continued ("" when it can): only one that did not end by itself."""
    if reply is None:
        return "There is no reply to continue."
    if reply.status == "complete" and reply.stats.get("finish_reason") != "length":
        return "The last reply ended by itself; Ctrl+R writes another version of it."
    return ""


def _drafts(done: Done) -> str:
    """Speculative decoding's share of the reply, where it verified drafts."""
    u = done.usage
    if not u.drafted_tokens:
        return ""
    return f" · draft: {u.accepted_tokens} of {u.drafted_tokens} drafted tokens accepted"


@dataclass
class ReplyRun:
    """A reply's worker, and whether its thread has ended (the reply then is saved)."""

    worker: Worker[None]
    ended: threading.Event

    @property
    def running(self) -> bool:
        return not self.ended.is_set()


class ChatView(Conversation):
    """One chat's messages, andon's notices in it, and the reply being written."""

    @dataclass
    class ChatChanged(Message):
        """The chat's title, preset or parameters changed: the chat list and the panels follow."""

        session: ChatSession

    @dataclass
    class ReplyEnded(Message):
        session: ChatSession

    @dataclass
    class ReplyUpdate(Message):
        box: MessageBox
        update: Update

    def __init__(
        self, session: ChatSession, host: EngineHost, status: StatusFields, *, window: int | None = None
    ) -> None:
        super().__init__(window=window, id="conversation")
        self.session = session
        self.host = host
        self.status = status  # the status bar's fields: this view writes the chat's
        self._editing: StoredMessage | None = None
        self._run: ReplyRun | None = None  # the reply being written, or the last one
        self.owned = False  # whether this andon writes the chat (see _claim)
        self.verbose = False  # /set verbose: timings after each reply
        self._context_before = 0  # context used when the reply being written started
        self._welcome: NoticeLine | None = None  # an empty chat's welcome line

    # --- what is on screen --------------------------------------------------------------------

    @guarded
    def on_mount(self) -> None:
        status = self.status  # this chat's figures: no rate or drafts until it replies
        status.tokens_per_second, status.drafts, status.chat_note = None, (0, 0), ""
        status.preset_label, status.num_ctx = self._preset_label(), self.session.params.num_ctx
        status.context_used = self._last_context()
        self.scroll_end(animate=False)
        if self.session.warning:
            self.say(f"warning: {self.session.warning}", error=True)
        if not self.messages():
            self._welcome = self.say(self.welcome())
        self._claim()

    def welcome(self) -> str:
        """What a new chat says: the model, the preset and what it is for, the main keys, /help."""
        engine = self.host.engine
        fallback = engine.model_name if engine is not None else self.host.options(self.session.params).path.name
        model = self.host.model_label() or fallback  # its name in `andon models`, as the status bar shows it
        preset = self.session.preset
        summary = preset_summary(preset.description)
        return (
            f"New chat · model {model} · preset {preset.name}{' — ' + summary if summary else ''}\n"
            f"Type a message and press Enter (Ctrl+J adds a line). {keys_of('reply.stop', 'reply.stop_ctrl_c')} "
            f"stops a reply.\n{welcome_hints()}"
        )

    def refresh_welcome(self) -> None:
        """An empty chat's welcome names the model and preset in use now (after /load, F3, a load)."""
        if self._welcome is not None and self._welcome.is_attached and not self.messages():
            self._welcome.set_text(visible(self.welcome()))

    def _claim(self) -> None:
        """Become the chat's writer; another andon writing it leaves it read-only here."""
        history, chat_id = self.session.history, self.session.chat.id
        try:
            self.owned = history.claim_chat(chat_id)
            if not self.owned:
                self.say(f"Another andon (process {history.writer_pid(chat_id)}) is writing this chat: it is "
                         "read-only here. Ctrl+N starts a new chat.", error=True)  # fmt: skip
        except HistoryError as exc:
            self.say(f"error: {exc}", error=True)

    @guarded
    def on_unmount(self) -> None:
        if self.owned:
            with suppress(HistoryError):  # the claim ends with this process anyway
                self.session.history.release_chat(self.session.chat.id)

    def messages(self) -> list[StoredMessage]:
        return [m for m in self.session.messages if m.role in ("user", "assistant")]

    # --- sending ------------------------------------------------------------------------------

    @property
    def replying(self) -> bool:
        """A reply is being written and was not asked to stop."""
        return self._run is not None and self._run.running and not self._run.worker.is_cancelled

    async def submit(self, text: str) -> bool:
        """Send a message or run a slash command; False when the text must stay in the input box."""
        if text.strip().startswith("/"):
            await self.run_command(text.strip())
            return True
        if self.replying:
            self.notify("A reply is still being written: Esc stops it.", severity="warning")
            return False
        synced = self.session.synced
        try:
            message = await self._save_user(text)
        except HistoryError as exc:
            self.say(f"not sent (your message is still in the box): {exc}", error=True)
            return False
        self.window = self.base_window
        if self.session.synced != synced:  # the chat as stored had changed (another andon wrote it): shown anew
            await self.recompose()
        else:
            await self.add(MessageBox(message))
        self.post_message(self.ChatChanged(self.session))  # the first message names the chat
        await self.start_reply()
        return True

    async def _save_user(self, text: str) -> StoredMessage:
        if self._editing is not None:
            self.session.truncate_from(self._editing)
            self._editing = None
            await self.recompose()
        count = len(self.session.messages)
        try:
            return self.session.add_user(text)
        except HistoryError:
            if len(self.session.messages) == count:
                raise
            return self.session.messages[-1]  # saved; only the new title was not

    async def start_reply(self) -> None:
        try:
            reply = self.session.start_reply()
        except HistoryError as exc:
            self.say(f"error: the reply could not start: {exc}", error=True)
            return
        box = MessageBox(reply, json_reply=bool(self.session.params.format))
        await self.add(box)
        self._stream(reply, box)

    def _stream(self, reply: StoredMessage, box: MessageBox, continued: bool = False) -> None:
        """Write the reply into its box (a new reply, a new version, or more of a reply: `continued`)."""
        self.anchor()
        self._context_before = self.status.context_used  # the count moves from here while the reply streams
        if not self.host.loaded.is_set():
            self.status.chat_note = "waiting for the model to load…"
        ended = threading.Event()
        self._run = ReplyRun(self._write(reply, box, ended, continued), ended)

    @work(thread=True, exclusive=True, group="reply", exit_on_error=False)
    @guarded
    def _write(self, reply: StoredMessage, box: MessageBox, ended: threading.Event, continued: bool) -> None:
        worker = get_current_worker()
        # The reply thread needs the GIL back quickly after each llama.cpp call; the UI thread
        # renders in between. A shorter switch interval while a reply streams keeps tokens flowing.
        interval = sys.getswitchinterval()
        sys.setswitchinterval(0.001)

        def emit(update: Update) -> None:
            self.post_message(self.ReplyUpdate(box, update))

        try:
            write_reply(self.host, self.session.history, self.session, reply, lambda: worker.is_cancelled, emit,
                        continued)  # fmt: skip
        finally:
            sys.setswitchinterval(interval)
            ended.set()

    @guarded
    async def on_chat_view_reply_update(self, message: ReplyUpdate) -> None:
        if not message.box.is_attached:
            return  # a reply stopped by /clear, still ending: nothing of it is on screen
        update = message.update
        if isinstance(update, TextBatch):
            self.status.chat_note = ""
            await message.box.append(update.text, update.thinking)
            if update.progress:
                message.box.show_progress(update.progress)
            if update.tokens_per_second > 0:
                self.status.tokens_per_second = update.tokens_per_second  # live while the reply streams
            if update.completion_tokens:  # until the reply ends and gives the exact count
                self.status.context_used = self._context_before + update.completion_tokens
        elif isinstance(update, ReplyError):
            self.say(update.text, error=True)
        elif isinstance(update, ReplyNote):
            self.say(update.text)
        else:
            await self._finish(message.box, update)

    async def _finish(self, box: MessageBox, done: Done) -> None:
        status = self.status
        status.chat_note = ""
        await box.finish()
        if done.usage.completion_tokens:
            status.tokens_per_second = done.usage.tokens_per_second
            status.context_used = done.usage.prompt_tokens + done.usage.completion_tokens
        status.drafts = (done.usage.accepted_tokens, done.usage.drafted_tokens)
        if self.verbose:
            self.say(timings(done))
        self.post_message(self.ReplyEnded(self.session))

    def stop(self) -> None:
        """Stop the reply (what was written stays, marked stopped)."""
        self.workers.cancel_group(self, "reply")
        self.status.chat_note = ""

    async def stop_reply(self) -> None:
        """Stop the reply, if one is being written, and wait (a while) until it is saved.

        A reply still evaluating its prompt sees the stop only when that ends; after STOP_WAIT_S
        this goes on, and the reply thread saves the reply as stopped when it gets there.
        """
        run = self._run
        if run is None or not run.running:
            return
        self.stop()
        deadline = time.monotonic() + STOP_WAIT_S
        while run.running and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    # --- commands on the chat -----------------------------------------------------------------

    async def run_command(self, line: str) -> None:
        from andon.app.chat.slash import run_slash

        self.say(line)
        if line.split()[0].lower() == "/clear":
            await self.stop_reply()
        result = run_slash(self.session, line, keys=help_keys())
        if result.action == "quit":
            self.app.exit()
            return
        if result.action == "cleared":
            await self.recompose()
            self.status.context_used = 0
            self.post_message(self.ChatChanged(self.session))  # the chat list shows the copy kept
        if result.ok and [w.lower() for w in line.split()[:2]] == ["/show", "info"]:
            result = replace(result, text=result.text + self._engine_line())
        if result.text:
            self.say(result.text, error=not result.ok)
        if result.action == "settings":
            self.settings_changed()
        if result.action in ("verbose", "quiet"):
            self.verbose = result.action == "verbose"
        if result.action == "continue":
            await self.continue_reply()
        if result.action == "model":  # /model, /load MODEL: the screen switches the chat's model
            from andon.app.tui.screens.model_picker import ModelWanted

            self.post_message(ModelWanted(result.model, result.presets))

    def _engine_line(self) -> str:
        """The engine process, for /show info (its pid: a process to watch, or to stop by hand)."""
        engine = self.host.engine
        if engine is None:
            return "\n    engine            not running (it starts with the next message)"
        return f"\n    engine            process {engine.pid}" + ("" if engine.alive() else " (stopped)")

    async def regenerate(self) -> None:
        """Write the chat's last reply, as stored now (another andon may have written since), again;
        the reply's earlier text is kept as one of its versions."""
        synced, failed = self.session.synced, ""
        try:
            last = self.session.reply_to_regenerate()
            if last is not None:
                self.session.new_version(last)
        except HistoryError as exc:
            last, failed = None, f"error: nothing was regenerated: {exc}"
        if last is not None or self.session.synced != synced:
            await self.recompose()
        if failed:
            self.say(failed, error=True)
        elif last is None:
            self.notify("There is no reply to regenerate.", severity="warning")
        else:
            self._stream(last, await self._box_of(last))

    async def continue_reply(self) -> None:
        """Go on writing the last reply (stopped, or cut at num_predict) in the same message: the
        model continues its text, and what it writes is added to the reply and stored."""
        if self.replying:
            self.notify("A reply is still being written: Esc stops it.", severity="warning")
            return
        synced, why = self.session.synced, ""
        try:
            last = self.session.reply_to_regenerate()
            why = _not_continued(last)
            if not why and last is not None:
                self.session.continue_reply(last)
        except HistoryError as exc:
            last, why = None, f"error: nothing was continued: {exc}"
        if self.session.synced != synced:
            await self.recompose()
        if why:
            self.notify(why, severity="warning", markup=False)
        elif last is not None:
            box = await self._box_of(last)
            box.header.update(box.header_text())
            self._stream(last, box, continued=True)

    async def show_match(self, search: str) -> None:
        """Scroll to the first message holding the search's words (the most of them), highlighted;
        an earlier message not mounted yet is mounted with those after it."""
        shown = self.messages()
        index = first_match(shown, search)
        if index is None:
            return
        if index < self.hidden:
            earlier, self.window = shown[index : self.hidden], self.window + self.hidden - index
            self.hidden = index
            await self.mount_all([MessageBox(m) for m in earlier], after=self.query_one(EarlierMessages))
            await self._show_hidden()
        for box in self.query(MessageBox):
            box.set_class(box.message is shown[index], "found")
        box = await self._box_of(shown[index])
        self.release_anchor()
        self.call_after_refresh(self.scroll_to_widget, box, animate=False, top=True)

    async def _box_of(self, reply: StoredMessage) -> MessageBox:
        """The reply's box on screen (the view is composed again if it is not mounted)."""
        boxes = [b for b in self.query(MessageBox) if b.message is reply]
        if not boxes:
            await self.recompose()
            boxes = [b for b in self.query(MessageBox) if b.message is reply]
        return boxes[-1]

    async def step_version(self, step: int) -> None:
        """Show the last reply's previous (-1) or next (+1) version: the conversation goes on from it."""
        last = self.session.messages[-1] if self.session.messages else None
        if self.replying or last is None or last.role != "assistant" or last.versions < 2:
            return
        number = last.version + step
        if not 1 <= number <= last.versions:
            self.notify(
                f"This is the {'first' if step < 0 else 'last'} version of the reply ({last.version}/{last.versions})."
            )
            return
        try:
            self.session.show_version(last, number)
        except HistoryError as exc:
            self.say(f"error: the version shown is unchanged: {exc}", error=True)
            return
        box = await self._box_of(last)
        await self.mount(MessageBox(last), after=box)
        await box.remove()
        self.scroll_end(animate=False)
        self.status.context_used = self._last_context()

    def edit_last(self) -> str | None:
        """The last message, to edit in the input box; sending it replaces it and what followed."""
        last = self.session.last("user")
        if last is not None:
            self._editing = last
        return last.content if last else None

    def last_reply(self) -> str | None:
        last = self.session.last("assistant")
        return last.content if last and last.content else None

    def last_code(self) -> str | None:
        last = self.session.last("assistant")
        return last_code_block(last.content) if last else None

    # --- settings -----------------------------------------------------------------------------

    def switch_preset(self, name: str, keep_changes: bool = True) -> None:
        try:
            self.session.switch_preset(name, keep_changes)
        except Exception as exc:  # an unknown or broken preset, a busy history: one line
            self.say(f"error: {exc}", error=True)
            return
        self.notify(f"Preset '{name}' applies from the next reply", title="Preset")
        self.settings_changed()

    def next_preset(self) -> None:
        names = self.session.store.names()
        current = self.session.preset.name
        self.switch_preset(names[(names.index(current) + 1) % len(names)] if current in names else names[0])

    def set_parameter(self, name: str, text: str) -> None:
        try:
            value = parse_field(name, text)
            check_change(self.session.params, {name: value})  # a format, grammar or draft model that cannot work
            self.session.set_parameters({name: value})
        except (ParameterError, ValueError, HistoryError) as exc:
            self.notify(str(exc), title="Not changed", severity="error", markup=False)
        self.settings_changed()

    def settings_changed(self) -> None:
        self.refresh_welcome()
        self.status.preset_label = self._preset_label()
        self.status.num_ctx = self.session.params.num_ctx
        self.post_message(self.ChatChanged(self.session))

    def _preset_label(self) -> str:
        return self.session.preset.name + (" *" if self.session.changes else "")

    def model_changed(self, context: int | None) -> None:
        """Another model answers now: the rate and drafts of the one before are not its own; the
        chat's context (if counted) is its count."""
        self.status.tokens_per_second, self.status.drafts = None, (0, 0)
        if context is not None:
            self.status.context_used = context

    def _last_context(self) -> int:
        """Context used after the last reply (0 before any): prompt and reply tokens."""
        last = self.session.last("assistant")
        stats = last.stats if last else {}
        return int(stats.get("prompt_tokens", 0)) + int(stats.get("completion_tokens", 0))
