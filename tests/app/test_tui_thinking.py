"""A reasoning model's reply in the app (a fake engine whose scripted tokens write `<think>...</think>`,
split by the engine's own ThinkingSplitter): the thinking shows apart from the answer, folded once the
answer begins, is stored apart, and is never sent back; `/set think` and `/set nothink`."""

from __future__ import annotations

import threading

from andon.app.chat.history import History
from andon.app.engine.engine import Delta
from andon.app.tui.app import AndonApp
from andon.app.tui.widgets.message_box import MessageBox, NoticeLine
from andon.app.tui.widgets.thoughts import Thoughts
from andon.presets.store import PresetStore
from textual.widgets import Markdown

from tests.app.fakes import FakeEngine
from tests.app.test_tui import SIZE, make_app, send

THINKING = ["<think>", "\nThe user", " says hi.", " Greet", " back.\n", "</th", "ink>", "\n\n", "Hello", "!"]


def reply_box(app: AndonApp) -> MessageBox:
    return list(app.query(MessageBox))[-1]


async def test_the_thinking_is_folded_above_the_answer_and_opens_on_enter(tmp_path):
    app, _ = make_app(tmp_path, script=THINKING)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "hi")
        box = reply_box(app)
        assert box.message.content == "Hello!"
        assert box.message.thinking == "The user says hi. Greet back."
        thoughts = box.query_one(Thoughts)
        assert thoughts.collapsed and thoughts.title == "Thinking · 6 words"
        assert box.body.source == "Hello!"  # the answer alone
        assert not thoughts.view.display or not thoughts.view.region.height  # folded: not on screen
        thoughts.query_one("CollapsibleTitle").focus()
        await pilot.press("enter")
        await pilot.pause()
        assert not thoughts.collapsed and thoughts.view.region.height > 0
        assert thoughts.view.source == "The user says hi. Greet back."
    stored = History(tmp_path / "h.sqlite3")
    [chat] = stored.chats()
    reply = stored.messages(chat.id)[1]
    assert (reply.content, reply.thinking) == ("Hello!", "The user says hi. Greet back.")


async def test_the_thinking_is_never_sent_back_and_is_shown_again_when_the_chat_is_opened(tmp_path):
    app, engines = make_app(tmp_path, script=THINKING)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "hi")
        await send(pilot, "and again")
        messages, _ = engines[0].calls[1]
        assert [m["content"] for m in messages[1:]] == ["hi", "Hello!", "and again"]
        assert not any("user says hi" in m["content"] for m in messages)
    app, _ = make_app(tmp_path, script=THINKING)  # a new andon opens the chat
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        boxes = [b for b in app.query(MessageBox) if b.message.role == "assistant"]
        assert len(boxes) == 2 and all(b.query_one(Thoughts).collapsed for b in boxes)
        assert boxes[0].query_one(Thoughts).view.source == "The user says hi. Greet back."


class HeldAtTheAnswer(FakeEngine):
    """Streams the thinking, then waits (up to 10 s) before the answer's first piece."""

    go_on = threading.Event()

    def stream(self, messages, params, cancelled=None, chain=None):
        for event in super().stream(messages, params, cancelled, chain):
            if isinstance(event, Delta) and event.text:
                self.go_on.wait(10)
            yield event


async def test_while_it_thinks_the_reply_shows_thinking_open_then_folds_when_the_answer_begins(tmp_path):
    HeldAtTheAnswer.go_on.clear()
    app = AndonApp(lambda o: HeldAtTheAnswer(o, script=THINKING, delay=0.05), tmp_path / "fake.gguf",
                   history=History(tmp_path / "h.sqlite3"), store=PresetStore(tmp_path / "presets"))  # fmt: skip
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press(*"hi", "enter")
        for _ in range(100):
            await pilot.pause(0.05)
            thoughts = reply_box(app).query(Thoughts)
            if thoughts and "says hi." in thoughts.first().view.source:
                break
        thoughts = reply_box(app).query_one(Thoughts)
        assert thoughts.title == "Thinking…" and not thoughts.collapsed and thoughts.view.region.height > 0
        assert thoughts.view.source.startswith("The user says hi.")  # (text is handed over 10 times a second)
        assert reply_box(app).body.source == ""  # no answer yet
        HeldAtTheAnswer.go_on.set()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert thoughts.collapsed and thoughts.title == "Thinking · 6 words"
        assert reply_box(app).body.source == "Hello!"


async def test_set_think_and_nothink(tmp_path):
    app, engines = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "/set nothink")
        assert app.session.params.think is False and "think" in app.session.changes
        await send(pilot, "hello")
        assert engines[0].calls[-1][1].think is False  # the reply is asked for with think false
        await send(pilot, "/set think")
        assert app.session.params.think is True and "think" not in app.session.changes
        await send(pilot, "/set nothink please")
        notices = [str(n.render()) for n in app.query(NoticeLine)]
        assert "Set 'nothink' mode." in notices and "Set 'think' mode." in notices
        assert notices[-1] == "usage: /set think [low|medium|high] | /set nothink"
        assert app.session.params.think is True  # the refused command changed nothing
        await send(pilot, "/set think HIGH")  # Ollama's level, which a template's reasoning_effort is given
        assert app.session.params.think == "high"
        assert str(app.query(NoticeLine).last().render()) == "Set 'think' mode to 'high'."
        await send(pilot, "/set think max")
        assert app.session.params.think == "high"  # refused: not a level andon takes


async def test_a_reply_without_thinking_has_no_thoughts(tmp_path):
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "hi")
        assert not reply_box(app).query(Thoughts) and len(reply_box(app).query(Markdown)) == 1
