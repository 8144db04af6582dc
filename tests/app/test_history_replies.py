"""Chats and replies over time, driven with Pilot at 80x24: a regenerated reply keeps its versions
(stepped through with Ctrl+Left/Right, the one shown is the one sent on), a stopped or cut reply is
continued in the same message, andon reopens the chat last viewed, a long title uses the list's
width, a search result opens at the message found, and the model picker filters as you type."""

from __future__ import annotations

import pytest
from andon.app.chat.history import History
from andon.app.engine.engine import Delta, Done
from andon.app.engine.prompt import ChatPrompt
from andon.app.tui.screens.model_picker import ModelPicker
from andon.app.tui.widgets.chat_list import ChatItem, ChatList
from andon.app.tui.widgets.chat_view import ChatView
from andon.app.tui.widgets.message_box import ChatInput, MessageBox
from textual.widgets import Input, OptionList

from tests.app.test_model_switch import Models, folder, until  # noqa: F401 (folder: a fixture)
from tests.app.test_model_switch import make_app as make_switching_app
from tests.app.test_tui import make_app, notices, send

SIZE = (80, 24)


def reply_box(app) -> MessageBox:
    return list(app.query(MessageBox))[-1]


def header(app) -> str:
    return str(reply_box(app).header.render())


def sent(engines) -> list[dict]:
    """The messages of the last prompt the model was given, without the system prompt."""
    return [m for m in engines[-1].calls[-1][0] if m["role"] != "system"]


async def test_regenerate_keeps_the_earlier_reply_as_a_version_to_step_back_to(tmp_path):
    app, engines = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "Name a colour.")
        engines[-1].script = ["Red", "."]
        await pilot.press("ctrl+r")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert reply_box(app).message.content == "Red." and "version 2/2" in header(app)
        assert [m.role for m in app.session.messages] == ["user", "assistant"]  # still one reply
        await pilot.press("ctrl+left")  # the message box is empty: the key steps the reply's versions
        await pilot.pause()
        assert reply_box(app).message.content == "Hello from the fake model." and "version 1/2" in header(app)
        assert "Hello from the fake model." in str(reply_box(app).body.source)
        await pilot.press("ctrl+left")  # there is none before the first
        await pilot.pause()
        assert "version 1/2" in header(app)
        app.query_one(ChatInput).text = "one two"
        await pilot.press("ctrl+right")  # with text in the box, Ctrl+Right moves a word there
        await pilot.pause()
        assert "version 1/2" in header(app)
        app.query_one(ChatInput).text = ""
        await send(pilot, "Why that one?")  # the conversation goes on from the version shown
        assert sent(engines) == [
            {"role": "user", "content": "Name a colour."},
            {"role": "assistant", "content": "Hello from the fake model."},
            {"role": "user", "content": "Why that one?"},
        ]
    stored = History(tmp_path / "h.sqlite3")
    first = stored.messages(stored.chats()[0].id)[1]
    assert (first.content, first.version, first.versions) == ("Hello from the fake model.", 1, 2)
    assert stored.show_version(first.id, 2).content == "Red."  # the other version is kept


async def test_continue_extends_a_cut_reply_in_the_same_message(tmp_path):
    app, engines = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "/set parameter num_predict 2")
        await send(pilot, "Say hello.")
        assert reply_box(app).message.content == "Hello from" and "cut at num_predict" in header(app)
        engines[-1].script = [" the", " fake"]
        await pilot.press("ctrl+g")
        await app.workers.wait_for_complete()
        await pilot.pause()
        # the prompt ended inside the reply: the model went on writing it, not a new turn
        assert sent(engines)[-1] == {"role": "assistant", "content": "Hello from"}
        assert [m.role for m in app.session.messages] == ["user", "assistant"]
        assert reply_box(app).message.content == "Hello from the fake"
        assert len(app.query(MessageBox)) == 2
        await send(pilot, "/set parameter num_predict -1")
        engines[-1].script = ["."]
        await send(pilot, "/continue")  # cut again: the slash command does the same
        assert reply_box(app).message.content == "Hello from the fake."
        await send(pilot, "/continue")  # it ended by itself now: nothing to continue
        assert "ended by itself" in [n.message for n in app._notifications][-1]
        assert reply_box(app).message.content == "Hello from the fake."
    stored = History(tmp_path / "h.sqlite3")
    [_, reply] = stored.messages(stored.chats()[0].id)
    assert (reply.content, reply.status) == ("Hello from the fake.", "complete")


async def test_a_stopped_reply_is_continued_from_where_it_stopped(tmp_path):
    app, engines = make_app(tmp_path, script=["word "] * 200, delay=0.01)
    async with app.run_test(size=SIZE) as pilot:
        app.query_one(ChatInput).text = "Say words."
        await pilot.press("enter")
        await pilot.pause(0.3)
        await pilot.press("escape")
        await app.workers.wait_for_complete()
        await pilot.pause()
        stopped = reply_box(app).message.content
        assert reply_box(app).message.status == "stopped" and 0 < len(stopped) < len("word ") * 200
        engines[-1].script, engines[-1].delay = [" (continued)"], 0.0
        await pilot.press("ctrl+g")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert reply_box(app).message.content == stopped + " (continued)"
        assert reply_box(app).message.status == "complete"


