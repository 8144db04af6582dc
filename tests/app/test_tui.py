"""The chat app driven with Textual's Pilot against a fake engine that yields scripted tokens."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import pytest
from andon.app.chat.history import History
from andon.app.tui.app import AndonApp
from andon.app.tui.widgets.chat_list import ChatList
from andon.app.tui.widgets.message_box import ChatInput, MessageBox, StatusBar
from andon.presets.store import PresetStore

from tests.app.fakes import FakeEngine

SIZE = (110, 34)


def make_app(tmp_path: Path, **fake) -> tuple[AndonApp, list[FakeEngine]]:
    engines: list[FakeEngine] = []

    def factory(options):
        engine = FakeEngine(options, **fake)
        engines.append(engine)
        return engine

    app = AndonApp(factory, Path("/models/fake.gguf"), history=History(tmp_path / "h.sqlite3"),
                   store=PresetStore(tmp_path / "presets"))  # fmt: skip
    return app, engines


async def send(pilot, text: str) -> None:
    pilot.app.query_one(ChatInput).text = text
    await pilot.press("enter")
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def test_streams_a_reply_and_stores_both_messages(tmp_path):
    app, engines = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "hello there")
        boxes = list(app.query(MessageBox))
        assert [b.message.role for b in boxes] == ["user", "assistant"]
        assert boxes[1].message.content == "Hello from the fake model."
        status = str(app.query_one(StatusBar).render())
        assert "fake-model" in status and "preset: balanced" in status and "42.0 tok/s" in status
        assert "/4096" in status
        # what the model saw: the preset's system prompt and the user's message
        messages, _ = engines[0].calls[0]
        assert messages[-1] == {"role": "user", "content": "hello there"} and messages[0]["role"] == "system"
    stored = History(tmp_path / "h.sqlite3")
    chat = stored.chats()[0]
    assert chat.title == "hello there"
    assert [(m.role, m.status) for m in stored.messages(chat.id)] == [("user", "complete"), ("assistant", "complete")]


async def test_enter_sends_and_ctrl_j_adds_a_new_line(tmp_path):
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("a", "ctrl+j", "b")
        assert app.query_one(ChatInput).text == "a\nb"
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        assert app.session.messages[0].content == "a\nb"
        assert app.query_one(ChatInput).text == ""


async def test_message_sent_before_the_model_loads_waits_for_it(tmp_path):
    gate = threading.Event()

    def slow_factory(options):
        gate.wait(5)
        return FakeEngine(options)

    app = AndonApp(slow_factory, Path("/m.gguf"), history=History(tmp_path / "h.db"),
                   store=PresetStore(tmp_path / "p"))  # fmt: skip
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert not app.host.loaded.is_set()
        app.query_one(ChatInput).text = "early bird"
        await pilot.press("enter")
        await pilot.pause()
        assert "waiting for the model" in str(app.query_one(StatusBar).render())
        gate.set()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.session.messages[-1].content == "Hello from the fake model."


async def test_escape_stops_a_reply_and_keeps_it_marked_stopped(tmp_path):
    app, _ = make_app(tmp_path, script=["word "] * 200, delay=0.01)
    async with app.run_test(size=SIZE) as pilot:
        app.query_one(ChatInput).text = "go on"
        await pilot.press("enter")
        await pilot.pause(0.3)
        await pilot.press("escape")
        await app.workers.wait_for_complete()
        await pilot.pause()
        reply = app.session.messages[-1]
        assert reply.status == "stopped" and reply.content.startswith("word")
        assert len(reply.content.split()) < 200
        assert "stopped" in str(list(app.query(MessageBox))[-1].header_text())
    stored = History(tmp_path / "h.sqlite3")
    assert stored.messages(stored.chats()[0].id)[-1].status == "stopped"


async def test_killed_mid_reply_keeps_message_and_partial_reply(tmp_path):
    history = History(tmp_path / "h.sqlite3")
    chat = history.create_chat("interrupted", "balanced")
    history.add_message(chat.id, "user", "tell me a story")
    history.add_message(chat.id, "assistant", "Once upon a", status="streaming")
    history.close()  # as if andon had been killed here
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert [m.content for m in app.session.messages] == ["tell me a story", "Once upon a"]
        assert app.session.messages[-1].status == "stopped"


async def test_regenerate_and_edit_last_message(tmp_path):
    app, engines = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "first question")
        await pilot.press("ctrl+r")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert [m.role for m in app.session.messages] == ["user", "assistant"]
        assert len(engines[0].calls) == 2
        await pilot.press("ctrl+l")
        assert app.query_one(ChatInput).text == "first question"
        await pilot.press(*" again")  # typed where the message ends, not glued before it
        assert app.query_one(ChatInput).text == "first question again"
        app.query_one(ChatInput).text = "second question"
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert [m.content for m in app.session.messages if m.role == "user"] == ["second question"]


async def test_one_key_switches_preset_and_it_is_saved_with_the_chat(tmp_path):
    app, engines = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        names = app.store.names()
        start = app.session.preset.name
        await pilot.press("ctrl+t")
        await pilot.pause()
        now = app.session.preset.name
        assert now == names[(names.index(start) + 1) % len(names)]
        assert f"preset: {now}" in str(app.query_one(StatusBar).render())
        await send(pilot, "hi")
        assert engines[0].calls[-1][1] == app.store.load(now).parameters  # applies to the next reply
    assert History(tmp_path / "h.sqlite3").chats()[0].preset == now


async def test_command_palette_has_preset_entries(tmp_path):
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Preset: factual")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause()
        assert app.session.preset.name == "factual"


async def test_slash_commands_like_ollama_run(tmp_path):
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "/set parameter temperature 0.3")
        assert app.session.params.temperature == 0.3 and app.session.changes == {"temperature": 0.3}
        await send(pilot, "/set parameter temperature -4")
        assert app.session.params.temperature == 0.3  # refused: nothing changed
        notices = [str(n.render()) for n in app.query(".notice")]
        assert any("temperature: -4 is not allowed" in n for n in notices)
        await send(pilot, '/set parameter stop "<end>" STOP')
        assert app.session.params.stop == ("<end>", "STOP")
        await send(pilot, "/set system You are a pirate.")
        assert app.session.system == "You are a pirate."
        await send(pilot, "/show parameters")
        assert any("User defined parameters:" in str(n.render()) for n in app.query(".notice"))
        await send(pilot, "/save piratey")
        assert app.store.load("piratey").system == "You are a pirate."
        await send(pilot, "/preset creative")
        assert app.session.preset.name == "creative" and app.session.params.temperature == 0.3
        await send(pilot, "/load factual")
        assert app.session.preset.name == "factual" and app.session.changes == {}
        await send(pilot, "/frobnicate")
        assert "Unknown command '/frobnicate'" in str(list(app.query(".notice"))[-1].render())
        await send(pilot, "hello")
        await send(pilot, "/clear")
        assert app.session.messages == []
        await send(pilot, "/bye")
    assert app.return_code is not None or not app.is_running


async def test_parameter_panel_edits_in_place_with_cli_validation(tmp_path):
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f4")
        await pilot.pause()
        field = app.query_one("#param-top_k")
        field.value = "12"
        field.focus()
        await pilot.press("enter")
        await pilot.pause()
        assert app.session.params.top_k == 12
        assert app.query_one("#param-top_k").parent.has_class("changed")
        bad = app.query_one("#param-top_p")
        bad.value = "2"
        bad.focus()
        await pilot.press("enter")
        await pilot.pause()
        assert app.session.params.top_p == 0.95  # refused, unchanged
        assert app.query_one("#param-top_p").value == "0.95"


async def test_chats_new_rename_delete_export(tmp_path, monkeypatch):
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "first chat")
        await pilot.press("ctrl+n")
        await pilot.pause()
        await send(pilot, "second chat")
        assert len(app.history.chats()) == 2
        await pilot.press("f2")
        await pilot.pause()
        app.screen.query_one("#prompt-input").value = "Renamed"
        await pilot.press("enter")
        await pilot.pause()
        assert app.session.chat.title == "Renamed"
        await pilot.press("ctrl+s")
        await pilot.pause()
        exports = list((tmp_path / "data" / "andon" / "exports").glob("*.md"))
        assert exports and "second chat" in exports[0].read_text()
        await pilot.press("f8")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert [c.title for c in app.history.chats()] == ["first chat"]


async def test_copy_reply_and_code_block(tmp_path, monkeypatch):
    import pyperclip

    app, _ = make_app(tmp_path, script=["Here:\n", "```python\n", "print(1)\n", "```\n"])
    copied, system, said = [], [], []
    async with app.run_test(size=SIZE) as pilot:
        app.copy_to_clipboard = copied.append
        app.notify = lambda message, **kwargs: said.append(message)

        def no_clipboard(text):
            raise pyperclip.PyperclipException("no xclip")

        monkeypatch.setattr(pyperclip, "copy", no_clipboard)
        await send(pilot, "code please")
        await pilot.press("f9")
        await pilot.press("f10")
        await pilot.pause()
        assert len(said) == 2 and all("OSC 52" in m for m in said)  # never plain "copied" when unsure
        monkeypatch.setattr(pyperclip, "copy", system.append)
        await pilot.press("f9")
        await pilot.pause()
        assert said[-1] == "Reply copied to the system clipboard."
    assert copied == ["Here:\n```python\nprint(1)\n```\n", "print(1)\n"]
    assert system == ["Here:\n```python\nprint(1)\n```\n"]


async def test_model_that_fails_to_load_is_a_message_not_a_traceback(tmp_path):
    from andon.app.engine.engine import ModelLoadError

    def failing(options):
        raise ModelLoadError("could not load model /m.gguf: bad magic")

    app = AndonApp(failing, Path("/m.gguf"), history=History(tmp_path / "h.db"), store=PresetStore(tmp_path / "p"))
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "hello")
        texts = [str(n.render()) for n in app.query(".notice")]
        assert any("bad magic" in t for t in texts)
        assert app.session.messages[-1].status == "error"


@pytest.mark.parametrize("n_ctx", [64])
async def test_context_full_is_a_message(tmp_path, n_ctx):
    from andon.app.engine.engine import ContextFullError

    class Full(FakeEngine):
        def stream(self, messages, params, cancelled=None, chain=None):
            raise ContextFullError("the message needs 900 tokens of context, but num_ctx is 64")
            yield  # pragma: no cover

    app = AndonApp(lambda o: Full(o), Path("/m.gguf"), history=History(tmp_path / "h.db"),
                   store=PresetStore(tmp_path / "p"))  # fmt: skip
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "a very long message")
        assert any("num_ctx is 64" in str(n.render()) for n in app.query(".notice"))


def test_app_keys_work_while_typing():
    """No app key is taken by the message box (TextArea binds ctrl+e, ctrl+k, f6, f7 ...)."""
    input_keys = {k for b in ChatInput.BINDINGS for k in b.key.split(",")}
    input_keys |= {k for cls in ChatInput.__mro__ for b in getattr(cls, "BINDINGS", []) for k in b.key.split(",")}
    # escape and ctrl+c are priority keys that act only while a reply is written (else the box has them)
    app_keys = {k for b in AndonApp.BINDINGS if not b.priority for k in b.key.split(",")} - {"escape"}
    assert not app_keys & input_keys, app_keys & input_keys


@pytest.mark.model
async def test_real_model_in_the_app(tmp_path, model_path):
    from andon.app.engine.engine import Engine

    app = AndonApp(lambda o: Engine(o), model_path, history=History(tmp_path / "h.db"),
                   store=PresetStore(tmp_path / "p"), preset="factual")  # fmt: skip
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "What is the capital of Japan?")
        assert "Tokyo" in app.session.messages[-1].content
        status = str(app.query_one(StatusBar).render())
        assert "preset: factual" in status and "tok/s" in status and "– tok/s" not in status


async def test_a_burst_of_typing_then_enter_sends_all_of_it(tmp_path):
    """Keys that arrive faster than the box handles them (fast typing, tmux, a paste without
    bracketed-paste) must be sent whole: Enter is handled in order, after the text before it."""
    from textual import events

    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        text = "What is the capital of Japan?"
        for ch in text:
            app.post_message(events.Key(ch, ch))
        app.post_message(events.Key("enter", "\r"))
        await pilot.pause(0.2)
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.session.messages[0].content == text
        assert app.query_one(ChatInput).text == ""


def test_write_reply_batches_text_and_stores_the_reply(tmp_path):
    """The reply thread hands the UI a few batches, not one message per token, and the
    history holds the reply; every outcome ends with exactly one Done."""
    from andon.app.chat.session import ChatSession
    from andon.app.engine.engine import Done, ModelOptions
    from andon.app.tui.engine_host import EngineHost
    from andon.app.tui.reply import TextBatch, write_reply

    history = History(tmp_path / "h.db")
    store = PresetStore(tmp_path / "p")
    session = ChatSession(history, history.create_chat("t", "balanced"), store)
    session.add_user("hi")
    host = EngineHost(lambda o: FakeEngine(o, script=["tok "] * 300), Path("/m.gguf"))
    host.load(host.options(session.params))
    reply = session.start_reply()
    updates = []
    write_reply(host, history, session, reply, lambda: False, updates.append)
    texts = [u.text for u in updates if isinstance(u, TextBatch)]
    assert "".join(texts) == "tok " * 300
    assert len(texts) < 30  # batched: 300 tokens in far fewer UI updates
    assert [type(u) for u in updates if not isinstance(u, TextBatch)] == [Done]
    stored = history.messages(session.chat.id)[-1]
    assert stored.content == "tok " * 300 and stored.status == "complete" and stored.stats["tokens_per_second"]

    failed = EngineHost(lambda o: (_ for _ in ()).throw(OSError("disk on fire")), Path("/m.gguf"))
    failed.load(ModelOptions(Path("/m.gguf")))
    updates.clear()
    write_reply(failed, history, session, session.start_reply(), lambda: False, updates.append)
    assert "disk on fire" in updates[0].text and isinstance(updates[-1], Done)
    assert history.messages(session.chat.id)[-1].status == "error"


@pytest.mark.model
async def test_inspector_panel_for_next_token_and_a_reply_token(tmp_path, model_path):
    from andon.app.engine.engine import Engine
    from andon.app.tui.widgets.panels import InspectorPanel

    app = AndonApp(lambda o: Engine(o), model_path, history=History(tmp_path / "h.db"),
                   store=PresetStore(tmp_path / "p"), preset="factual")  # fmt: skip
    async with app.run_test(size=(140, 50)) as pilot:
        await send(pilot, "What is the capital of Japan?")
        await pilot.press("f5")
        await app.workers.wait_for_complete()
        await pilot.pause()
        panel = app.query_one(InspectorPanel)
        text = str(app.query_one("#inspector-table").render())
        assert "Next token of a reply to the chat as it is" in text and "kept after each stage" in text
        reply = app.session.messages[-1]
        assert reply.stats["tokens"]  # the reply's tokens are recorded for the inspector
        options = panel.query_one("#inspector-tokens")
        assert options.option_count == 1 + len(reply.stats["tokens"])
        # choose the reply token that says "Tokyo": its candidates, and which one was chosen
        pieces = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        index = next(i for i, p in enumerate(pieces) if "Tok" in p)
        options.highlighted = index
        options.action_select()
        await app.workers.wait_for_complete()
        await pilot.pause()
        text = str(app.query_one("#inspector-table").render())
        assert f"Reply token {index - 1}" in text and "chosen:" in text and "Tok" in text


@pytest.fixture(autouse=True)
def _isolated_log(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # the log of unexpected errors


def notices(app) -> list[str]:
    return [str(n.render()) for n in app.query(".notice")]


async def test_an_unexpected_error_is_one_line_and_a_log_entry_and_the_app_goes_on(tmp_path, monkeypatch):
    from andon.app.tui.failures import log_file

    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "hello")
        monkeypatch.setattr(History, "to_markdown", lambda self, chat_id: 1 / 0)
        await pilot.press("ctrl+s")  # export: a handler fails
        await pilot.pause()
        line = notices(app)[-1]
        assert line.startswith("unexpected error: ZeroDivisionError: division by zero")
        assert f"details in {log_file()}" in line and str(tmp_path / "state") in line
        assert "Traceback" in log_file().read_text() and "to_markdown" in log_file().read_text()

        calls = []
        real_chats = History.chats

        def chats_once_broken(self):
            calls.append(1)
            if len(calls) == 1:
                raise KeyError("broken row")
            return real_chats(self)

        monkeypatch.setattr(History, "chats", chats_once_broken)
        await pilot.press("ctrl+n")  # a worker fails (the chat list's reload)
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert any("unexpected error: KeyError: 'broken row'" in n for n in notices(app))
        await send(pilot, "still here")  # the app goes on
        assert app.is_running and app.session.messages[-1].content == "Hello from the fake model."
    assert not app.return_code  # it did not end on an error


def test_no_handler_or_worker_can_close_the_app():
    """Every Textual handler and worker of andon's widgets (and of the screen's model controller,
    whose workers and callbacks run on the screen) is guarded; no worker exits on an error."""
    import importlib
    import inspect
    import pkgutil

    from andon.app import tui
    from andon.app.tui.failures import GUARD_MARK, is_handler
    from andon.app.tui.model_switch import ModelController
    from textual.message_pump import MessagePump

    names = [m.name for m in pkgutil.walk_packages(tui.__path__, "andon.app.tui.") if not m.ispkg]

    def exits_on_error(fn) -> bool | None:  # a @work method keeps exit_on_error in its closure
        code = getattr(fn, "__code__", None)
        if code is None or "exit_on_error" not in code.co_freevars:
            return None
        return fn.__closure__[code.co_freevars.index("exit_on_error")].cell_contents

    unguarded, exiting, seen = [], [], 0
    for module in map(importlib.import_module, names):
        for cls in vars(module).values():
            if not (inspect.isclass(cls) and issubclass(cls, MessagePump) and cls.__module__ == module.__name__):
                continue
            for name, member in vars(cls).items():
                worker = exits_on_error(member)
                if worker:
                    exiting.append(f"{cls.__name__}.{name}")
                if worker is not None or (is_handler(name, member) and name != "on_unexpected"):
                    seen += 1
                    if not getattr(member, GUARD_MARK, False):  # @work keeps the mark of what it wraps
                        unguarded.append(f"{cls.__name__}.{name}")
    run_by_the_screen = ("choose_model", "switch_model", "_load", "_progressed", "_loaded")  # workers, callbacks
    unguarded += [n for n in run_by_the_screen if not getattr(getattr(ModelController, n), GUARD_MARK, False)]
    assert seen > 30 and not unguarded and not exiting, (unguarded, exiting)


async def start_slow_reply(pilot, text: str = "tell me a long story") -> None:
    pilot.app.query_one(ChatInput).text = text
    await pilot.press("enter")
    await pilot.pause(0.3)
    assert pilot.app.chat_screen.view.replying


@pytest.mark.parametrize("action", ["ctrl+n", "f8", "/clear", "other chat", "ctrl+r", "ctrl+l", "f2"])
async def test_any_action_during_a_reply_is_safe(tmp_path, action):
    """Each used to close the app (NoMatches '.message-header'): the reply is stopped first and
    saved in its own chat, or the action waits for it."""
    app, engines = make_app(tmp_path, script=["word "] * 300, delay=0.01)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "first chat") if action == "other chat" else None
        first = app.session.chat
        if action == "other chat":
            await pilot.press("ctrl+n")
            await pilot.pause()
        streaming_chat = app.session.chat
        await start_slow_reply(pilot)
        if action == "/clear":
            app.query_one(ChatInput).text = "/clear"
            await pilot.press("enter")
        elif action == "other chat":
            app.chat_screen.chats.post_message(ChatList.Chosen(first))
        else:
            await pilot.press(action)
            if action == "f8":
                await pilot.pause()
                await pilot.press("y")
            if action == "f2":
                await pilot.pause()
                await pilot.press("escape")
        engines[-1].script = ["fine."]  # the replies after this one are short
        await pilot.pause(0.3)
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.is_running
        stored = app.history.messages(streaming_chat.id)
        if action in ("f8", "/clear"):
            assert stored == [] and not any(m.status == "streaming" for m in app.session.messages)
        else:
            assert stored[-1].role == "assistant" and stored[-1].status in ("stopped", "complete")
            assert stored[-1].content.startswith("word")
        await send(pilot, "and now?")  # the app still answers
        assert app.session.messages[-1].content == "fine."


async def test_a_busy_history_keeps_the_typed_message_and_a_reply_it_cannot_save_is_marked_failed(tmp_path):
    import sqlite3

    app, engines = make_app(tmp_path)
    app.history = app.chat_screen.history = History(tmp_path / "h.sqlite3", busy_timeout=0.05)
    other = sqlite3.connect(tmp_path / "h.sqlite3")  # another program (a backup tool, a second andon)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        other.execute("BEGIN IMMEDIATE")
        app.query_one(ChatInput).text = "a question I typed carefully"
        await pilot.press("enter")
        await pilot.pause()
        assert app.query_one(ChatInput).text == "a question I typed carefully"
        assert "not sent (your message is still in the box)" in notices(app)[-1] and "busy" in notices(app)[-1]
        other.rollback()

        engines[0].script, engines[0].delay = ["word "] * 200, 0.01
        await pilot.press("enter")  # sent now; the history becomes busy while the reply is written
        await pilot.pause(0.2)
        other.execute("BEGIN IMMEDIATE")
        await app.workers.wait_for_complete()
        await pilot.pause()
        other.rollback()
        box = list(app.query(MessageBox))[-1]
        assert box.message.status == "error" and "error" in box.header_text()
        assert box.body.source.startswith("word word")  # the text stays on screen
        assert any("the reply could not be saved" in n for n in notices(app))
        assert app.query_one(ChatInput).text == ""


async def test_a_chat_another_andon_writes_is_not_taken_over(tmp_path):
    import os

    other = History(tmp_path / "h.sqlite3")  # another andon, alive, writing its latest chat
    theirs = other.create_chat("their chat", "balanced")
    other.add_message(theirs.id, "user", "their question")
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.session.chat.id != theirs.id and app.session.messages == []  # a chat of its own
        app.chat_screen.chats.post_message(ChatList.Chosen(theirs))
        await pilot.pause()
        assert app.session.chat.id == theirs.id
        assert f"Another andon (process {os.getpid()}) is writing this chat: it is read-only here" in notices(app)[-1]
        app.query_one(ChatInput).text = "my words"
        await pilot.press("enter")
        await pilot.pause()
        assert app.query_one(ChatInput).text == "my words"  # refused, kept in the box
        assert [m.content for m in other.messages(theirs.id)] == ["their question"]
    other.close()
    app2, _ = make_app(tmp_path)  # once the other andon has ended, its chat can be written here
    async with app2.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app2.chat_screen.chats.post_message(ChatList.Chosen(theirs))
        await pilot.pause()
        await send(pilot, "my words")
        contents = [m.content for m in app2.session.messages]
        assert contents == ["their question", "my words", "Hello from the fake model."]
        assert not any("Another andon" in n for n in notices(app2))


async def test_a_history_busy_at_start_is_one_line_and_exit_status_2(tmp_path):
    import sqlite3

    app, _ = make_app(tmp_path)
    app.history = app.chat_screen.history = History(tmp_path / "h.sqlite3", busy_timeout=0.05)
    other = sqlite3.connect(tmp_path / "h.sqlite3")
    other.execute("BEGIN IMMEDIATE")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
    other.rollback()
    assert app.return_code == 2


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_ends_the_app_cleanly_and_saves_the_reply_as_stopped(tmp_path, signum):
    """In a real terminal (a pty): the alternate screen is left, mouse tracking off, the cursor
    shown; the reply being written is saved as stopped; the exit status is 128 + the signal."""
    import fcntl
    import os
    import select
    import struct
    import subprocess
    import sys
    import termios
    import time

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "XDG_STATE_HOME": str(tmp_path / "state")}
    code = f"from tests.app.fakes import run_fake_app; run_fake_app({str(tmp_path)!r})"
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=slave, stdout=slave, stderr=slave, env=env,
                            cwd=Path(__file__).parents[2], start_new_session=True)  # fmt: skip
    os.close(slave)
    screen = bytearray()

    def read_until(done, timeout: float) -> None:
        end = time.monotonic() + timeout
        while not done() and time.monotonic() < end:
            if select.select([master], [], [], 0.1)[0]:
                try:
                    screen.extend(os.read(master, 65536))
                except OSError:
                    return

    def replying() -> bool:  # the reply has been saved at least once
        import sqlite3

        if not (tmp_path / "h.sqlite3").exists():
            return False
        with sqlite3.connect(f"file:{tmp_path / 'h.sqlite3'}?mode=ro", uri=True) as db:
            return bool(db.execute("SELECT 1 FROM messages WHERE role='assistant' AND length(content) > 20").fetchall())

    try:
        read_until(lambda: b"fake-model" in screen, 30)
        os.write(master, b"hello\r")
        read_until(replying, 30)
        proc.send_signal(signum)
        read_until(lambda: proc.poll() is not None, 30)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert proc.wait() == 128 + signum
    tail = bytes(screen[screen.rfind(b"\x1b[?1049h") :])
    assert b"\x1b[?1049l" in tail and b"\x1b[?25h" in tail and b"\x1b[?1000l" in tail and b"\x1b[?1003l" in tail
    reply = History(tmp_path / "h.sqlite3").messages(1)[-1]
    assert reply.status == "stopped" and reply.content.startswith("word word")


async def test_clear_while_the_model_still_evaluates_the_prompt_then_send_again(tmp_path, monkeypatch):
    """A reply in its prompt evaluation sees a stop only when that ends: /clear does not wait
    for it forever, and the next message is taken (its reply waits for the model)."""
    import time

    from andon.app.tui.widgets import chat_view

    class SlowPrompt(FakeEngine):
        def stream(self, messages, params, cancelled=None, chain=None):
            time.sleep(1.0)  # prompt evaluation: no stop is seen in here
            yield from super().stream(messages, params, cancelled, chain)

    monkeypatch.setattr(chat_view, "STOP_WAIT_S", 0.2)
    app = AndonApp(lambda o: SlowPrompt(o), Path("/m.gguf"), history=History(tmp_path / "h.db"),
                   store=PresetStore(tmp_path / "p"))  # fmt: skip
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.query_one(ChatInput).text = "first"
        await pilot.press("enter")
        await pilot.pause(0.1)
        app.query_one(ChatInput).text = "/clear"
        await pilot.press("enter")
        await pilot.pause()
        await send(pilot, "second")
        assert app.query_one(ChatInput).text == ""
        contents = [(m.role, m.content, m.status) for m in app.history.messages(app.session.chat.id)]
        assert contents == [("user", "second", "complete"), ("assistant", "Hello from the fake model.", "complete")]
        assert [b.message.content for b in app.query(MessageBox)] == ["second", "Hello from the fake model."]


async def test_ctrl_c_stops_a_reply_and_does_not_quit(tmp_path):
    app, _ = make_app(tmp_path, script=["word "] * 200, delay=0.01)
    async with app.run_test(size=SIZE) as pilot:
        await start_slow_reply(pilot)
        await pilot.press("ctrl+c")
        await app.workers.wait_for_complete()
        await pilot.pause()
        reply = app.session.messages[-1]
        assert reply.status == "stopped" and len(reply.content.split()) < 200
        await pilot.press("ctrl+c")  # no reply: the key is not a quit
        await pilot.pause()
        assert app.is_running


async def test_enter_right_after_launch_sends(tmp_path):
    """In a terminal, keys typed while andon started were lost (tmux, 0.6 s after launch): they are
    kept until the chat screen is ready; Enter typed before raw mode arrives as a newline (ctrl+j)."""
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()  # the first frame is drawn
        app._early_keys, app._first_frame_at = [], None  # as while starting, before raw mode
        await pilot.press(*"early", "ctrl+j")
        assert app.query_one(ChatInput).text == "" and not app.session.messages
        app.input_ready()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert [m.content for m in app.session.messages] == ["early", "Hello from the fake model."]
        await pilot.press(*"hi there", "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert [m.content for m in app.session.messages][-2:] == ["hi there", "Hello from the fake model."]


async def test_ctrl_n_reuses_an_empty_chat(tmp_path):
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+n")
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert len(app.history.chats()) == 1
        await send(pilot, "first")
        await pilot.press("ctrl+n")
        await pilot.pause()
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert len(app.history.chats()) == 2


async def test_a_multi_line_message_shows_as_written_and_a_cut_reply_says_so(tmp_path):
    app, _ = make_app(tmp_path, script=["one "] * 20)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "/set parameter num_predict 5")
        await send(pilot, "line one\nline two")
        user, reply = list(app.query(MessageBox))
        assert "line one\nline two" in str(user.body.render())
        assert "cut at num_predict 5" in reply.header_text()
        assert app.session.messages[-1].stats["finish_reason"] == "length"


async def test_clear_keeps_a_copy_and_says_where(tmp_path):
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "remember this")
        title = app.session.chat.title
        await send(pilot, "/clear")
        assert app.session.messages == []
        assert f"kept in the chat '{title} (before /clear)'" in notices(app)[-1]
        kept = next(c for c in app.history.chats() if c.title == f"{title} (before /clear)")
        assert [m.content for m in app.history.messages(kept.id)] == ["remember this", "Hello from the fake model."]


async def test_a_new_chat_says_what_to_do_and_presets_say_what_they_are_for(tmp_path):
    from textual.widgets import OptionList

    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        welcome = notices(app)[0]
        assert "preset balanced — The everyday default for chat." in welcome
        assert "model fake" in welcome and "/help" in welcome and "Ctrl+N" in welcome and "F4" in welcome
        assert "Enter sends" in app.query_one(ChatInput).placeholder
        await pilot.press("f3")
        await pilot.pause()
        picker = app.screen.query_one(OptionList)
        assert "For knowledge questions" in str(picker.get_option("factual").prompt)
        await pilot.press("escape")
        await send(pilot, "hi")
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert "New chat · model fake-model" in notices(app)[0]  # the loaded model's name


async def test_parameter_panel_follows_the_chain_keeps_focus_and_says_what_changed(tmp_path):
    from andon.app.tui.widgets.panels import ParamRow
    from andon.presets.parameters import describe
    from textual.widgets import Label, Static

    app, _ = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f4")  # opens the panel and focuses its filter box
        await pilot.pause()
        groups = [str(g.render()) for g in app.query(".param-group")]
        samplers = app.session.params.samplers
        assert groups[: len(samplers)] == [f"{i}. {s}" for i, s in enumerate(samplers, 1)]
        assert groups[len(samplers)] == "chain: other settings" and "generation" in groups
        rows = [r.param for r in app.query(ParamRow)]
        assert rows[:4] == ["repeat_last_n", "repeat_penalty", "presence_penalty", "frequency_penalty"]
        assert sorted(rows) == sorted(app.session.params.to_plain())  # each parameter once
        assert app.focused is app.query_one("#parameter-filter")
        await pilot.press("down")  # the first field
        assert app.focused is app.query_one("#param-repeat_last_n")
        await pilot.press("tab")
        await pilot.pause()
        assert describe("repeat_penalty") in str(app.query_one("#param-help", Static).render())
        field = app.query_one("#param-temperature")
        field.focus()
        field.value = "0.7"
        await pilot.press("enter")
        await pilot.pause()
        assert app.session.params.temperature == 0.7
        assert app.focused is app.query_one("#param-temperature")  # focus stays where it was
        changes = str(app.query_one("#param-changes", Static).render())
        assert "temperature 0.7, preset has 0.8" in changes
        for row in app.query(ParamRow):  # full names, no clipping, at 80 columns
            label = row.query_one(Label)
            assert label.size.width >= len(row.param), row.param
        assert app.query_one("#parameters").region.right <= 80
        await pilot.press("f4")  # from inside the panel: closes it
        await pilot.pause()
        assert app.query_one("#parameters").has_class("hidden") and app.focused is app.query_one(ChatInput)


async def test_ollama_habits_triple_quotes_verbose_show_and_load(tmp_path):
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press(*'"""first line')
        await pilot.press("enter")  # inside """: a new line, nothing sent
        await pilot.press(*"second", *'"""', "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.session.messages[0].content == "first line\nsecond"
        await send(pilot, "/set verbose")
        await send(pilot, "again")
        assert "tokens/s" in notices(app)[-1] and "finish reason: stop" in notices(app)[-1]
        await send(pilot, "/show modelfile")
        assert "PARAMETER top_p 0.95" in notices(app)[-1] and "FROM " in notices(app)[-1]
        await send(pilot, "/load factual")
        assert app.session.preset.name == "factual"
        await send(pilot, "/load no-such-model-or-preset")
        assert notices(app)[-1].startswith("error: 'no-such-model-or-preset' is not a preset (balanced,")
        assert app.session.preset.name == "factual"
        await send(pilot, "/?")
        assert "/show modelfile" in notices(app)[-1]


async def test_status_bar_context_moves_while_streaming_and_no_rate_is_carried_to_another_chat(tmp_path):
    app, _ = make_app(tmp_path, script=["word "] * 60, delay=0.02)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "first")
        after_first = app.chat_screen.context_used
        assert after_first > 0 and app.chat_screen.tokens_per_second
        first = app.session.chat
        await start_slow_reply(pilot)
        await pilot.pause(0.4)
        assert app.chat_screen.context_used > after_first  # moves before the reply ends
        await app.workers.wait_for_complete()
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert "– tok/s" in str(app.query_one(StatusBar).render())  # a new chat has no rate yet
        app.chat_screen.chats.post_message(ChatList.Chosen(first))
        await pilot.pause()
        await pilot.pause()
        assert app.chat_screen.context_used == app.session.last("assistant").stats["prompt_tokens"] + 60


def test_f10_finds_the_code_block_a_stopped_reply_left_open():
    """F10 and F7 find the same blocks: a reply stopped mid-code still has its code to copy."""
    from andon.app.tui.widgets.message_box import last_code_block

    stopped = "Here:\n```python\ndef add(a, b):\n    return a + b\n"
    assert last_code_block(stopped) == "def add(a, b):\n    return a + b\n"
    assert last_code_block("a\n```\nx = 1\n```\nthen\n~~~js\ny()\n~~~\n") == "y()\n"
    assert last_code_block("no code here") is None
