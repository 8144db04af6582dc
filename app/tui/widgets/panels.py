"""Side panels: the parameter panel (F4) and the next-token inspector (F5)."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from andon.app.chat.session import ChatSession
from andon.app.engine.engine import Message as ChatMessage
from andon.app.study.inspector import show_token
from andon.app.tui.engine_host import EngineHost
from andon.app.tui.failures import guarded
from andon.app.tui.keys import PANEL, keys_of
from andon.app.tui.widgets.parameter_editors import BlockEditor, StageOrder, items_text, items_value
from andon.presets.commands import format_value
from andon.presets.parameters import ALL_SPECS, MODEL_NAMES, SAMPLING_NAMES, ParameterError, Parameters, describe
from andon.samplers.registry import BY_NAME, CHAIN_PARAMETERS, FIRST, REPLACING, SAMPLER_NAMES
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widget import Widget
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


LEFT_OUT = "not in the chain now"
CHAIN_OWN = "chain: other settings"  # the chain's own parameters, and those of the stage that runs first
CHAIN_ORDER = "samplers"  # the chain's order: first among them
REPLACING_TITLE = f"{REPLACING.name} (replaces the chain's end when on)"
GENERATION = "generation"  # the system prompt's group comes before this one
MODEL = "model (reloads it)"  # the parameters that reload the model (presets' MODEL_NAMES)
# The parameters that are no sampler's, in the presets' tables' order: a group starts at each of
# these names and holds those after it, up to the next (the model's are one group of their own).
STARTS = {"num_predict": GENERATION, "format": "output", "draft": "speculative decoding", "think": "thinking",
          "rpc": "remote (rpc)"}  # fmt: skip
MULTILINE = ("grammar",)  # text parameters edited over several lines
FILTER = "parameter-filter"  # the box at the top of the panel
FILTER_HELP = (  # four lines at 80 columns
    "Type part of a name: only those parameters show (Esc: all). ↓ or Enter goes to them; ↑↓ move between "
    "fields, Enter applies."
)


def filter_key(text: str) -> str:
    """The filter box's text as part of a parameter's name: "top p" and "top-p" find top_p."""
    return re.sub(r"[\s-]+", "_", text.strip().lower())


def group_id(key: str) -> str:
    return "group-" + re.sub(r"[^A-Za-z0-9_-]+", "-", key)


def other_groups() -> list[tuple[str, list[str]]]:
    """(title, names) of the parameters no stage of the chain reads, as the presets' tables list them."""
    groups: dict[str, list[str]] = {}
    title = GENERATION
    for name in ALL_SPECS:
        if name in SAMPLING_NAMES:
            continue
        title = STARTS.get(name, title)
        groups.setdefault(MODEL if name in MODEL_NAMES else title, []).append(name)
    return list(groups.items())


def parameter_groups(samplers: Sequence[str]) -> list[tuple[str, str, list[str]]]:
    """(key, title, names): parameters grouped as the chain runs: its stages in order, then the rest.

    The stages and what each reads come from the sampler registry, the rest from the presets'
    tables. Each name is in one group; a group's key stays the same when the chain's order changes.
    """
    chain = [(stage, f"{i}. {stage}", BY_NAME[stage].parameters) for i, stage in enumerate(samplers, 1)]
    own = [CHAIN_ORDER, *(n for n in (*FIRST.parameters, *CHAIN_PARAMETERS) if n != CHAIN_ORDER)]
    left_out = [n for stage in SAMPLER_NAMES if stage not in samplers for n in BY_NAME[stage].parameters]
    later = [(CHAIN_OWN, own), (REPLACING_TITLE, REPLACING.parameters), *other_groups(), (LEFT_OUT, left_out)]
    groups: list[tuple[str, str, list[str]]] = []
    seen: set[str] = set()
    for key, title, names in [*chain, *((title, title, names) for title, names in later)]:
        shown = [n for n in names if n in ALL_SPECS and n not in seen]
        seen.update(shown)
        if shown:
            groups.append((key, title, shown))
    return groups


SHOWN_CHANGES = 3  # more are counted: the rows say which (their names in colour)


