"""The status bar shows reactive fields bound from its parent: nothing tells it to update."""

from __future__ import annotations

from andon.app.tui.widgets.message_box import StatusBar
from textual.app import App, ComposeResult
from textual.reactive import reactive


class _Host(App[None]):
    model_name = reactive("SmolLM2-135M")
    preset_label = reactive("balanced")
    tokens_per_second: reactive[float | None] = reactive(None)
    context_used = reactive(0)
    num_ctx = reactive(4096)
    chat_note = reactive("")
    model_note = reactive("")

    def compose(self) -> ComposeResult:
        yield StatusBar().data_bind(
            _Host.model_name, _Host.preset_label, _Host.tokens_per_second, _Host.context_used, _Host.num_ctx,
            _Host.chat_note, _Host.model_note,
        )  # fmt: skip


def text(app: App) -> str:
    return str(app.query_one(StatusBar).render())


async def test_the_bar_follows_its_parents_fields():
    app = _Host()
    async with app.run_test(size=(120, 5)) as pilot:
        assert text(app) == "SmolLM2-135M │ preset: balanced │ – tok/s │ context 0/4096"
        app.preset_label, app.tokens_per_second, app.context_used = "creative *", 73.14, 812
        app.model_note = "loading model.gguf…"
        await pilot.pause()
        assert text(app) == "SmolLM2-135M │ preset: creative * │ 73.1 tok/s │ context 812/4096 │ loading model.gguf…"
        app.chat_note = "waiting for the model to load…"  # the chat's note comes first
        await pilot.pause()
        assert text(app).endswith("│ waiting for the model to load…")


async def test_a_model_name_with_brackets_is_shown_as_it_is():
    app = _Host()
    app.model_name = "[bold]odd[/bold].gguf"
    async with app.run_test() as pilot:
        await pilot.pause()
        assert text(app).startswith("[bold]odd[/bold].gguf │")


async def test_at_80_columns_the_context_count_and_a_loading_note_still_show():
    app = _Host()
    app.model_name = "SmolLM2-135M-Instruct.Q4_1-with-a-long-file-name"
    async with app.run_test(size=(80, 5)) as pilot:
        app.preset_label, app.tokens_per_second, app.context_used = "creative *", 29.5, 1544
        app.num_ctx = 20000
        app.model_note = "loading ▰▰▰▱▱ 60%"
        await pilot.pause()
        line = text(app)
        assert len(line) <= 80
        assert line.endswith("│ creative * │ 29.5 tok/s │ ctx 1544/20000 │ loading ▰▰▰▱▱ 60%")
        assert line.startswith("SmolLM2-135M") and "…" in line  # the model name gave way


def test_each_status_field_is_declared_once():
    """The chat screen holds the fields and binds them down; the bar shows them; the open chat's
    view writes them: only StatusFields declares them."""
    from andon.app.tui.screens.chat import ChatScreen
    from andon.app.tui.widgets.chat_view import ChatView
    from andon.app.tui.widgets.message_box import StatusFields

    names = {field.name for field in StatusFields.bound()}
    assert names == {"model_name", "model_note", "preset_label", "tokens_per_second", "context_used", "num_ctx",
                     "drafts", "chat_note"}  # fmt: skip
    for owner in (StatusBar, ChatScreen, ChatView):
        declaring = {c for c in owner.__mro__ if names & set(vars(c))}
        assert declaring <= {StatusFields}, (owner, declaring)