async def test_andon_reopens_the_chat_last_viewed(tmp_path):
    history = History(tmp_path / "h.sqlite3")
    older = history.create_chat("Older chat", "balanced")
    history.add_message(older.id, "user", "An old question.")
    newer = history.create_chat("Newer chat", "balanced")
    history.add_message(newer.id, "user", "A newer question.")
    history.close()
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.session.chat.id == newer.id  # never viewed: the newest
        app.chat_screen.chats.post_message(ChatList.Chosen(older))
        await pilot.pause()
        assert app.session.chat.id == older.id
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.session.chat.id == older.id  # the one viewed last, not the newest
        assert [b.message.content for b in app.query(MessageBox)] == ["An old question."]


async def test_a_long_title_uses_the_width_the_chat_list_has(tmp_path):
    question = "How do I sort a list of dictionaries by one of their keys in Python, keeping it stable?"
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, question)
        assert app.session.chat.title == question  # stored whole
        await pilot.press("ctrl+b")  # the list is hidden at first at 80 columns
        await pilot.pause()
        label = app.query_one(ChatItem).query_one(".chat-title")
        line = label.render_line(0).text.rstrip()
        assert line.endswith("…") and len(line) == label.size.width  # cut where the list ends
        assert question.startswith(line[:-1])


async def test_a_search_result_opens_at_the_message_found(tmp_path):
    history = History(tmp_path / "h.sqlite3")
    chat = history.create_chat("A long chat", "balanced")
    for i in range(30):
        text = "Where do penguins live?" if i == 4 else f"Message number {i}."
        history.add_message(chat.id, "user" if i % 2 == 0 else "assistant", text)
    history.create_chat("Another chat", "balanced")
    history.close()
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+f", *"penguins")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert app.session.chat.id == chat.id
        [found] = [b for b in app.query(MessageBox) if b.has_class("found")]
        assert found.message.content == "Where do penguins live?"  # mounted, though 25 messages back
        view = app.query_one(ChatView)
        assert view.scroll_y > 0 and found.region.y >= view.region.y  # scrolled to it, on screen
        assert found.region.y < view.region.bottom


async def test_the_model_picker_filters_as_you_type(tmp_path, folder):  # noqa: F811
    models = Models()
    app = make_switching_app(tmp_path, models)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+o")
        await until(pilot, lambda: isinstance(app.screen, ModelPicker) and len(app.screen.names) >= 2)
        picker = app.screen
        assert isinstance(picker.focused, Input)  # typing goes to the filter at once
        await pilot.press(*"BET")
        await pilot.pause()
        assert picker.names == ["beta"] and picker.query_one(OptionList).option_count == 1
        assert "1 of" in str(picker.query_one("#model-status").render())
        await pilot.press("backspace", "backspace", "backspace", *"zzz")
        await pilot.pause()
        assert picker.names == [] and "0 of" in str(picker.query_one("#model-status").render())
        await pilot.press("enter")  # nothing listed: nothing chosen, the picker stays
        assert isinstance(app.screen, ModelPicker)
        await pilot.press("backspace", "backspace", "backspace", *"alp", "enter")
        await until(pilot, lambda: not isinstance(app.screen, ModelPicker))
        await until(pilot, lambda: models.loaded == "alpha.gguf")
        assert notices(app)  # the app goes on


# --- continue on the embedded model: the prompt ends inside the reply ------------------------------

JAPAN = {"role": "user", "content": "What is the capital of Japan?"}


@pytest.mark.model
def test_a_continued_reply_s_prompt_ends_inside_it_in_the_model_s_own_template(engine):
    """SmolLM2's ChatML, written out by hand: the reply's turn is left open (no <|im_end|>, no new
    assistant turn); a model without a template gets the transcript's open last line."""
    cut = {"role": "assistant", "content": "The capital of Japan is"}
    assert engine.format_chat([JAPAN, cut]).endswith(
        "<|im_start|>user\nWhat is the capital of Japan?<|im_end|>\n<|im_start|>assistant\nThe capital of Japan is"
    )
    plain = ChatPrompt(None, engine.texts, "base")
    assert plain.format([JAPAN, cut]) == "User: What is the capital of Japan?\nAssistant: The capital of Japan is"


@pytest.mark.model
def test_a_greedy_reply_cut_and_continued_is_the_reply_written_whole(engine):
    """At temperature 0 a reply cut at num_predict and then continued reads as the same reply
    written in one go: the model went on from where it was cut, in the same message."""
    from andon.presets import Parameters

    whole = "".join(d.text for d in engine.stream([JAPAN], Parameters.of({"temperature": 0, "num_predict": 16}))
                    if isinstance(d, Delta))  # fmt: skip
    first = "".join(d.text for d in engine.stream([JAPAN], Parameters.of({"temperature": 0, "num_predict": 6}))
                    if isinstance(d, Delta))  # fmt: skip
    assert first and whole.startswith(first) and whole != first
    cut = [JAPAN, {"role": "assistant", "content": first}]
    rest = [e for e in engine.stream(cut, Parameters.of({"temperature": 0, "num_predict": 10}))]
    done = rest[-1]
    assert isinstance(done, Done)
    assert (first + done.text).split() == whole.split()
