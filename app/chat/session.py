"""One chat's state, independent of the UI: preset, this chat's parameter changes, system prompt, model.

A chat on a model from Ollama's store takes that model's own defaults (its params and system layers)
under its preset, as `andon ask --model` does: the preset's values that differ from andon's
defaults win over the model's, and the chat's own changes (`/set`) over both.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from andon.app.chat.history import Chat, History, StoredMessage
from andon.app.engine.engine import Message, messages_for
from andon.app.engine.errors import ModelLoadError
from andon.app.engine.loading import check_memory
from andon.presets.commands import apply
from andon.presets.modelfile import ImportedModelfile, with_model_defaults
from andon.presets.parameters import ParameterError, Parameters
from andon.presets.preset import Preset, check_name
from andon.presets.store import DEFAULT_PRESET, PresetError, PresetStore


class ChatSession:
    def __init__(
        self, history: History, chat: Chat, store: PresetStore, model_defaults: ImportedModelfile | None = None
    ) -> None:
        self.history = history
        self.chat = chat
        self.store = store
        self.model_defaults = model_defaults  # the chat's model's own defaults (an Ollama model's layers)
        self.model_ref = chat.model  # the model it replies with (the one in use where its own is gone)
        self.model_path: Path | None = None  # that model's file, once the UI resolved it
        self._switched: Preset | None = None  # the preset just switched to, until the UI takes it
        self.warning: str | None = None
        try:
            self.preset = self._preset(chat.preset)
        except PresetError as exc:
            self.warning = f"{exc}; using {DEFAULT_PRESET!r} instead"
            self.preset = self._preset(DEFAULT_PRESET)
        try:
            self.params = apply(self.preset.parameters, chat.parameters)
        except ValueError as exc:
            self.warning = f"this chat's saved parameters were not valid ({exc}); using the preset's"
            self.params = self.preset.parameters
            chat.parameters = {}
        self.messages: list[StoredMessage] = history.messages(chat.id)
        self.synced = 0  # how many times the messages were read again and differed (the view then redraws them)

    # --- settings -----------------------------------------------------------------------------

    @property
    def system(self) -> str:
        return self.preset.system if self.chat.system is None else self.chat.system

    @property
    def changes(self) -> dict[str, Any]:
        """This chat's parameters that differ from its preset's."""
        return self.params.changed(self.preset.parameters)

    # Each change is validated and saved before this session takes it: a refused value
    # (ParameterError) or a history that cannot be written (HistoryError) changes nothing.

    def set_parameters(self, values: dict[str, Any]) -> Parameters:
        params = apply(self.params, values)
        if params.num_ctx != self.params.num_ctx:
            self._check_context(params.num_ctx)
        self._save_settings(self.preset, params, self.chat.system)
        return self.params

    def _check_context(self, num_ctx: int) -> None:
        """ParameterError for a num_ctx whose KV cache cannot fit in memory with the chat's model (the
        load's own check, said when the value is set rather than at the next message)."""
        if self.model_path is None:
            return
        try:
            check_memory(self.model_path, num_ctx)
        except ModelLoadError as exc:  # named as the chat names its model (an Ollama blob's file name says nothing)
            named = self.model_ref if self.model_ref and "/" not in self.model_ref else self.model_path.name
            raise ParameterError(str(exc).replace(self.model_path.name, named)) from None
        except OSError:
            return  # the model's file cannot be read: its load says so

    def reset_parameter(self, name: str) -> None:
        self._save_settings(
            self.preset, apply(self.params, {name: getattr(self.preset.parameters, name)}), self.chat.system
        )

    def set_system(self, text: str) -> None:
        self._save_settings(self.preset, self.params, text)

    def switch_preset(self, name: str, keep_changes: bool = True) -> Preset:
        """Use another preset from the next reply; keep this chat's changes unless told not to."""
        preset = self._preset(name)
        changes = self.changes if keep_changes else {}
        self._save_settings(preset, apply(preset.parameters, changes), self.chat.system if keep_changes else None)
        self._switched = preset
        return preset

    def take_switched_preset(self) -> Preset | None:
        """The preset a switch has just chosen, once (the UI then follows it to its model), else None."""
        preset, self._switched = self._switched, None
        return preset

    def params_on(self, model_defaults: ImportedModelfile | None) -> Parameters:
        """This chat's parameters on a model with these defaults (what it would load with), unsaved."""
        return apply(with_model_defaults(self.store.load(self.preset.name), model_defaults).parameters, self.changes)

    def use_model(self, model: str, model_defaults: ImportedModelfile | None) -> None:
        """Remember the chat's model (a name from `andon models` or a path) and take its defaults;
        this chat's own changes stay. HistoryError if it cannot be saved: nothing changes then."""
        preset = with_model_defaults(self.store.load(self.preset.name), model_defaults)
        params = apply(preset.parameters, self.changes)
        self._save_settings(preset, params, self.chat.system, model)
        self.model_defaults, self.model_ref = model_defaults, model

    def _preset(self, name: str) -> Preset:
        """The preset over the chat's model's own defaults."""
        return with_model_defaults(self.store.load(name), self.model_defaults)

    def save_as_preset(self, name: str) -> Preset:
        """The current settings as a user preset; PresetError (one line) for a bad name or a failed write."""
        check_name(name)
        preset = self.preset.model_copy(
            update={"name": name, "parameters": self.params, "system": self.system,
                    "description": f"Saved from a chat, based on {self.preset.name!r}."}
        )  # fmt: skip
        self.store.save(preset)
        return preset

    def _save_settings(self, preset: Preset, params: Parameters, system: str | None, model: str | None = None) -> None:
        chat = replace(
            self.chat,
            model=self.chat.model if model is None else model,
            preset=preset.name,
            system=system,
            parameters=params.to_plain(sorted(params.changed(preset.parameters))),
        )
        self.history.update_chat(chat)
        vars(self.chat).update(vars(chat))  # the same Chat object: widgets may hold it
        self.preset, self.params = preset, params

    # --- messages -----------------------------------------------------------------------------

    def engine_messages(self, prefill: StoredMessage | None = None) -> list[Message]:
        """The prompt's messages: the reply being written is not part of it (a stopped one is, as far
        as it got), except a reply being continued (`prefill`): the prompt ends inside it."""
        history = [
            m
            for m in self.messages
            if m.role in ("user", "assistant") and (m.status != "streaming" or (m is prefill and m.content.strip()))
        ]
        said = [{"role": m.role, "content": m.content} for m in history]
        return messages_for(self.system, [*self.preset.example_messages(), *said])  # type: ignore[list-item]

    def stored_messages(self) -> list[StoredMessage]:
        """The chat's messages as stored now: another andon may have written the chat since this
        session read it. A message this session holds unchanged keeps its object (widgets show it),
        and so does a reply of its own that ended here but whose last save the history refused."""
        held = {m.id: m for m in self.messages}
        return [
            held[m.id] if m.id in held and (held[m.id] == m or _unsaved_end(held[m.id], m)) else m
            for m in self.history.messages(self.chat.id)
        ]

    def sync(self) -> bool:
        """Read the chat's stored messages again (HistoryError if they cannot be read: nothing changes);
        True when they differ from the ones this session held."""
        return self._take(self.stored_messages())

    def _take(self, messages: list[StoredMessage]) -> bool:
        same = len(messages) == len(self.messages) and all(a is b for a, b in zip(messages, self.messages, strict=True))
        changed = not same
        self.messages = messages
        self.synced += changed
        return changed

    def add_user(self, text: str) -> StoredMessage:
        """Store the user's message after the chat's messages as stored now, which the reply then
        answers (HistoryError if it cannot be stored: the caller keeps the text, nothing changes)."""
        stored = self.stored_messages()
        first = not any(m.role == "user" for m in stored) and self.chat.title.startswith("New chat")
        title = _title_from(text) if first else None
        message = self.history.add_message(self.chat.id, "user", text, title=title)
        self._take(stored)
        self.messages.append(message)
        if title is not None:
            self.chat.title = title
        return message

    def start_reply(self) -> StoredMessage:
        message = self.history.add_message(self.chat.id, "assistant", "", status="streaming")
        self.messages.append(message)
        return message

    def reply_to_regenerate(self) -> StoredMessage | None:
        """The chat's last stored message if it is a reply (read now, as a send reads it), else None."""
        self.sync()
        last = self.messages[-1] if self.messages else None
        return last if last is not None and last.role == "assistant" else None

    def new_version(self, reply: StoredMessage) -> None:
        """Regenerate: the reply's text so far is kept as one of its versions and the reply is
        empty, being written again (HistoryError: nothing changed)."""
        vars(reply).update(vars(self.history.new_version(reply.id)))  # the same object: its box holds it

    def show_version(self, reply: StoredMessage, number: int) -> None:
        """Show the reply's version `number`: the conversation goes on from it."""
        vars(reply).update(vars(self.history.show_version(reply.id, number)))

    def continue_reply(self, reply: StoredMessage) -> None:
        """Take up a stopped or cut reply again: it is being written, its text kept (HistoryError:
        nothing changed)."""
        self.history.reopen_reply(reply.id)
        reply.status = "streaming"

    def truncate_from(self, message: StoredMessage) -> None:
        """Forget a message and all after it (regenerate, edit and resend)."""
        self.history.delete_messages_from(self.chat.id, message.id)
        self.messages = [m for m in self.messages if m.id < message.id]

    def clear(self, copy_title: str) -> tuple[Chat | None, int]:
        """Move the chat's stored messages into a new chat (see History.clear_chat): the copy and
        how many messages it holds, (None, 0) when there were none."""
        copy, count = self.history.clear_chat(self.chat.id, copy_title)
        self._take([])
        return copy, count

    def last(self, role: str) -> StoredMessage | None:
        return next((m for m in reversed(self.messages) if m.role == role), None)


def _unsaved_end(held: StoredMessage, stored: StoredMessage) -> bool:
    """A reply this session saw end (stopped, failed) that is still "streaming" in the history: the
    save of its end was refused (a busy history), so this session's copy is the newer one."""
    return stored.status == "streaming" and held.status != "streaming" and held.role == stored.role


def typed_message(text: str) -> tuple[str, bool]:
    """What the message box's text sends, and whether it is complete: Ollama's multi-line input
    (a text that opens with three double quotes) goes on, line after line, until it ends with them."""
    quoted = text.strip()
    if not quoted.startswith('"""'):
        return text, True
    if len(quoted) < 6 or not quoted.endswith('"""'):
        return quoted[3:], False
    return quoted[3:-3].strip("\n"), True


TITLE_MAX = 200  # a title, not the message: far past any width the chat list has


def _title_from(text: str) -> str:
    """A chat's title from its first message, on one line and not cut short: the chat list cuts it
    where its width ends, with an ellipsis."""
    line = " ".join(text.split())
    return line[:TITLE_MAX] + ("…" if len(line) > TITLE_MAX else "") or "New chat"