def changes_line(preset_name: str, plain: dict[str, Any], base: dict[str, Any], system: str = "") -> str:
    """What differs from the preset, e.g. "temperature 0.7, preset has 0.8"."""
    changed = [change(n, plain[n], base[n]) for n in plain if plain[n] != base[n]]
    changed += [system] if system else []
    if not changed:
        return f"Same as preset '{preset_name}'."
    more = len(changed) - SHOWN_CHANGES
    shown = changed[:SHOWN_CHANGES] + ([f"{more} more, marked below"] if more > 0 else [])
    return f"Changed from preset '{preset_name}': " + "; ".join(shown)


def change(name: str, mine: Any, preset: Any) -> str:
    """One parameter's part of the changes line; the chain's order in words, not two long lists;
    a list or a map counted (its items are in its row, marked: whole, they pushed the line's
    end out of its four lines at 80 columns)."""
    if isinstance(mine, list | dict) and name != "samplers":
        return f"{name} {counted(mine)}, preset has {counted(preset)}"
    if name != "samplers":
        return f"{name} {field_text(mine)}, preset has {field_text(preset)}"
    dropped = [s for s in preset if s not in mine]
    added = [s for s in mine if s not in preset]
    kept = [s for s in mine if s in preset]
    parts = ["order changed"] if kept != [s for s in preset if s in mine] else []
    parts += [f"without {', '.join(dropped)}"] if dropped else []
    parts += [f"with {', '.join(added)}"] if added else []
    return "chain: " + ", ".join(parts)


def counted(value: list[Any] | dict[str, Any]) -> str:
    """A list's or a map's size in words: "none", "1 item", "3 items"."""
    return f"{len(value)} item{'' if len(value) == 1 else 's'}" if value else "none"


def system_change(mine: str, preset: str) -> str:
    """The system prompt's part of the changes line ("" when it is the preset's)."""
    if mine == preset:
        return ""
    if not mine:
        return "no system prompt, preset has one"
    return "system prompt changed, preset has none" if not preset else "system prompt changed, preset has its own"


def block_text(name: str, value: Any) -> str:
    """What a multi-line editor shows for a value: a list one item per line, or the text itself."""
    return items_text(value) if isinstance(value, list) else str(value)


SYSTEM_HELP = (
    "system: the system prompt, the chat's first message (as /set system). Several lines, applied on leaving "
    "them; empty is none."
)


def value_editor(name: str, value: Any) -> Widget:
    """The field for one parameter: a stage list, a list as lines, several lines, or one line."""
    spec = ALL_SPECS[name]
    field_id = f"param-{name}"
    if spec.kind == "sampler_list":
        return StageOrder(value, id=field_id)
    if spec.kind in ("str_list", "endpoint_list"):
        return BlockEditor(items_text(value), id=field_id, numbered=True, placeholder="(none: one per line)")
    if name in MULTILINE:
        return BlockEditor(str(value), id=field_id, placeholder="(empty)")
    return Input(field_text(value), id=field_id, classes="param-value", compact=True)


class ParamRow(Horizontal):
    """A parameter's name and its field; a field of several lines goes under the name."""

    def __init__(self, name: str, value: Any, changed: bool) -> None:
        multi = ALL_SPECS[name].kind in ("sampler_list", "str_list", "endpoint_list") or name in MULTILINE
        super().__init__(id=f"row-{name}", classes="param-row multi" if multi else "param-row")
        self.set_class(changed, "changed")
        self.param = name
        self.value = value  # the plain value shown

    def compose(self) -> ComposeResult:
        yield Label(self.param, classes="param-name")
        yield value_editor(self.param, self.value)

    def update(self, value: Any, changed: bool, reset: bool) -> None:
        """Show `value`; a row mounted but not composed yet (the panel opened again at once) composes with it."""
        self.value = value
        self.set_class(changed, "changed")
        fields = self.query(f"#param-{self.param}")
        if not fields:
            return
        field = fields.first()
        if isinstance(field, StageOrder):
            field.set_order(value)
        elif isinstance(field, BlockEditor):
            field.set_shown(block_text(self.param, value), reset=reset)
        elif isinstance(field, Input):
            field.value = field_text(value)


class SystemRow(Vertical):
    """The chat's system prompt, several lines, applied as `/set system` does."""

    def __init__(self, text: str, changed: bool) -> None:
        super().__init__(id="row-system", classes="param-row multi changed" if changed else "param-row multi")
        self.text = text

    def compose(self) -> ComposeResult:
        yield Label("system", classes="param-name")
        yield BlockEditor(self.text, id="param-system", placeholder="(no system prompt)")

    def update(self, text: str, changed: bool, reset: bool) -> None:
        """Show `text`; a row not composed yet composes with it."""
        self.text = text
        self.set_class(changed, "changed")
        for editor in self.query(BlockEditor):
            editor.set_shown(text, reset=reset)


