"""The main screen: the chat list, the open chat, the panels and the status bar, wired together.

The open chat is a ChatView built from its ChatSession; opening another chat stops the reply being
written (it is saved as stopped, in its own chat) and builds a new view. The status bar is bound
(data_bind) to this screen's StatusFields, each declared once; the open view writes the chat's, the
model controller's callbacks the model's.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator
from contextlib import suppress
from functools import partial

from andon.app.chat.history import Chat, History, HistoryError
from andon.app.chat.session import ChatSession
from andon.app.tui.copying import copy_choices
from andon.app.tui.engine_host import EngineHost
from andon.app.tui.failures import guarded
from andon.app.tui.keys import PLACEHOLDER
from andon.app.tui.model_switch import ModelController
from andon.app.tui.screens.dialogs import CopyPicker, PresetPicker
from andon.app.tui.screens.model_picker import ModelWanted
from andon.app.tui.widgets.chat_list import ChatList, ChatSearch, ChatsPane
from andon.app.tui.widgets.chat_view import ChatView
from andon.app.tui.widgets.footer import KeysFooter
from andon.app.tui.widgets.message_box import ChatInput, StatusBar, StatusFields, earlier_messages, preset_summary
from andon.app.tui.widgets.panels import InspectorPanel, ParameterPanel
from andon.presets.preset import Preset
from andon.presets.store import DEFAULT_PRESET, PresetError, PresetStore
from textual import events, on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import LoadingIndicator

# the actions that open a dialog (each in a "dialog" worker, awaiting its answer)
DIALOGS = frozenset({"rename_chat", "delete_chat", "pick_preset", "pick_model", "copy_any"})


class ChatScreen(Screen[None], StatusFields):  # it holds what the status bar shows
    AUTO_FOCUS = "#input"  # typing goes to the message box from the first frame

    def __init__(self, host: EngineHost, history: History, store: PresetStore, preset: str | None) -> None:
        super().__init__()
        self.host = host
        self.models = ModelController(host, self, lambda: self.view, self._model_note, self._model_ended)
        self.history = history
        self.store = store
        self.start_preset = preset  # new chats use it; with it, andon starts in a new chat
        self._opening = asyncio.Lock()  # one chat opens at a time
        self._list_for_search = False  # the chat list was hidden and Ctrl+F showed it: it goes after
        self.typed: list[str] = []  # what was sent from the box in this andon, slash commands included

    @property
    def view(self) -> ChatView:
        return self.query_one(ChatView)

    @property
    def chats(self) -> ChatList:
        return self.query_one(ChatList)

    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            yield ChatsPane(self.history, id="chats")
            with Vertical(id="chat"):  # the open chat's ChatView is mounted first in here
                yield InspectorPanel(self.host, id="inspector", classes="hidden")
                yield LoadingIndicator(id="loading")
                yield ChatInput(id="input", placeholder=PLACEHOLDER, earlier=self._earlier, scroll=self._scroll_chat)
            yield ParameterPanel(id="parameters", classes="hidden")
        yield StatusBar(id="status").data_bind(*StatusFields.bound())  # the model's fields and the open chat's
        yield KeysFooter()

    def _earlier(self) -> Iterator[str]:
        """The message box's Up, newest first: what was typed in this andon (slash commands too, as
        `ollama run` and shells recall them), then what was sent in the open chat, then in the others."""
        return itertools.chain(reversed(self.typed), earlier_messages(self.history, self.view.session.chat.id))

    def _scroll_chat(self, method: str) -> None:
        """The message box's PgUp/PgDn, Ctrl+Home/End: the conversation's `method` (scroll_page_up...)."""
        getattr(self.view, method)(animate=False)

    @guarded
    async def on_mount(self) -> None:
        try:
            recovered = self.history.recover_interrupted()
            await self.open_chat(self._first_chat())
        except HistoryError as exc:
            self.app.exit(return_code=2, message=f"andon: {exc}")
            return
        if recovered:
            self.view.say(f"{recovered} reply interrupted last time was kept and marked stopped.")
        input_ready = getattr(self.app, "input_ready", None)
        if input_ready is not None:
            input_ready()
        self.models.start_loading(self.view.session)  # the open chat's model

    # --- the model (the controller's) ----------------------------------------------------------

    def _model_note(self, note: str) -> None:
        self.model_note = note

    def _model_ended(self, name: str | None) -> None:
        """A load ended: the indicator goes; the status bar names the model if this one loaded."""
        self.query_one("#loading").display = False
        if name is not None:
            self.model_name = name

    @work(group="dialog", exit_on_error=False)
    @guarded
    async def action_pick_model(self) -> None:
        """Ctrl+O (and `/model` alone): the picker, then the switch."""
        await self.models.pick_model()

    @guarded
    async def on_model_wanted(self, message: ModelWanted) -> None:
        """`/model NAME` and `/load MODEL` switch the chat's model; `/model` alone opens the picker."""
        if message.name:
            await self.models.switch_model(message.name, message.presets)
        else:
            self.action_pick_model()

    # --- chats --------------------------------------------------------------------------------

    def _first_chat(self) -> Chat:
        """The chat last viewed that no other andon is writing (an empty one is the new chat), else a
        new one (always new with --preset or --model)."""
        if not self.start_preset and not self.host.start_model:
            for chat in self.history.last_viewed():
                if self.history.claim_chat(chat.id):
                    return chat
        return self._new_chat()

    def _preset_of(self, chat: Chat) -> Preset | None:
        """The chat's preset as stored (its model, if it names one, is the chat's), None if it cannot be read."""
        try:
            return self.store.load(chat.preset)
        except PresetError:
            return None

    def _new_chat(self) -> Chat:
        preset = self.start_preset or DEFAULT_PRESET
        try:
            self.store.load(preset)
        except PresetError:
            preset = DEFAULT_PRESET
        return self.chats.create(preset)

    async def open_chat(self, chat: Chat) -> None:
        """Show the chat in a new view; a reply being written in the old one is stopped and saved."""
        async with self._opening:
            # its model, else its preset's, else the one in use (and the line saying why, if one is gone)
            model, gone = await self.models.model_of(chat, self._preset_of(chat))
            session = ChatSession(self.history, chat, self.store, model.defaults)
            for old in self.query(ChatView):
                await old.stop_reply()
                await old.remove()  # and it gives up its chat
            view = ChatView(session, self.host, self)  # it writes the chat's status fields here
            await self.query_one("#chat").mount(view, before=0)
        with suppress(HistoryError):  # not remembered: andon then reopens the newest chat
            self.history.mark_viewed(chat.id)
        self._chat_changed(session)
        self.models.follow_model(session, model, gone)
        self.query_one(InspectorPanel).show_for(session, draft=self._draft())
        self.query_one(ChatInput).focus()

    @on(ChatView.ChatChanged)
    @guarded
    def _view_changed(self, event: ChatView.ChatChanged) -> None:
        self._chat_changed(event.session)

    def _chat_changed(self, session: ChatSession) -> None:
        self.chats.reload(session.chat.id)
        self.models.follow_preset(session)  # a preset switched to may bring its model
        self.models.check_context(session)  # num_ctx past the model's trained context: said once
        self.query_one(ParameterPanel).show(session)

    @on(ChatList.Chosen)
    @guarded
    async def _chat_chosen(self, event: ChatList.Chosen) -> None:
        if event.chat.id != self.view.session.chat.id:
            await self.open_chat(event.chat)
        if self.chats.search.strip():  # a search result: at the message found
            await self.view.show_match(self.chats.search)
        self._end_search()

    @guarded
    async def action_new_chat(self) -> None:
        """A new chat, unless the open one is still empty: then it is the new chat."""
        if not self.view.messages() and not self.view.replying:
            self.notify("This chat is still empty: type your message below.", title="New chat")
            self.query_one(ChatInput).focus()
            return
        await self.open_chat(self._new_chat())

    @work(group="dialog", exit_on_error=False)
    @guarded
    async def action_rename_chat(self) -> None:
        await self.chats.rename(self.view.session.chat)

    @work(group="dialog", exit_on_error=False)
    @guarded
    async def action_delete_chat(self) -> None:
        view = self.view
        if await self.chats.confirm_delete(view.session.chat):
            deleted, following = await self.chats.delete(view.session.chat)  # not deleted: it said why
            if deleted:  # a reply still being written in it stops as the next chat opens
                await self.open_chat(following or self._new_chat())

    @guarded
    def action_export_chat(self) -> None:
        self.chats.export(self.view.session.chat)

    @guarded
    def action_toggle_chat_list(self) -> None:
        """Ctrl+B: hide or show the chat list (hidden at first on a narrow terminal)."""
        pane = self.query_one(ChatsPane)
        shown, self._list_for_search = pane.display, False
        self.set_class(shown, "chats-hidden")
        self.set_class(not shown, "chats-shown")
        if shown and self.focused is not None and pane in self.focused.ancestors:
            self.query_one(ChatInput).focus()

    @guarded
    def action_search_chats(self) -> None:
        """Ctrl+F: the chat list's search box (the list is shown if it was hidden)."""
        if not self.query_one(ChatsPane).display:
            self.action_toggle_chat_list()
            self._list_for_search = True
        self.call_after_refresh(self.query_one(ChatsPane).focus_search)

    def _end_search(self) -> None:
        """A search that showed the hidden chat list hides it again when it is done."""
        if self._list_for_search:
            self.action_toggle_chat_list()
        self.query_one(ChatInput).focus()

    @guarded
    async def action_help(self) -> None:
        """F1: the keys and the slash commands, in the conversation (as /help)."""
        await self.view.run_command("/help")

    @on(ChatSearch.Done)
    @guarded
    def _search_done(self) -> None:
        self._end_search()

    # --- presets and panels -------------------------------------------------------------------

    def preset_names(self) -> list[str]:
        return self.store.names()

    def switch_preset(self, name: str) -> None:
        self.view.switch_preset(name)

    def preset_summary(self, name: str) -> str:
        """A preset's line in F3's list and the palette: the model it brings (a Modelfile's FROM), what it is for."""
        try:
            preset = self.store.load(name)
        except PresetError:
            return ""
        summary = preset_summary(preset.description)
        return f"model {preset.model} · {summary}" if preset.model else summary

    @guarded
    def action_next_preset(self) -> None:
        self.view.next_preset()

    @work(group="dialog", exit_on_error=False)
    @guarded
    async def action_pick_preset(self) -> None:
        view = self.view
        names = self.store.names()
        summaries = {n: self.preset_summary(n) for n in names}
        name = await self.app.push_screen_wait(PresetPicker(names, view.session.preset.name, summaries))
        if name:
            view.switch_preset(name)

    @guarded
    def action_toggle_parameters(self) -> None:
        """F4: open the panel and focus it; focus it if open elsewhere; close it from inside it."""
        panel = self.query_one(ParameterPanel)
        inside = self.focused is not None and panel in self.focused.ancestors
        if not panel.has_class("hidden") and inside:
            panel.add_class("hidden")
            self.remove_class("parameters-open")
            self.query_one(ChatInput).focus()
            return
        self._open_parameters(panel.focus_first)

    @guarded
    def action_edit_chain_order(self) -> None:
        """The parameter panel, on the chain's order (from the palette: it is far down the panel)."""
        self.edit_parameter("samplers")

    @guarded
    def action_sweep(self) -> None:
        """The palette's "Sweep parameters…": the sweep dialog, its prompt the message box's text."""
        from andon.app.tui.screens.sweep import SweepScreen

        self.app.push_screen(SweepScreen(self.host, self.view.session, self._draft()))

    def edit_parameter(self, name: str) -> None:
        """The parameter panel, on one parameter's field (the palette's "Parameter: NAME")."""
        self._open_parameters(partial(self.query_one(ParameterPanel).focus_field, name))

    def _open_parameters(self, then: Callable[[], None]) -> None:
        panel = self.query_one(ParameterPanel)
        panel.remove_class("hidden")
        self.add_class("parameters-open")  # on a narrow terminal the chat list makes room
        panel.show(self.view.session)
        then()  # now: the keys typed next go there (a row mounted by show() is focused after the refresh)
        self.call_after_refresh(then)

    @guarded
    def action_toggle_inspector(self) -> None:
        """F5: the inspector, its list focused (the arrows move in it); closed, the message box."""
        panel = self.query_one(InspectorPanel)
        panel.toggle_class("hidden")
        panel.show_for(self.view.session, draft=self._draft())
        if panel.has_class("hidden"):
            self.query_one(ChatInput).focus()
        else:
            self.call_after_refresh(panel.focus_list)

    @guarded
    def action_inspect_input(self) -> None:
        """F6: the inspector (opened if closed) on the reply to the text in the input box."""
        panel = self.query_one(InspectorPanel)
        panel.remove_class("hidden")
        panel.show_for(self.view.session, draft=self._draft())

    def _draft(self) -> str:
        return self.query_one(ChatInput).text

    def catch_typing(self, key: events.Key) -> None:
        """A key about to go where it does nothing goes to the message box instead: any key with
        nothing focused, a character with the conversation or the inspector focused (a click or
        Tab focuses them; they scroll with the arrows)."""
        focused = self.focused
        reading = focused is not None and (
            isinstance(focused, ChatView) or self.query_one(InspectorPanel) in focused.ancestors
        )
        if focused is None or (key.is_printable and reading):
            self.set_focus(self.query_one(ChatInput))  # now, not after a refresh: the key comes next

    @on(ParameterPanel.Edited)
    @guarded
    def _parameter_edited(self, event: ParameterPanel.Edited) -> None:
        self.view.set_parameter(event.name, event.text)

    @on(ParameterPanel.SystemEdited)
    @guarded
    def _system_edited(self, event: ParameterPanel.SystemEdited) -> None:
        """The panel's system prompt, applied as `/set system` applies it."""
        view = self.view
        try:
            view.session.set_system(event.text)
        except HistoryError as exc:  # not saved: the panel keeps the text as typed
            self.notify(str(exc), title="Not changed", severity="error", markup=False)
        view.settings_changed()

    @on(InspectorPanel.Chosen)
    @guarded
    def _inspect_chosen(self, event: InspectorPanel.Chosen) -> None:
        self.query_one(InspectorPanel).show_for(self.view.session, event.position, self._draft())

    @on(ChatView.ReplyEnded)
    @guarded
    def _reply_ended(self, event: ChatView.ReplyEnded) -> None:
        self.query_one(InspectorPanel).show_for(event.session, draft=self._draft())

    # --- messages and replies -----------------------------------------------------------------

    @on(ChatInput.Submitted)
    @guarded
    async def _submitted(self, event: ChatInput.Submitted) -> None:
        self.typed.append(event.text)
        taken = False
        try:
            taken = await self.view.submit(event.text)
        finally:
            if not taken:  # not sent: what the user typed goes back into the box
                self.query_one(ChatInput).restore(event.text)

    @guarded
    def action_stop(self) -> None:
        self.view.stop()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Ctrl+C is a stop only while a reply is written; otherwise the key goes on (copy). A dialog's
        key does nothing while a dialog is opening or open (F3 Esc F3 typed fast opened two)."""
        if action == "stop_reply":
            views = self.query(ChatView)
            return bool(views) and views.first().replying
        if action in DIALOGS:
            return not any(w.group == "dialog" and not w.is_finished for w in self.workers)
        if action in ("previous_version", "next_version"):  # elsewhere Ctrl+Left/Right move a word
            focused = self.focused
            return (
                focused is None
                or isinstance(focused, ChatView)
                or (isinstance(focused, ChatInput) and not focused.text)
            )
        return True

    @guarded
    def action_stop_reply(self) -> None:
        self.view.stop()

    @guarded
    async def action_regenerate(self) -> None:
        if not self.view.replying:
            await self.view.regenerate()

    @guarded
    async def action_continue_reply(self) -> None:
        """Ctrl+G (and /continue): the last reply, stopped or cut, goes on in the same message."""
        await self.view.continue_reply()

    @guarded
    async def action_previous_version(self) -> None:
        await self.view.step_version(-1)

    @guarded
    async def action_next_version(self) -> None:
        await self.view.step_version(1)

    @guarded
    def action_edit_last(self) -> None:
        text = None if self.view.replying else self.view.edit_last()
        if text is not None:
            box = self.query_one(ChatInput)
            box.text = text
            box.move_cursor(box.document.end)  # typing adds to the message, as at the end of a line being edited
            box.focus()
            self.notify("Edit the message and press Enter to resend it (the replies after it are replaced).")

    @guarded
    def action_copy_reply(self) -> None:
        self._copy(self.view.last_reply(), "Reply copied", "There is no reply to copy.")

    @guarded
    def action_copy_code(self) -> None:
        self._copy(self.view.last_code(), "Code block copied", "The last reply has no code block.")

    @work(group="dialog", exit_on_error=False)
    @guarded
    async def action_copy_any(self) -> None:
        """F7: pick any message of the chat, or any code block of its replies, and copy it."""
        choices = copy_choices(self.view.session.messages)
        if not choices:
            self.notify("There is nothing in this chat to copy yet.", severity="warning")
            return
        choice = await self.app.push_screen_wait(CopyPicker(choices))
        if choice is not None:
            done = {"code": "Code block copied", "reply": "Reply copied"}.get(choice.kind, "Message copied")
            self._copy(choice.text, done, "")

    def _copy(self, text: str | None, done: str, missing: str) -> None:
        """The system clipboard where pyperclip reaches one; else the terminal's (OSC 52), said so."""
        if text is None:
            self.notify(missing, severity="warning")
            return
        import pyperclip

        try:
            pyperclip.copy(text)
        except pyperclip.PyperclipException:
            self.app.copy_to_clipboard(text)  # OSC 52: the terminal decides whether it arrives
            self.notify(f"{done} through the terminal (OSC 52): no system clipboard was reachable, so "
                        "pasting works only if the terminal allows OSC 52.", severity="warning")  # fmt: skip
            return
        self.notify(f"{done} to the system clipboard.")

    async def stop_all(self) -> None:
        """Before the app ends: the reply being written is saved as stopped."""
        for view in self.query(ChatView):
            await view.stop_reply()
