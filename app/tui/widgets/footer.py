"""The footer of keys, drawn at launch even when the terminal says andon is not focused.

Textual's Footer draws its keys on the first change of bindings, but skips that while the app is
blurred (so that keys do not flicker as focus leaves). A terminal that reports focus (tmux with
`focus-events on`, a window switched away from while andon starts) sends "focus out" at launch:
the footer then stayed blank until a key and a change of bindings came (issue 11: 20+ s in 6 of 6
launches in a tmux pane without a focused client). This footer draws itself the first time anyway.
"""

from __future__ import annotations

from textual.screen import Screen
from textual.widgets import Footer


class KeysFooter(Footer):
    def bindings_changed(self, screen: Screen[object]) -> None:
        first = not self.children  # nothing drawn yet
        super().bindings_changed(screen)
        if first and not screen.app.app_focus and self.is_attached and screen is self.screen:
            self.call_after_refresh(self.recompose)
