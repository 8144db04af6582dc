"""Side panels: the parameter panel (F4) and the next-token inspector (F5)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, cast

from andon.app.chat import ChatSession
from andon.app.engine import Engine
from andon.app.inspector import show_token
from andon.app.tui.engine_host import EngineHost
from andon.app.tui.failures import guarded
from andon.presets.commands import format_value
from andon.presets.parameters import ALL_SPECS, ParameterError, Parameters, describe
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option


def parse_field(name: str, text: str) -> Any:
    """The value typed into a parameter field, with the CLI's validation and messages."""
    spec = ALL_SPECS.get(name)
    if spec is None:
        raise ParameterError(f"{name}: unknown parameter")
    return spec.parse(text)


def field_text(value: Any) -> str:
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return format_value(value)


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
        """Show these values, if the panel is open."""
        if self.has_class("hidden"):
            return
        plain, base = params.to_plain(), preset.to_plain()
        self.remove_children()
        self.mount(Label("Parameters (Enter applies; * differs from preset)", classes="panel-title"))
        self.mount_all(ParamRow(n, field_text(plain[n]), plain[n] != base[n]) for n in ALL_SPECS)

    @on(Input.Submitted)
    @guarded
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        name = (event.input.id or "").removeprefix("param-")
        self.post_message(self.Edited(name, event.value))


class InspectorPanel(Vertical):
    """The next-token view: choose "next token" or a token of the last reply; the table follows."""

    @dataclass
    class Chosen(Message):
        position: int | None  # None: the next token of the chat; else the index in the reply

    def __init__(self, host: EngineHost, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.host = host

    def compose(self) -> ComposeResult:
        yield Label("Inspector: next-token candidates through the chain", classes="panel-title")
        yield OptionList(id="inspector-tokens")
        yield VerticalScroll(Static("", id="inspector-table", markup=False), id="inspector-scroll")

    def show_for(self, session: ChatSession, position: int | None = None) -> None:
        """Inspect the chat's next token, or a token of its last reply; nothing while hidden."""
        if self.has_class("hidden"):
            return
        reply = session.last("assistant")
        tokens: list[int] = reply.stats.get("tokens", []) if reply else []
        engine = self.host.engine
        if position is None:
            self.set_tokens([engine.token_text(t) for t in tokens] if engine is not None else [])
        if reply is not None and reply.status == "streaming":
            self.show_text("The inspector updates when the reply ends.")
            return
        self.show_text("computing…")
        self._inspect(session, tokens, position)

    @work(thread=True, exclusive=True, group="inspect", exit_on_error=False)
    @guarded
    def _inspect(self, session: ChatSession, tokens: list[int], position: int | None) -> None:
        from andon.app.inspector import inspect_chat

        if not self.host.loaded.wait(60) or self.host.engine is None:
            self.app.call_from_thread(self.show_text, "The model is not loaded.")
            return
        try:
            with self.host.lock:
                engine = cast(Engine, self.host.engine)  # inspect_chat is typed for the engine class
                text = inspect_chat(engine, session.engine_messages(), tokens, session.params, position)
        except Exception as exc:  # shown in the panel, never a traceback
            text = f"error: {type(exc).__name__}: {exc}"
        self.app.call_from_thread(self.show_text, text)

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
    @guarded
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        option = event.option.id or "next"
        self.post_message(self.Chosen(None if option == "next" else int(option[1:])))
