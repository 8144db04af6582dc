"""The model controller on its own, in a small host screen: what it tells the screen that owns it
(the status bar's note, a load that ended) and what it says in the open conversation. The chat
screen wires the same callbacks to its status bar and loading indicator."""

from __future__ import annotations

from pathlib import Path

from andon.app.chat.history import History
from andon.app.chat.session import ChatSession
from andon.app.engine.engine import ModelLoadError
from andon.app.tui.engine_host import EngineHost, ModelChoice
from andon.app.tui.model_switch import ModelController
from andon.presets.store import PresetStore
from textual.app import App
from textual.screen import Screen

from tests.app.fakes import FakeEngine


class _View:
    """The little of a ChatView the controller uses: the session, and lines said."""

    owned, replying, tokens_per_second, drafts, context_used = True, False, None, (0, 0), 0

    def __init__(self, session: ChatSession) -> None:
        self.session = session
        self.lines: list[str] = []

    def say(self, text: str, error: bool = False) -> None:
        self.lines.append(text)

    def settings_changed(self) -> None:
        pass

    def refresh_welcome(self) -> None:
        pass

    def model_changed(self, context: int | None) -> None:
        pass


class _Owner(Screen[None]):
    """A screen that owns a controller, as ChatScreen does, and records what it was told."""

    def __init__(self, host: EngineHost, view: _View) -> None:
        super().__init__()
        self.notes: list[str] = []
        self.ended: list[str | None] = []
        self.models = ModelController(host, self, lambda: view, self.notes.append, self.ended.append)


class _Host(App[None]):
    def __init__(self, owner: _Owner) -> None:
        super().__init__()
        self.owner = owner

    def on_mount(self) -> None:
        self.push_screen(self.owner)


def factory(options):
    if options.progress is not None:
        options.progress(0.5)
        options.progress(1.0)
    if options.path.name == "broken.gguf":
        raise ModelLoadError(f"could not load model {options.path}: damaged (test)")
    return FakeEngine(options, model_name="general name")


def setup(tmp_path: Path) -> tuple[_Owner, _View]:
    history = History(tmp_path / "h.sqlite3")
    session = ChatSession(history, history.create_chat("chat", "default"), PresetStore(tmp_path / "presets"))
    view = _View(session)
    return _Owner(EngineHost(factory, tmp_path / "start.gguf"), view), view


async def test_a_load_tells_its_owner_the_note_then_the_model_loaded(tmp_path):
    owner, view = setup(tmp_path)
    async with _Host(owner).run_test() as pilot:
        owner.models.load_model(ModelChoice("", "alpha", tmp_path / "alpha.gguf"), view.session, explicit=True)
        assert owner.notes == ["loading alpha…"]
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        assert owner.notes[1:] == [f"loading alpha {'█' * 6}{'░' * 6}  50%", f"loading alpha {'█' * 12} 100%", ""]
        assert owner.ended == ["alpha"]
        assert len(view.lines) == 1 and view.lines[0].startswith("Model alpha loaded (")


async def test_a_load_that_fails_ends_without_a_name_and_says_why(tmp_path):
    owner, view = setup(tmp_path)
    async with _Host(owner).run_test() as pilot:
        owner.models.load_model(ModelChoice("", "broken", tmp_path / "broken.gguf"), view.session, explicit=True)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        assert owner.ended == [None] and owner.notes[-1] == "model not loaded"
        assert view.lines == [f"error: could not load model {tmp_path / 'broken.gguf'}: damaged (test)"]
