"""The command palette's entries of andon (Ctrl+P): "Preset: NAME" switches the chat's preset,
"Model: NAME" its model (the models `andon models` lists, read on a thread when the palette opens),
"Parameter: NAME" opens the parameter panel on that parameter."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Protocol, runtime_checkable

from textual.command import DiscoveryHit, Hit, Hits, Provider


@runtime_checkable
class PresetSwitcher(Protocol):
    """What the palette needs of the screen it was opened from."""

    def preset_names(self) -> list[str]: ...

    def switch_preset(self, name: str) -> None: ...

    def preset_summary(self, name: str) -> str: ...


class ListedCommands(Provider):
    """A palette provider whose entries (text, action, help) are made once, when the palette opens."""

    _entries: list[tuple[str, Callable[[], None], str]]

    async def discover(self) -> Hits:
        for text, run, about in self._entries:
            yield DiscoveryHit(text, run, help=about)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, run, about in self._entries:
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), run, help=about)


class PresetCommands(ListedCommands):
    """Command palette: "Preset: NAME" switches the chat's preset (the presets read once per opening)."""

    async def startup(self) -> None:
        screen = self.screen
        self._entries = []
        if isinstance(screen, PresetSwitcher):
            self._entries = [
                (f"Preset: {name}", partial(screen.switch_preset, name),
                 screen.preset_summary(name) or "Switch this chat's preset")
                for name in screen.preset_names()
            ]  # fmt: skip


@runtime_checkable
class ModelSwitcher(Protocol):
    """What the palette needs to switch models: the `models` (a ModelController) of the screen it was opened from."""

    async def model_entries(self) -> list[tuple[str, str]]: ...

    def choose_model(self, name: str) -> None: ...


class ModelCommands(ListedCommands):
    """Command palette: "Model: NAME" switches the open chat to that model."""

    async def startup(self) -> None:
        switcher = getattr(self.screen, "models", None)
        self._entries = []
        if isinstance(switcher, ModelSwitcher):
            models = await switcher.model_entries()
            self._entries = [(f"Model: {name}", partial(switcher.choose_model, name), about) for name, about in models]


@runtime_checkable
class ParameterOpener(Protocol):
    """What the palette needs to open the parameter panel on one parameter."""

    def edit_parameter(self, name: str) -> None: ...


SYSTEM_ENTRY = ("system", "The system prompt: the chat's first message (as /set system)")


class ParameterCommands(ListedCommands):
    """Command palette: "Parameter: NAME" opens the parameter panel focused on that parameter."""

    async def startup(self) -> None:
        screen = self.screen
        self._entries = []
        if isinstance(screen, ParameterOpener):
            from andon.presets.parameters import ALL_SPECS  # read with the chat screen, not before the first frame

            described = [*((name, spec.description) for name, spec in ALL_SPECS.items()), SYSTEM_ENTRY]
            self._entries = [(f"Parameter: {name}", partial(screen.edit_parameter, name), about)
                             for name, about in described]  # fmt: skip
