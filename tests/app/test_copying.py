"""What the Copy… picker (F7) offers: every message, and every code block of the replies."""

from __future__ import annotations

from andon.app.chat.history import StoredMessage
from andon.app.tui.copying import copy_choices

REPLY = "```python\nprint(1)\n```\nor with tildes:\n~~~\nx = 2\n~~~\n\n    indented()\n\n```js\nunclosed("


def test_every_message_and_every_code_block_of_a_reply_in_order():
    messages = [
        StoredMessage(1, "user", "Show me code\n```sh\nls\n```"),
        StoredMessage(2, "assistant", REPLY),
        StoredMessage(3, "assistant", "", "stopped"),  # a reply stopped before any text: nothing to copy
    ]
    choices = copy_choices(messages)
    assert [(c.kind, c.label, c.first_line) for c in choices] == [
        ("message", "You", "Show me code"),  # a user's fences are not offered apart
        ("reply", "Assistant", "print(1)"),  # a reply opening with a fence shows its first real line
        ("code", "python", "print(1)"),
        ("code", "code", "x = 2"),
        ("code", "code", "indented()"),
        ("code", "js", "unclosed("),  # a fence the reply never closed (stopped mid-block)
    ]
    assert [c.text for c in choices[2:]] == ["print(1)\n", "x = 2\n", "indented()\n", "unclosed("]
    assert choices[1].text == REPLY


def test_a_long_first_line_is_cut_with_an_ellipsis():
    (choice,) = copy_choices([StoredMessage(1, "user", "word " * 40)])
    assert len(choice.first_line) == 70 and choice.first_line.endswith("…")
