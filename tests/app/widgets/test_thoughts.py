"""A MessageBox shows a reply's thinking apart from its answer (Thoughts): open while it streams,
folded once the answer begins, left open when the reply ended with no answer."""

from __future__ import annotations

from andon.app.chat.history import StoredMessage
from andon.app.tui.widgets.message_box import MessageBox
from andon.app.tui.widgets.thoughts import Thoughts

from tests.app.widgets.hosts import MessageBoxHost


async def test_streamed_thinking_then_the_answer():
    reply = StoredMessage(1, "assistant", "", "streaming")
    app = MessageBoxHost(reply)
    async with app.run_test() as pilot:
        box = app.query_one(MessageBox)
        assert not box.query(Thoughts)
        await box.append("", thinking="Two and two ")
        await box.append("", thinking="make four.")
        await pilot.pause()
        thoughts = box.query_one(Thoughts)
        assert thoughts.title == "Thinking…" and not thoughts.collapsed
        assert thoughts.view.source == "Two and two make four."
        assert box.children.index(thoughts) < box.children.index(box.body)  # above the answer
        await box.append("It is **4**.")
        await pilot.pause()
        assert thoughts.collapsed and box.body.source == "It is **4**."
        reply.content, reply.thinking, reply.status = "It is **4**.", "Two and two make four.", "complete"
        await box.finish()
        await pilot.pause()
        assert thoughts.collapsed and thoughts.title == "Thinking · 5 words"
        assert box.body.source == "It is **4**." and thoughts.view.source == "Two and two make four."


async def test_a_reply_stopped_while_it_thinks_keeps_its_thinking_open():
    reply = StoredMessage(1, "assistant", "", "streaming")
    app = MessageBoxHost(reply)
    async with app.run_test() as pilot:
        box = app.query_one(MessageBox)
        await box.append("", thinking="Let me see")
        reply.thinking, reply.status = "Let me see", "stopped"
        await box.finish()
        await pilot.pause()
        thoughts = box.query_one(Thoughts)
        assert not thoughts.collapsed and thoughts.title == "Thinking · 3 words"
        assert thoughts.view.source == "Let me see"


async def test_a_stored_reply_shows_its_thinking_folded():
    app = MessageBoxHost(StoredMessage(1, "assistant", "Tokyo.", "complete", thinking="Japan's capital is Tokyo."))
    async with app.run_test() as pilot:
        await pilot.pause()
        box = app.query_one(MessageBox)
        thoughts = box.query_one(Thoughts)
        assert thoughts.collapsed and thoughts.title == "Thinking · 4 words"
        assert box.body.source == "Tokyo."
        await pilot.click(thoughts.query_one("CollapsibleTitle"))
        assert not thoughts.collapsed
