"""The app's widgets. Attributes down, messages up: widgets post messages, the app wires them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from andon.app.history import Chat, StoredMessage
from andon.app.inspector import show_token
from andon.presets.commands import format_value
from andon.presets.parameters import ALL_SPECS, ParameterError, Parameters, describe
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Label, ListItem, ListView, Markdown, OptionList, Static, TextArea
from textual.widgets.option_list import Option

CODE_BLOCK = re.compile(r"```[^\n]*\n(.*?)```", re.DOTALL)


def last_code_block(text: str) -> str | None:
    blocks = CODE_BLOCK.findall(text)
    return blocks[-1] if blocks else None


class ChatInput(TextArea):
    """The message box: Enter sends, Ctrl+J (or Shift+Enter where the terminal tells it) adds a line."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+j,shift+enter", "newline", "New line", show=False, id="input.newline"),
    ]

    @dataclass
    class Submitted(Message):
        text: str

    def on_key(self, event: events.Key) -> None:
        # Enter is handled here, in the box's own queue, so it always comes after the keys typed
        # before it (an app-level priority binding would run ahead of them and split the text).
        if event.key == "enter":
            event.prevent_default()
            event.stop()
            self.action_submit()

    def action_submit(self) -> None:
        text = self.text
        if text.strip():
            self.post_message(self.Submitted(text))
            self.clear()

    def action_newline(self) -> None:
        self.insert("\n")


class MessageBox(Vertical):
    """One message: a header (who, and whether it was stopped) and its Markdown."""

    def __init__(self, message: StoredMessage) -> None:
        super().__init__(classes=f"message {message.role}")
        self.message = message
        self.body = Markdown(message.content or "")

    def compose(self) -> ComposeResult:
        yield Label(self.header_text(), classes="message-header")
        yield self.body

    def header_text(self) -> str:
        who = {"user": "You", "assistant": "Assistant", "system": "System"}.get(self.message.role, self.message.role)
        note = {"stopped": " · stopped", "error": " · error", "streaming": " · …"}.get(self.message.status, "")
        stats = self.message.stats
        if stats.get("tokens_per_second"):
            note += f" · {stats['completion_tokens']} tokens, {stats['tokens_per_second']:.1f} tok/s"
        return who + note

    def refresh_header(self) -> None:
        self.query_one(".message-header", Label).update(self.header_text())


class Notice(Static):
    """A line from andon itself in the conversation (command output, errors)."""

    def __init__(self, text: str, error: bool = False) -> None:
        super().__init__(text, classes="notice error" if error else "notice", markup=False)


class Conversation(VerticalScroll):
    pass


class ChatItem(ListItem):
    def __init__(self, chat: Chat) -> None:
        super().__init__(Label(chat.title, markup=False))
        self.chat = chat


class ChatList(ListView):
    @dataclass
    class Chosen(Message):
        chat: Chat

    @on(ListView.Selected)
    def _chosen(self, event: ListView.Selected) -> None:
        event.stop()
        if isinstance(event.item, ChatItem):
            self.post_message(self.Chosen(event.item.chat))


class StatusBar(Static):
    """model │ preset │ tokens per second │ context used of num_ctx"""

    def show(self, *, model: str, preset: str, tps: float | None, used: int, num_ctx: int, note: str = "") -> None:
        rate = f"{tps:.1f} tok/s" if tps else "– tok/s"
        parts = [model, f"preset: {preset}", rate, f"context {used}/{num_ctx}"]
        if note:
            parts.append(note)
        self.update(" │ ".join(parts))


class ParamRow(Horizontal):
    def __init__(self, name: str, value: str, changed: bool) -> None:
        super().__init__(classes="param-row changed" if changed else "param-row")
        self.param = name
        self.value = value
        self.changed = changed

    def compose(self) -> ComposeResult:
        mark = "*" if self.changed else " "
        yield Label(f"{mark} {self.param}", classes="param-name")
        field = Input(self.value, id=f"param-{self.param}", classes="param-value", compact=True)
        field.tooltip = describe(self.param)
        yield field


class ParameterPanel(VerticalScroll):
    """Effective values (preset plus this chat's changes); * marks a change. Enter applies."""

    @dataclass
    class Edited(Message):
        name: str
        text: str

    def show(self, params: Parameters, preset: Parameters) -> None:
        plain, base = params.to_plain(), preset.to_plain()
        self.remove_children()
        self.mount(Label("Parameters (Enter applies; * differs from preset)", classes="panel-title"))
        self.mount_all(ParamRow(n, _text(plain[n]), plain[n] != base[n]) for n in ALL_SPECS)

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        name = (event.input.id or "").removeprefix("param-")
        self.post_message(self.Edited(name, event.value))


def parse_field(name: str, text: str):
    """The value typed into a parameter field, with the CLI's validation and messages."""
    spec = ALL_SPECS.get(name)
    if spec is None:
        raise ParameterError(f"{name}: unknown parameter")
    return spec.parse(text)


def _text(value) -> str:
    if isinstance(value, list):
        import json

        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        import json

        return json.dumps(value, ensure_ascii=False)
    return format_value(value)


class InspectorPanel(Vertical):
    """The next-token view: choose "next token" or a token of the last reply; the table follows."""

    @dataclass
    class Chosen(Message):
        position: int | None  # None: the next token of the chat; else the index in the reply

    def compose(self) -> ComposeResult:
        yield Label("Inspector: next-token candidates through the chain", classes="panel-title")
        yield OptionList(id="inspector-tokens")
        yield VerticalScroll(Static("", id="inspector-table", markup=False), id="inspector-scroll")

    def set_tokens(self, pieces: list[str]) -> None:
        options = self.query_one(OptionList)
        options.clear_options()
        options.add_option(Option("next token of this chat", id="next"))
        for i, piece in enumerate(pieces):
            options.add_option(Option(f"reply token {i}: {show_token(piece)}", id=f"t{i}"))
        options.highlighted = 0

    def show_text(self, text: str) -> None:
        self.query_one("#inspector-table", Static).update(text)

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        option = event.option.id or "next"
        self.post_message(self.Chosen(None if option == "next" else int(option[1:])))
