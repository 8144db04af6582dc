"""Editors of the parameter panel for values that are not one word: the chain's order, lists of
text (one item per line), and multi-line text (the system prompt, a grammar).

Each editor gives back text for the one parser every surface uses (`ParamSpec.parse`, as
`/set parameter` takes it): the chain's order as sampler names separated by commas, a list as a
JSON list of strings.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from andon.app.tui.failures import guarded
from andon.samplers.registry import SAMPLER_NAMES
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import OptionList, TextArea
from textual.widgets.option_list import Option

# --- a list of text as lines ------------------------------------------------------------------

_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_UNESCAPES = {"\\": "\\", "n": "\n", "t": "\t", "r": "\r"}
# A control character, and a backslash only where it would read as an escape (a pattern's \b stays)
_TO_ESCAPE = re.compile(r"\\(?=[\\ntrx\x00-\x1f\x7f])|[\x00-\x1f\x7f]")
_ESCAPED = re.compile(r"\\(x[0-9a-fA-F]{2}|.)", re.DOTALL)


def escape_item(item: str) -> str:
    """One item on one line: a newline is `\\n`, a tab `\\t`, a backslash `\\\\` where it comes
    before one of n, t, r, x or a backslash (else it stays one: `re:\\bdelve\\b` reads as typed)."""
    return _TO_ESCAPE.sub(lambda m: _ESCAPES.get(m[0], f"\\x{ord(m[0]):02x}"), item)


def unescape_item(line: str) -> str:
    """The item a line stands for; an escape andon does not know (`\\q`) stays as typed."""

    def one(m: re.Match[str]) -> str:
        code = m[1]
        if code.startswith("x") and len(code) == 3:
            return chr(int(code[1:], 16))
        return _UNESCAPES.get(code, m[0])

    return _ESCAPED.sub(one, line)


def items_text(items: Sequence[str]) -> str:
    return "\n".join(escape_item(item) for item in items)


def text_items(text: str) -> list[str]:
    """The items of an editor's text: one per line, empty lines skipped."""
    return [unescape_item(line) for line in text.split("\n") if line]


def items_value(text: str) -> str:
    """The editor's items as the parser takes a list (a JSON list of strings)."""
    return json.dumps(text_items(text), ensure_ascii=False)


# --- multi-line text, applied when the cursor leaves it ---------------------------------------


class BlockEditor(TextArea):
    """Text of several lines (a list, one item per line; a system prompt). Enter adds a line;
    leaving the editor (Tab, or Up on its first line and Down on its last) applies what changed. A
    refused value stays as typed."""

    @dataclass
    class Committed(Message):
        """The cursor left the editor with text that differs from the stored value."""

        editor: BlockEditor
        text: str

    def __init__(self, text: str, *, id: str, numbered: bool = False, placeholder: str = "") -> None:
        super().__init__(
            text,
            id=id,
            classes="param-value block-value",
            compact=True,
            soft_wrap=True,
            show_line_numbers=numbered,
            highlight_cursor_line=False,
            placeholder=placeholder,
        )
        self.shown = text  # the stored value, as last shown

    def set_shown(self, text: str, *, reset: bool = False) -> None:
        """Show a stored value; an edit not applied yet stays while the stored value is the same
        (unless `reset`: another chat's values are shown)."""
        if text == self.shown and not reset:
            return
        self.shown = text
        self.text = text

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Up on the first line and Down on the last are not the editor's: the panel's (the next field)."""
        if action in ("cursor_up", "cursor_down") and not any(parameters):  # not Shift: selecting
            first = action == "cursor_up"
            at = self.cursor_location
            return not (self.navigator.is_first_wrapped_line(at) if first else self.navigator.is_last_wrapped_line(at))
        return True

    def enter(self, *, from_below: bool) -> None:
        """The cursor at the end the focus comes from, so Up or Down goes on through the text."""
        self.move_cursor(self.document.end if from_below else (0, 0))

    @guarded
    def on_blur(self) -> None:
        if self.text != self.shown:
            self.post_message(self.Committed(self, self.text))


# --- the chain's order ------------------------------------------------------------------------


def insert_stage(order: Sequence[str], stage: str) -> list[str]:
    """The order with `stage` put back where the default order has it, among the stages kept."""
    rank = SAMPLER_NAMES.index(stage)
    later = next((i for i, s in enumerate(order) if SAMPLER_NAMES.index(s) > rank), len(order))
    return [*order[:later], stage, *order[later:]]


class StageOrder(OptionList):
    """The chain's stages in the order they run, then the stages left out. Each change applies.
    Up on the first stage and Down on the last leave the list (for the panel's next field)."""

    HELP = "Shift+↑/↓ moves a stage, Space adds or removes it; at once. ↑↓ leave the list at its ends."
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("shift+up,ctrl+up", "move(-1)", "Move up", show=False, id="stages.up"),
        Binding("shift+down,ctrl+down", "move(1)", "Move down", show=False, id="stages.down"),
        Binding("space", "toggle_stage", "Add or remove", show=False, id="stages.toggle"),
    ]

    @dataclass
    class Changed(Message):
        stages: StageOrder
        text: str  # the value as `/set parameter samplers` takes it

    def __init__(self, order: Sequence[str], *, id: str) -> None:
        super().__init__(id=id, classes="param-value stage-order", markup=False, compact=True)
        self.order = list(order)

    @guarded
    def on_mount(self) -> None:
        self._fill(self.order[0] if self.order else None)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Up on the first stage and Down on the last are not the list's: the panel's (the next field)."""
        if action == "cursor_up":
            return bool(self.highlighted)
        if action == "cursor_down":
            return self.highlighted is not None and self.highlighted < self.option_count - 1
        return True

    def enter(self, *, from_below: bool) -> None:
        """The highlight at the end the focus comes from, so Up or Down goes on through the list."""
        if self.option_count:
            self.highlighted = self.option_count - 1 if from_below else 0

    @property
    def stage(self) -> str | None:
        """The highlighted stage."""
        option = self.highlighted_option
        return option.id if option is not None else None

    def set_order(self, order: Sequence[str]) -> None:
        if list(order) != self.order:
            self.order = list(order)
            self._fill(self.stage)

    def _fill(self, keep: str | None) -> None:
        left_out = [s for s in SAMPLER_NAMES if s not in self.order]
        self.clear_options()
        self.add_options([Option(f"{i:>2}. {s}", id=s) for i, s in enumerate(self.order, 1)])
        self.add_options([Option(f"  -  {s} (left out)", id=s) for s in left_out])
        names = [*self.order, *left_out]
        self.highlighted = names.index(keep) if keep in names else 0

    def _changed(self, order: list[str], keep: str) -> None:
        self.order = order
        self._fill(keep)
        self.post_message(self.Changed(self, ", ".join(order)))

    @guarded
    def action_move(self, step: int) -> None:
        stage = self.stage
        if stage not in self.order:
            self.notify("Space puts this stage in the chain first.", severity="warning")
            return
        i = self.order.index(stage)
        j = i + step
        if 0 <= j < len(self.order):
            order = list(self.order)
            order[i], order[j] = order[j], order[i]
            self._changed(order, stage)

    @guarded
    def action_toggle_stage(self) -> None:
        stage = self.stage
        if stage is None:
            return
        if stage in self.order:
            self._changed([s for s in self.order if s != stage], stage)
        else:
            self._changed(insert_stage(self.order, stage), stage)
