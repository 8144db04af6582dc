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
from textual import events, on, work
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


PENALTIES = ("repeat_last_n", "repeat_penalty", "presence_penalty", "frequency_penalty")
LATER_GROUPS = (  # after the chain's stages: what is not a stage of it
    ("chain: other settings", ("samplers", "logit_bias", "min_keep", "seed")),
    ("mirostat (replaces the chain's end when on)", ("mirostat", "mirostat_tau", "mirostat_eta")),
    ("generation", ("num_predict", "stop")),
    ("model (reloads it)", ("num_ctx", "num_gpu", "num_thread", "num_batch")),
    ("output", ("format", "grammar")),
    ("speculative decoding", ("draft", "draft_max", "draft_min", "draft_p_min")),
    ("thinking", ("think",)),
    ("remote (rpc)", ("rpc",)),
)


def stage_parameters(stage: str) -> list[str]:
    """The parameters of one stage of the sampler chain (e.g. dry: dry_multiplier, dry_base ...)."""
    if stage == "penalties":
        return list(PENALTIES)
    extra = ("dynatemp_range", "dynatemp_exponent") if stage == "temperature" else ()
    return [n for n in ALL_SPECS if n == stage or n.startswith(stage + "_") or n in extra]


def parameter_groups(samplers: tuple[str, ...] | list[str]) -> list[tuple[str, list[str]]]:
    """Parameters grouped as the chain runs: its stages in order, then the rest; each name once."""
    groups: list[tuple[str, list[str]]] = []
    seen: set[str] = set()
    chain = [(f"{i}. {stage}", stage_parameters(stage)) for i, stage in enumerate(samplers, 1)]
    for title, names in [*chain, *LATER_GROUPS]:
        names = [n for n in names if n in ALL_SPECS and n not in seen]
        seen.update(names)
        if names:
            groups.append((title, names))
    rest = [n for n in ALL_SPECS if n not in seen]  # stages not in the chain
    return groups + ([("not in the chain now", rest)] if rest else [])


def changes_line(preset_name: str, plain: dict[str, Any], base: dict[str, Any]) -> str:
    """What differs from the preset, e.g. "temperature 0.7, preset has 0.8"."""
    changed = [f"{n} {field_text(plain[n])}, preset has {field_text(base[n])}" for n in plain if plain[n] != base[n]]
    if not changed:
        return f"Same as preset '{preset_name}'."
    return f"Changed from preset '{preset_name}': " + "; ".join(changed)


class ParamRow(Horizontal):
    def __init__(self, name: str, value: str, changed: bool) -> None:
        super().__init__(classes="param-row changed" if changed else "param-row")
        self.param = name
        self.value = value
        self.changed = changed

    def compose(self) -> ComposeResult:
        yield Label(self.param, classes="param-name")
        yield Input(self.value, id=f"param-{self.param}", classes="param-value", compact=True)

    def update(self, value: str, changed: bool) -> None:
        self.value, self.changed = value, changed
        self.set_class(changed, "changed")
        self.query_one(Input).value = value


class ParameterPanel(Vertical):
    """Effective values (preset plus this chat's changes), grouped as the chain runs. Enter applies."""

    @dataclass
    class Edited(Message):
        name: str
        text: str

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._order: tuple[str, ...] = ()

    def compose(self) -> ComposeResult:
        yield Label("Parameters (Tab moves, Enter applies, F4 closes)", classes="panel-title")
        yield Static("", id="param-changes", markup=False)
        yield Static("Tab to a parameter to see what it does.", id="param-help", markup=False)
        yield VerticalScroll(id="param-rows")

    def show(self, params: Parameters, preset: Parameters, preset_name: str = "") -> None:
        """Show these values, if the panel is open; the fields stay (and so does the focus)."""
        if self.has_class("hidden"):
            return
        plain, base = params.to_plain(), preset.to_plain()
        line = changes_line(preset_name or "preset", plain, base)
        self.query_one("#param-changes", Static).update(line)
        if tuple(params.samplers) != self._order or not self.query(ParamRow):
            self._order = tuple(params.samplers)
            rows = self.query_one("#param-rows", VerticalScroll)
            rows.remove_children()
            for title, names in parameter_groups(params.samplers):
                rows.mount(Label(title, classes="param-group"))
                rows.mount_all(ParamRow(n, field_text(plain[n]), plain[n] != base[n]) for n in names)
            return
        for row in self.query(ParamRow):
            row.update(field_text(plain[row.param]), plain[row.param] != base[row.param])

    def focus_first(self) -> None:
        fields = self.query(Input)
        if fields:
            fields.first().focus()

    @guarded
    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        name = (event.widget.id or "").removeprefix("param-")
        if name in ALL_SPECS:
            self.query_one("#param-help", Static).update(f"{name}: {describe(name)}")

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
