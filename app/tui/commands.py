"""The command palette's entries of andon (Ctrl+P): "Preset: NAME" switches the chat's preset."""

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


class PresetCommands(Provider):
    """Command palette: "Preset: NAME" switches the chat's preset."""

    def _entries(self) -> list[tuple[str, Callable[[], None], str]]:
        screen = self.screen
        if not isinstance(screen, PresetSwitcher):
            return []
        return [
            (f"Preset: {name}", partial(screen.switch_preset, name), screen.preset_summary(name))
            for name in screen.preset_names()
        ]

    async def discover(self) -> Hits:
        for text, run, summary in self._entries():
            yield DiscoveryHit(text, run, help=summary or "Switch this chat's preset")

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, run, summary in self._entries():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), run, help=summary or "Switch preset")
