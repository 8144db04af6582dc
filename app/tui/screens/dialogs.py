"""Modal screens: rename a chat, confirm a deletion, pick a preset, pick what to copy."""

from __future__ import annotations

from typing import ClassVar

from andon.app.tui.copying import CopyChoice
from andon.app.tui.failures import guarded
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option


class PromptScreen(ModalScreen[str | None]):
    AUTO_FOCUS = "#prompt-input"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss_none", "Cancel")]

    def __init__(self, title: str, value: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.value = value

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text)
            yield Input(self.value, id="prompt-input")

    @on(Input.Submitted)
    @guarded
    def _done(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    @guarded
    def action_dismiss_none(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    AUTO_FOCUS = ""
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question)
            yield Label("y: yes   n: no", classes="hint")

    @guarded
    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class PresetPicker(ModalScreen[str | None]):
    AUTO_FOCUS = "OptionList"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss_none", "Cancel")]

    def __init__(self, names: list[str], current: str, summaries: dict[str, str] | None = None) -> None:
        super().__init__()
        self.names = names
        self.current = current
        self.summaries = summaries or {}

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Preset for this chat (applies from the next reply)")
            options = OptionList(*[Option(self._prompt(n), id=n) for n in self.names])
            yield options

    def _prompt(self, name: str) -> Content:
        mark = "● " if name == self.current else "  "
        summary = self.summaries.get(name, "")
        line = Content(mark + name)
        return line + Content.styled(f"\n  {summary}", "dim") if summary else line

    @guarded
    def on_mount(self) -> None:
        picker = self.query_one(OptionList)
        if self.current in self.names:
            picker.highlighted = self.names.index(self.current)

    @on(OptionList.OptionSelected)
    @guarded
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    @guarded
    def action_dismiss_none(self) -> None:
        self.dismiss(None)


class CopyPicker(ModalScreen[CopyChoice | None]):
    """Every message of the chat and every code block of its replies: Enter copies the highlighted one."""

    AUTO_FOCUS = "OptionList"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss_none", "Cancel")]

    def __init__(self, choices: list[CopyChoice]) -> None:
        super().__init__()
        self.choices = choices

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Copy which? ↑↓ choose · Enter copies · Esc cancels")
            yield OptionList(*[Option(self._prompt(c), id=str(i)) for i, c in enumerate(self.choices)])

    @staticmethod
    def _prompt(choice: CopyChoice) -> Content:
        if choice.kind == "code":
            return Content.styled(f"   └ {choice.label}: ", "dim") + Content(choice.first_line)
        return Content.styled(f"{choice.label}: ", "bold") + Content(choice.first_line)

    @guarded
    def on_mount(self) -> None:
        picker = self.query_one(OptionList)
        if self.choices:
            picker.highlighted = len(self.choices) - 1  # the latest is the likeliest

    @on(OptionList.OptionSelected)
    @guarded
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.choices[int(event.option.id or 0)])

    @guarded
    def action_dismiss_none(self) -> None:
        self.dismiss(None)
