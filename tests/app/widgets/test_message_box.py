"""MessageBox owns its Markdown stream: it opens it, appends to it and finishes it."""

from __future__ import annotations

from andon.app.chat.history import StoredMessage
from andon.app.tui.widgets.message_box import MessageBox
from textual.widgets import Label, Markdown

from tests.app.widgets.hosts import MessageBoxHost


def shown(box: MessageBox) -> str:
    return box.query_one(Markdown).source


async def test_streamed_text_then_one_full_render_and_a_header_that_says_how_it_ended():
    reply = StoredMessage(1, "assistant", "", "streaming")
    app = MessageBoxHost(reply)
    async with app.run_test() as pilot:
        box = app.query_one(MessageBox)
        assert str(box.query_one(Label).render()) == "Assistant · …"
        for piece in ["The capital ", "of Japan ", "is **Tokyo**."]:
            await box.append(piece)
        await pilot.pause()
        assert shown(box) == "The capital of Japan is **Tokyo**."
        reply.content, reply.status = "The capital of Japan is **Tokyo**.", "stopped"
        reply.stats = {"completion_tokens": 9, "tokens_per_second": 51.25}
        await box.finish()
        await pilot.pause()
        assert shown(box) == reply.content
        assert str(box.query_one(Label).render()) == "Assistant · stopped · 9 tokens, 51.2 tok/s"


async def test_a_box_removed_mid_stream_takes_no_more_text_and_raises_nothing():
    reply = StoredMessage(1, "assistant", "", "streaming")
    app = MessageBoxHost(reply)
    async with app.run_test() as pilot:
        box = app.query_one(MessageBox)
        await box.append("Once upon")
        await box.remove()
        await box.append(" a time")  # the chat was switched: the text goes nowhere, quietly
        await box.finish()
        await pilot.pause()
        assert app.is_running and not app.query(MessageBox)
