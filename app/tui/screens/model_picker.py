"""The model picker (Ctrl+O, `/model`): every model `andon models` lists, read on a thread.

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
from textual.widgets import Label, OptionList
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


class ModelPicker(ModalScreen[str | None]):
    """Choose the chat's model: name, size, parameters, quantization, trained context."""

    AUTO_FOCUS = "OptionList"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss_none", "Cancel")]
    DEFAULT_CSS = """
    ModelPicker { align: center middle; }
    ModelPicker .model-dialog {
        width: 96; max-width: 100%; height: auto; max-height: 90%;
        border: thick $primary; background: $surface; padding: 1 2;
    }
    ModelPicker OptionList { height: auto; max-height: 20; }
    ModelPicker #model-status { color: $text-muted; }
    """

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current  # the chat's model, by its name in `andon models` (or its path)
        self.names: list[str] = []  # the models listed, in order

    def compose(self) -> ComposeResult:
        with Vertical(classes="model-dialog"):
            yield Label("Model for this chat (it loads at once; Esc keeps the current one)")
            yield Label("Looking for models…", id="model-status", markup=False)
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
        options = self.query_one(OptionList)
        current = [i for i, m in enumerate(listed) if self.current in (m.entry.name, str(m.entry.path))]
        self.names = [m.entry.name for m in listed]
        width = options.scrollable_content_region.width or self.app.size.width - 12  # 80 columns: one line each
        name_width = max(12, min(NAME_WIDTH, width - COLUMNS_WIDTH))
        options.add_options([Option(model_row(m, i in current, name_width)) for i, m in enumerate(listed)])
        if current:
            options.highlighted = current[0]
        skipped = f"; {len(problems)} file(s) skipped: {'; '.join(problems)}" if problems else ""
        found = f"{len(listed)} model(s) found" if listed else "No models found"
        self.query_one("#model-status", Label).update(f"{found} (`andon models` lists the same){skipped}")

    @on(OptionList.OptionSelected)
    @guarded
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.names[event.option_index])

    @guarded
    def action_dismiss_none(self) -> None:
        self.dismiss(None)
