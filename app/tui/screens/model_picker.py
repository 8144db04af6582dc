"""The model picker (Ctrl+O, `/model`): every model `andon models` lists, read on a thread, and
narrowed as you type (each word in the name, where it was found, its architecture or quantization).

`ModelWanted` is what the conversation posts for `/model NAME` and `/load MODEL`; the chat screen
switches the chat to that model (app/tui/model_switch.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from andon.app.models.catalog import ListedModel, human_count, human_size, list_models
from andon.app.tui.failures import guarded
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

NAME_WIDTH = 36  # at most; longer names are cut in the list (the whole name is in the line below it)
COLUMNS_WIDTH = 42  # the mark, and size, parameters, quantization and context after the name


@dataclass
class ModelWanted(Message):
    """`/model NAME` or `/load MODEL` ("" opens the picker); `presets` are named if no model is found."""

    name: str
    presets: tuple[str, ...] = ()


def model_summary(model: ListedModel) -> str:
    """One line about a model: parameters, quantization, size, trained context, where it was found."""
    info = model.info
    template = "" if info.has_template else " · no chat template"
    return (
        f"{human_count(info.parameters)} · {info.quantization} · {human_size(info.file_size)} · "
        f"context {info.context_length or '?'} · {model.entry.source}{template}"
    )


def model_row(model: ListedModel, current: bool, name_width: int = NAME_WIDTH) -> Content:
    """Its name, size, parameters, quantization and context on one line; where it was found below."""
    info, name = model.info, model.entry.name
    shown = name if len(name) <= name_width else name[: name_width - 1] + "…"
    columns = (
        f"{human_size(info.file_size):>8}  {human_count(info.parameters):>8}  {info.quantization:<7}  "
        f"ctx {info.context_length or '?'}"
    )
    line = Content(("● " if current else "  ") + shown.ljust(name_width) + "  " + columns)
    where = f"\n    {model.entry.source} · {info.architecture}" + ("" if info.has_template else " · no chat template")
    return line + Content.styled(where + (f" · {name}" if shown != name else ""), "dim")


def _searched(model: ListedModel) -> str:
    """What the picker's filter looks in: the name, where it was found, architecture, quantization."""
    info = model.info
    return f"{model.entry.name} {model.entry.source} {info.architecture} {info.quantization}".casefold()


class ModelPicker(ModalScreen[str | None]):
    """Choose the chat's model: name, size, parameters, quantization, trained context."""

    AUTO_FOCUS = "#model-filter"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss_none", "Cancel"),
        Binding("down", "move(1)", "Next model", show=False),  # the filter keeps the focus
        Binding("up", "move(-1)", "Previous model", show=False),
    ]
    DEFAULT_CSS = """
    ModelPicker { align: center middle; }
    ModelPicker .model-dialog {
        width: 96; max-width: 100%; height: auto; max-height: 90%;
        border: thick $primary; background: $surface; padding: 1 2;
    }
    ModelPicker OptionList { height: auto; max-height: 20; }
    ModelPicker #model-status { color: $text-muted; }
    ModelPicker #model-filter { margin: 1 0 0 0; }
    """

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current  # the chat's model, by its name in `andon models` (or its path)
        self.models: list[ListedModel] = []  # every model found
        self.problems: list[str] = []  # the files skipped, and why
        self.names: list[str] = []  # the models listed (those the filter keeps), in order

    def compose(self) -> ComposeResult:
        with Vertical(classes="model-dialog"):
            yield Label("Model for this chat (it loads at once; Esc keeps the current one)")
            yield Label("Looking for models…", id="model-status", markup=False)
            yield Input(
                placeholder="Type to filter the models · ↑/↓ choose · Enter loads", id="model-filter", compact=True
            )
            yield OptionList(id="models")

    @guarded
    def on_mount(self) -> None:
        self._list()

    @work(thread=True, exclusive=True, exit_on_error=False)
    @guarded
    def _list(self) -> None:
        listed, problems = list_models()  # reads every GGUF header: never on the UI thread
        self.app.call_from_thread(self._show, listed, problems)

    def _show(self, listed: list[ListedModel], problems: list[str]) -> None:
        self.models, self.problems = listed, problems
        self._filter(self.query_one(Input).value)

    def _filter(self, text: str) -> None:
        """List the models with every word of `text` (any case); the chat's model is marked."""
        words = text.casefold().split()
        shown = [m for m in self.models if all(w in _searched(m) for w in words)]
        options = self.query_one(OptionList)
        options.clear_options()
        current = [i for i, m in enumerate(shown) if self.current in (m.entry.name, str(m.entry.path))]
        self.names = [m.entry.name for m in shown]
        width = options.scrollable_content_region.width or self.app.size.width - 12  # 80 columns: one line each
        name_width = max(12, min(NAME_WIDTH, width - COLUMNS_WIDTH))
        options.add_options([Option(model_row(m, i in current, name_width)) for i, m in enumerate(shown)])
        options.highlighted = current[0] if current else (0 if shown else None)
        skipped = f"; {len(self.problems)} file(s) skipped: {'; '.join(self.problems)}" if self.problems else ""
        found = f"{len(self.models)} model(s) found" if self.models else "No models found"
        if words and self.models:
            found = f"{len(shown)} of {len(self.models)} model(s) have “{text.strip()}”"
        self.query_one("#model-status", Label).update(f"{found} (`andon models` lists the same){skipped}")

    @on(Input.Changed, "#model-filter")
    @guarded
    def _typed(self, event: Input.Changed) -> None:
        self._filter(event.value)

    @on(Input.Submitted, "#model-filter")
    @guarded
    def _entered(self, event: Input.Submitted) -> None:
        """Enter in the filter loads the model highlighted (nothing when none is listed)."""
        index = self.query_one(OptionList).highlighted
        if index is not None and index < len(self.names):
            self.dismiss(self.names[index])

    @guarded
    def action_move(self, step: int) -> None:
        options = self.query_one(OptionList)
        if step > 0:
            options.action_cursor_down()
        else:
            options.action_cursor_up()

    @on(OptionList.OptionSelected)
    @guarded
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.names[event.option_index])

    @guarded
    def action_dismiss_none(self) -> None:
        self.dismiss(None)