class ParameterRows(VerticalScroll, inherit_bindings=False, can_focus=False):
    """The panel's rows, scrolled by the wheel and by the focus moving: Up and Down are the panel's
    (the field above or below), not a scroll of its own."""


class ParameterPanel(Vertical):
    """Effective values (preset plus this chat's changes), grouped as the chain runs.

    Enter applies a one-line field; a field of several lines applies when the focus leaves it; the
    chain's order applies at each move. Up and Down go from field to field (a list or a field of
    several lines is left at its first or last line); the box at the top filters the rows by name.
    Widgets stay when the order changes (moved, not rebuilt), so the focus and the scroll stay too.
    """

    BINDINGS: ClassVar[list[BindingType]] = list(PANEL)

    @dataclass
    class Edited(Message):
        name: str
        text: str  # as `/set parameter NAME` takes it

    @dataclass
    class SystemEdited(Message):
        text: str

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._chat_id: int | None = None  # the chat whose values are shown
        self._field_to_show: Widget | None = None  # a field focused while the panel had no size yet

    def compose(self) -> ComposeResult:
        yield Label(f"Parameters (↑↓ moves, {keys_of('parameters.toggle')} closes)", classes="panel-title")
        yield Static("", id="param-changes", markup=False)
        yield Static(FILTER_HELP, id="param-help", markup=False)
        yield Input(placeholder="filter: type part of a name", id=FILTER, compact=True)
        yield ParameterRows(id="param-rows")

    def show(self, session: ChatSession) -> None:
        """Show this chat's values, if the panel is open; the fields stay (and so does the focus)."""
        if self.has_class("hidden"):
            return
        params, preset = session.params, session.preset
        plain, base = params.to_plain(), preset.parameters.to_plain()
        system = system_change(session.system, preset.system)
        self.query_one("#param-changes", Static).update(changes_line(preset.name, plain, base, system))
        reset, self._chat_id = session.chat.id != self._chat_id, session.chat.id  # edits not applied stay in their chat
        self._layout(params.samplers, plain, base, session.system, bool(system), reset)

    def _layout(self, samplers: Sequence[str], plain: dict[str, Any], base: dict[str, Any],
                system: str, system_changed: bool, reset: bool) -> None:  # fmt: skip
        rows = self.query_one(ParameterRows)
        existing = {child.id: child for child in rows.children}
        wanted: list[Widget] = []
        for key, title, names in parameter_groups(samplers):
            if key == GENERATION:
                row = existing.get("row-system")
                if isinstance(row, SystemRow):
                    row.update(system, system_changed, reset)
                wanted += [self._label(existing, "prompt", "system prompt"), row or SystemRow(system, system_changed)]
            wanted.append(self._label(existing, key, title))
            for name in names:
                row = existing.get(f"row-{name}")
                if isinstance(row, ParamRow):
                    row.update(plain[name], plain[name] != base[name], reset)
                wanted.append(row or ParamRow(name, plain[name], plain[name] != base[name]))
        self._arrange(rows, wanted)
        self._filter(self.query_one(f"#{FILTER}", Input).value)

    @staticmethod
    def _label(existing: dict[str | None, Widget], key: str, title: str) -> Widget:
        label = existing.get(group_id(key))
        if isinstance(label, Label):
            label.update(title)
            return label
        return Label(title, id=group_id(key), classes="param-group", markup=False)

    @staticmethod
    def _arrange(rows: ParameterRows, wanted: list[Widget]) -> None:
        """Put `wanted` in `rows` in this order: new ones mounted, gone ones removed, others moved."""
        keep = set(map(id, wanted))
        for child in list(rows.children):
            if id(child) not in keep:
                child.remove()
        present = set(map(id, rows.children))
        new = [w for w in wanted if id(w) not in present]
        if new:
            rows.mount_all(new)
        for before, after in itertools.pairwise(wanted):
            if rows.children.index(after) != rows.children.index(before) + 1:
                rows.move_child(after, after=before)

    def focus_first(self) -> None:
        """The filter box, at once (`focus` waits a turn: keys typed right after F4 went elsewhere):
        typing there finds a parameter."""
        self.screen.set_focus(self.query_one(f"#{FILTER}", Input))

    def focus_field(self, name: str) -> None:
        """One parameter's field (`system`: the system prompt's), focused and scrolled to; the
        filter is cleared if it hides it."""
        row = self.query(f"#row-{name}")
        if row and not row.first().display:
            self.action_clear_filter()
        for field in self.query(f"#param-{name}"):
            field.focus(scroll_visible=False)
            self._field_to_show = field
            if self.region:  # else when the panel is shown (opened from the palette: after it closes)
                self._scroll_to_field()

    def _scroll_to_field(self) -> None:
        field, self._field_to_show = self._field_to_show, None
        if field is not None and field.is_attached:
            self.query_one(ParameterRows).scroll_to_widget(field, animate=False)

    @guarded
    def on_show(self) -> None:
        self.call_after_refresh(self._scroll_to_field)

    # --- the keys: Up and Down, the filter --------------------------------------------------------

    def _fields(self) -> list[Widget]:
        """The filter box and the fields shown, top to bottom."""
        shown = [f for f in self.query(".param-value") if f.parent is not None and f.parent.display]
        return [self.query_one(f"#{FILTER}", Input), *shown]

    @guarded
    def action_field(self, step: int) -> None:
        """Up or Down: the field above or below (from the first field, the filter box)."""
        fields = self._fields()
        focused = self.screen.focused
        at = fields.index(focused) if focused in fields else 0
        target = fields[max(0, min(len(fields) - 1, at + step))]
        if target is focused:
            return
        if isinstance(target, BlockEditor | StageOrder):  # entered at the edge it was entered from
            target.enter(from_below=step < 0)
        target.focus(scroll_visible=False)
        target.scroll_visible(animate=False)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Esc clears a filter; with none it goes on (the screen's Esc stops a reply)."""
        if action == "clear_filter":
            return bool(self.query_one(f"#{FILTER}", Input).value)
        return True

    @guarded
    def action_clear_filter(self) -> None:
        """Every row again; the field focused stays in view (it moves down as the rows above come back)."""
        self.query_one(f"#{FILTER}", Input).value = ""
        self._filter("")
        focused = self.screen.focused
        if focused is not None and self in focused.ancestors:
            self.call_after_refresh(focused.scroll_visible, animate=False)

    @on(Input.Changed, f"#{FILTER}")
    @guarded
    def _filter_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._filter(event.value)

    def _filter(self, text: str) -> None:
        """Only the rows whose parameter's name holds `text` (a space or "-" as "_"), and their
        groups' titles; the help line says when none does."""
        wanted = filter_key(text)
        title: Widget | None = None
        shown = 0
        for child in self.query_one(ParameterRows).children:
            if not child.has_class("param-row"):
                title = child  # a group's title: shown if a row under it is
                child.display = not wanted
                continue
            child.display = wanted in (child.id or "").removeprefix("row-")
            shown += child.display
            if child.display and title is not None:
                title.display = True
        help_line = self.query_one("#param-help", Static)
        if wanted and not shown:
            help_line.update(f"No parameter's name has '{text.strip()}'. Esc shows them all.")
        elif self.screen.focused is self.query_one(f"#{FILTER}", Input):
            help_line.update(FILTER_HELP)

    @guarded
    def on_key(self, event: events.Key) -> None:
        """A letter typed on the chain's order (a list: letters do nothing there) goes to the filter."""
        focused = self.screen.focused
        if isinstance(focused, StageOrder) and event.character and event.character.isalpha():
            event.stop()
            event.prevent_default()
            box = self.query_one(f"#{FILTER}", Input)
            box.focus()
            box.insert_text_at_cursor(event.character)

    @guarded
    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        name = (event.widget.id or "").removeprefix("param-")
        help_line = self.query_one("#param-help", Static)
        if event.widget.id == FILTER:
            self._filter(self.query_one(f"#{FILTER}", Input).value)  # its help, or that nothing matches
        elif name == "system":
            help_line.update(SYSTEM_HELP)
        elif isinstance(event.widget, StageOrder):  # the names are in the list: no need to repeat them
            help_line.update(f"{name}: {ALL_SPECS[name].description} {StageOrder.HELP}")
        elif isinstance(event.widget, BlockEditor) and name in ALL_SPECS and name not in MULTILINE:
            # how a list is written, then what it does: four lines of 37 columns hold it at 80x24
            help_line.update(f"{name}, one per line: {ALL_SPECS[name].description}")
        elif name in ALL_SPECS:
            help_line.update(f"{name}: {describe(name)}")

    @on(Input.Submitted)
    @guarded
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == FILTER:  # Enter in the filter: the first parameter shown
            self.action_field(1)
            return
        name = (event.input.id or "").removeprefix("param-")
        self.post_message(self.Edited(name, event.value))

    @on(StageOrder.Changed)
    @guarded
    def _stages_changed(self, event: StageOrder.Changed) -> None:
        event.stop()
        self.post_message(self.Edited("samplers", event.text))

    @on(BlockEditor.Committed)
    @guarded
    def _block_changed(self, event: BlockEditor.Committed) -> None:
        event.stop()
        name = (event.editor.id or "").removeprefix("param-")
        if name == "system":
            self.post_message(self.SystemEdited(event.text.strip()))
        elif name in MULTILINE:
            self.post_message(self.Edited(name, json.dumps(event.text, ensure_ascii=False)))
        else:
            self.post_message(self.Edited(name, items_value(event.text)))


class InspectorPanel(Vertical):
    """The next-token view: the reply to the message in the input box (F6), or a token of the last
    reply; the table follows. It inspects when asked, not at each key typed."""

    @dataclass
    class Chosen(Message):
        position: int | None  # None: the next token of the chat; else the index in the reply

    def __init__(self, host: EngineHost, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.host = host

    def compose(self) -> ComposeResult:
        yield Label("Inspector: next-token candidates through the chain (F6 inspects the input box)",
                    classes="panel-title")  # fmt: skip
        yield OptionList(id="inspector-tokens")
        yield VerticalScroll(Static("", id="inspector-table", markup=False), id="inspector-scroll")

    def show_for(self, session: ChatSession, position: int | None = None, draft: str = "") -> None:
        """Inspect the reply to `draft` (the input box) as the next message, or a token of the
        last reply; nothing while hidden."""
        if self.has_class("hidden"):
            return
        reply = session.last("assistant")
        tokens: list[int] = reply.stats.get("tokens", []) if reply else []
        engine = self.host.engine
        if position is None:
            self.set_tokens(engine.token_texts(tokens) if engine is not None else [])
        if reply is not None and reply.status == "streaming":
            self.show_text("The inspector updates when the reply ends.")
            return
        self.show_text("computing…")
        self._inspect(session.engine_messages(), tokens, session.params, position, draft, self._table_width())

    def _table_width(self) -> int:
        """The columns the table may take: the panel's (its scroll bar's two off); at first, its column's."""
        return max(40, (self.size.width or (self.parent.size.width if isinstance(self.parent, Widget) else 80)) - 2)

    @work(thread=True, exclusive=True, group="inspect", exit_on_error=False)
    @guarded
    def _inspect(self, messages: list[ChatMessage], tokens: list[int], params: Parameters, position: int | None,
                 draft: str, width: int) -> None:  # fmt: skip
        from andon.app.study.inspector import inspect_chat

        if not self.host.loaded.wait(60) or self.host.engine is None:
            self.app.call_from_thread(self.show_text, "The model is not loaded.")
            return
        try:
            with self.host.lock:
                text = inspect_chat(self.host.engine, messages, tokens, params, position, draft, width)
        except Exception as exc:  # shown in the panel, never a traceback
            text = f"error: {type(exc).__name__}: {exc}"
        self.app.call_from_thread(self.show_text, text)

    def set_tokens(self, pieces: list[str]) -> None:
        options = self.query_one(OptionList)
        options.clear_options()
        options.add_option(Option("next token: the reply to the input box's text (F6)", id="next"))
        for i, piece in enumerate(pieces):
            options.add_option(Option(f"reply token {i}: {show_token(piece)}", id=f"t{i}"))
        options.highlighted = 0

    def show_text(self, text: str) -> None:
        self.query_one("#inspector-table", Static).update(text)

    def focus_list(self) -> None:
        """The list of tokens focused: Up and Down choose, Enter inspects (Tab: the table, to scroll)."""
        self.query_one(OptionList).focus()

    @on(OptionList.OptionSelected)
    @guarded
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        option = event.option.id or "next"
        self.post_message(self.Chosen(None if option == "next" else int(option[1:])))
