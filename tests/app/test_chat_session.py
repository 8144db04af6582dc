"""A chat's settings in the app: every refusal is one line, and nothing changes when one happens."""

from __future__ import annotations

import pytest
from andon.app.chat.history import History
from andon.app.chat.session import ChatSession
from andon.presets.store import PresetError, PresetStore


@pytest.fixture
def session(tmp_path):
    history = History(tmp_path / "history.sqlite3")
    chat = history.create_chat("New chat", "creative")
    yield ChatSession(history, chat, PresetStore(tmp_path / "config" / "presets"))
    history.close()


@pytest.mark.parametrize("name", ["../x", "a/b", "my preset", "x\n"])
def test_save_as_preset_refuses_a_name_with_a_path_in_one_line(session, name, tmp_path):
    with pytest.raises(PresetError) as err:
        session.save_as_preset(name)
    assert "\n" not in str(err.value) and "is not allowed" in str(err.value)
    assert not (tmp_path / "x.toml").exists() and not (tmp_path / "config").exists()


def test_save_as_preset_where_the_config_folder_is_a_file(tmp_path):
    (tmp_path / "config").write_text("a file")
    history = History(tmp_path / "history.sqlite3")
    chat = history.create_chat("c", "balanced")
    session = ChatSession(history, chat, PresetStore(tmp_path / "config" / "presets"))
    with pytest.raises(PresetError, match="is a file, not a folder"):
        session.save_as_preset("mine")
    (tmp_path / "config").unlink()
    assert session.save_as_preset("mine").name == "mine"  # once the obstacle is gone
    assert session.store.load("mine").parameters == session.params


def test_settings_are_saved_with_the_chat(session, tmp_path):
    session.set_parameters({"temperature": 0.3})
    session.set_system("Answer in French.")
    session.switch_preset("factual")  # keeps this chat's changes
    again = ChatSession(session.history, session.history.chat(session.chat.id), session.store)
    assert again.preset.name == "factual" and again.params.temperature == 0.3
    assert again.system == "Answer in French." and again.changes == {"temperature": 0.3}
    session.switch_preset("creative", keep_changes=False)
    again = ChatSession(session.history, session.history.chat(session.chat.id), session.store)
    assert again.changes == {} and again.system == again.preset.system


def test_first_message_titles_the_chat(session):
    session.add_user("  What is   the capital of Japan and why is it that city rather than Kyoto?")
    # whole, on one line: the chat list cuts it where its width ends (not at a count of characters)
    assert session.chat.title == "What is the capital of Japan and why is it that city rather than Kyoto?"
    assert session.history.chat(session.chat.id).title == session.chat.title
    session.add_user("second")
    assert session.history.chat(session.chat.id).title == session.chat.title


def test_the_inspector_reads_the_message_box_as_enter_would_send_it():
    """F6 inspects the message Enter sends: a closed multi-line input without its quotes and edge newlines."""
    from andon.app.chat.session import typed_message
    from andon.app.study.inspector import as_message

    closed = '"""\nline one\n  line two\n"""'
    assert typed_message(closed) == ("line one\n  line two", True)
    assert as_message(closed) == "line one\n  line two"
    assert typed_message('"""still open') == ("still open", False)  # Enter adds a line
    assert as_message("  /set x") is None and as_message("   ") is None
