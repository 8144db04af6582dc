"""One chat's state, independent of the UI: preset, this chat's parameter changes, system prompt."""

from __future__ import annotations

from typing import Any

from andon.app.engine import Message
from andon.app.history import Chat, History, StoredMessage
from andon.presets.commands import apply
from andon.presets.parameters import Parameters
from andon.presets.preset import Preset
from andon.presets.store import DEFAULT_PRESET, PresetError, PresetStore


class ChatSession:
    def __init__(self, history: History, chat: Chat, store: PresetStore) -> None:
        self.history = history
        self.chat = chat
        self.store = store
        self.warning: str | None = None
        try:
            self.preset = store.load(chat.preset)
        except PresetError as exc:
            self.warning = f"{exc}; using {DEFAULT_PRESET!r} instead"
            self.preset = store.load(DEFAULT_PRESET)
        try:
            self.params = apply(self.preset.parameters, chat.parameters)
        except ValueError as exc:
            self.warning = f"this chat's saved parameters were not valid ({exc}); using the preset's"
            self.params = self.preset.parameters
            chat.parameters = {}
        self.messages: list[StoredMessage] = history.messages(chat.id)

    # --- settings -----------------------------------------------------------------------------

    @property
    def system(self) -> str:
        return self.preset.system if self.chat.system is None else self.chat.system

    @property
    def changes(self) -> dict[str, Any]:
        """This chat's parameters that differ from its preset's."""
        return self.params.changed(self.preset.parameters)

    def set_parameters(self, values: dict[str, Any]) -> Parameters:
        """Validate first; on a refusal nothing changes (ParameterError says why)."""
        self.params = apply(self.params, values)
        self._save_settings()
        return self.params

    def reset_parameter(self, name: str) -> None:
        self.params = apply(self.params, {name: getattr(self.preset.parameters, name)})
        self._save_settings()

    def set_system(self, text: str) -> None:
        self.chat.system = text
        self._save_settings()

    def switch_preset(self, name: str, keep_changes: bool = True) -> Preset:
        """Use another preset from the next reply; keep this chat's changes unless told not to."""
        preset = self.store.load(name)
        changes = self.changes if keep_changes else {}
        self.preset = preset
        self.chat.preset = preset.name
        if not keep_changes:
            self.chat.system = None
        self.params = apply(preset.parameters, changes)
        self._save_settings()
        return preset

    def save_as_preset(self, name: str) -> Preset:
        preset = self.preset.model_copy(
            update={"name": name, "parameters": self.params, "system": self.system,
                    "description": f"Saved from a chat, based on {self.preset.name!r}."}
        )  # fmt: skip
        Preset.model_validate(preset.model_dump())  # the name and fields are valid before writing
        self.store.save(preset)
        return preset

    def _save_settings(self) -> None:
        self.chat.parameters = self.params.to_plain(sorted(self.changes))
        self.history.update_chat(self.chat)

    # --- messages -----------------------------------------------------------------------------

    def engine_messages(self) -> list[Message]:
        out: list[Message] = []
        if self.system:
            out.append({"role": "system", "content": self.system})
        for m in self.messages:
            # the reply being written is not part of the prompt; a stopped one is, as far as it got
            if m.role in ("user", "assistant") and m.status != "streaming":
                out.append({"role": m.role, "content": m.content})  # type: ignore[typeddict-item]
        return out

    def add_user(self, text: str) -> StoredMessage:
        message = self.history.add_message(self.chat.id, "user", text)
        self.messages.append(message)
        if len([m for m in self.messages if m.role == "user"]) == 1 and self.chat.title.startswith("New chat"):
            self.chat.title = _title_from(text)
            self.history.update_chat(self.chat)
        return message

    def start_reply(self) -> StoredMessage:
        message = self.history.add_message(self.chat.id, "assistant", "", status="streaming")
        self.messages.append(message)
        return message

    def truncate_from(self, message: StoredMessage) -> None:
        """Forget a message and all after it (regenerate, edit and resend)."""
        self.history.delete_messages_from(self.chat.id, message.id)
        self.messages = [m for m in self.messages if m.id < message.id]

    def clear(self) -> None:
        self.history.clear_messages(self.chat.id)
        self.messages = []

    def last(self, role: str) -> StoredMessage | None:
        return next((m for m in reversed(self.messages) if m.role == role), None)


def _title_from(text: str) -> str:
    line = " ".join(text.split())
    return line[:40] + ("…" if len(line) > 40 else "") or "New chat"
