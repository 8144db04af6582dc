"""The app's small widgets: the message box, one message, a line from andon, the status bar.

Each owns its state: a MessageBox opens, feeds and closes its own Markdown stream; the StatusBar
shows the StatusFields that the chat screen holds and binds down (`data_bind`), so nothing tells it to update.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from andon.app.chat.history import History, HistoryError, StoredMessage
from andon.app.chat.session import typed_message
from andon.app.control_text import visible
from andon.app.tui.copying import code_blocks
from andon.app.tui.failures import guarded
from andon.app.tui.keys import EARLIER, LATER, NEWLINE, QUIT, SCROLL, SEND
from andon.app.tui.widgets.feed import MarkdownFeed, ModelMarkdown
from andon.app.tui.widgets.thoughts import Thoughts
from andon.app.tui.widgets.typed_document import TypedDocument
from andon.app.tui.widgets.wrapping import FieldsLine, Wrapped, hang
from rich.cells import cell_len
from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.dom import DOMNode
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Button, Markdown, Static, TextArea
from textual.widgets.text_area import DocumentNavigator, WrappedDocument

WHO = {"user": "You", "assistant": "Assistant", "system": "System"}
ENDING = {"stopped": " · stopped", "error": " · error", "streaming": " · …"}
STOPPED_EMPTY = "*(stopped before any text)*"


def preset_summary(description: str) -> str:
    """What a preset is for: the first sentence of its description, on one line."""
    text = " ".join(description.split())
    end = text.find(". ")
    return text[: end + 1] if end >= 0 else text


def last_code_block(text: str) -> str | None:
    """The last code block of a Markdown text (also one a stopped reply left unclosed), as F7 finds them."""
    blocks = code_blocks(text)
    return blocks[-1][1] if blocks else None


def earlier_messages(history: History, chat_id: int) -> Iterator[str]:
    """What the user sent, newest first, as a shell's history: the open chat's messages, then the
    other chats' (the most recently used first), each chat read only when Up gets that far."""
    for chat in [chat_id, *(c.id for c in history.chats() if c.id != chat_id)]:
        sent = [m.content for m in history.messages(chat) if m.role == "user"]
        yield from reversed(sent)


class Recall:
    """The message box's Up and Down through earlier messages: each one once (its latest use), read
    as Up asks for more; a recalled message edited in the box stays as it was in the history."""

    def __init__(self, source: Callable[[], Iterable[str]]) -> None:
        self._source = source
        self._ahead: Iterator[str] = iter(())
        self.entries: list[str] = []  # recalled so far, newest first
        self.at = -1  # the entry in the box; -1: the empty box

    def restart(self) -> None:
        """Back to the empty box (a message was sent): the next Up reads the history afresh."""
        self.at = -1

    def step(self, older: bool) -> str | None:
        """The next entry, older or newer (newer than the newest: the empty box, ""); None: no more."""
        if not older:
            if self.at < 0:
                return None
            self.at -= 1
            return self.entries[self.at] if self.at >= 0 else ""
        if self.at < 0:  # from the empty box: read afresh (a message sent, another chat open since)
            self._ahead, self.entries = iter(self._source()), []
        while self.at + 1 >= len(self.entries):
            entry = next(self._ahead, None)
            if entry is None:
                return None
            if entry.strip() and entry not in self.entries:
                self.entries.append(entry)
        self.at += 1
        return self.entries[self.at]

    def shown(self, text: str) -> bool:
        """Whether the box shows the recalled entry (or is empty), unedited: Up and Down recall then."""
        return text == (self.entries[self.at] if self.at >= 0 else "")


class ChatInput(TextArea):
    """The message box: Enter sends, Ctrl+J (or Shift+Enter where the terminal tells it) adds a line,
    Up on an empty box recalls earlier messages (Down comes back), Ctrl+D on an empty box quits,
    PgUp/PgDn and Ctrl+Home/End scroll the conversation (`scroll`, given the conversation's method's name).

    Its text is kept exactly as typed or pasted, control characters drawn visibly (TypedDocument).
    """

    @dataclass
    class Submitted(Message):
        text: str

    def __init__(
        self,
        *,
        earlier: Callable[[], Iterable[str]] = lambda: (),
        scroll: Callable[[str], None] = lambda method: None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.recall = Recall(earlier)
        self._scroll = scroll

    @guarded
    async def on_key(self, event: events.Key) -> None:
        """The box's own keys (keys.py) are handled here, in the box's own queue, so they keep
        their place among the keys typed around them (a binding runs when the key reaches the
        app: after the keys typed next, which split the text)."""
        if await self._own_key(event.key):
            event.prevent_default()
            event.stop()

    async def _own_key(self, key: str) -> bool:
        """Do what the box does with `key`; whether it did anything."""
        if key == SEND:
            self.action_submit()
        elif key in NEWLINE:
            self.insert("\n")
        elif key == QUIT and not self.text:
            await self.app.run_action("quit")  # as Ctrl+Q: the reply being written is saved as stopped
        elif key in (EARLIER, LATER):
            return self._recall(older=key == EARLIER)
        elif key in SCROLL and not (key.startswith("page") and self.max_scroll_y > 0):  # a tall text: its own
            self._scroll(SCROLL[key])
        else:
            return False
        return True

    def _recall(self, older: bool) -> bool:
        """Up on the first line (Down on the last) of an empty box or of a message it recalled,
        unedited: the message before (after) it. Elsewhere the cursor moves, as in any text."""
        navigator, cursor = self.navigator, self.cursor_location
        edge = navigator.is_first_wrapped_line(cursor) if older else navigator.is_last_wrapped_line(cursor)
        if not edge or not self.recall.shown(self.text):
            return False
        try:
            entry = self.recall.step(older)
        except HistoryError as exc:  # the history could not be read: said, nothing changes
            self.notify(str(exc), title="Earlier messages", severity="warning", markup=False)
            return True
        if entry is not None:
            self.text = entry
            self.move_cursor(self.document.end)
        return True

    @guarded
    def action_submit(self) -> None:
        text, complete = typed_message(self.text)
        if not complete:  # Ollama's multi-line input: Enter adds lines until the closing """
            self.insert("\n")
            return
        if text.strip():
            self.post_message(self.Submitted(text))
            self.clear()
            self.recall.restart()

    def _set_document(self, text: str, language: str | None) -> None:
        """The text area's document is a TypedDocument (Textual builds a Document here; there is no
        other hook for it), measured, wrapped and navigated as Textual does for its own."""
        super()._set_document("", None)
        self.document = TypedDocument(text)
        self.wrapped_document = WrappedDocument(self.document, tab_width=self.indent_width)
        self.navigator = DocumentNavigator(self.wrapped_document)
        self._rewrap_and_refresh_virtual_size()

    def restore(self, text: str) -> None:
        """Put back a message that was not sent, before anything typed since."""
        self.text = text + self.text
        self.move_cursor(self.document.end)


class MessageBox(Vertical):
    """One message: a header (who, and how a reply ended) and its Markdown, streamed while written.

    A reasoning model's thinking is shown apart, folded above the answer (Thoughts).
    """

    def __init__(self, message: StoredMessage, *, json_reply: bool = False) -> None:
        """`json_reply`: the reply is asked for in JSON (format json or a schema): it streams as JSON."""
        super().__init__(classes=f"message {message.role}")
        self.message = message
        self.progress = ""  # a search's progress while it has chosen nothing (e.g. "4 beams · 37 tokens")
        self.header = FieldsLine(self.header_text(), classes="message-header")  # at 80 columns: broken between fields
        # what the user typed is shown as written (Markdown would join its lines), its control
        # characters visible (a pasted escape sequence is shown, not obeyed); replies are Markdown
        self.body: Markdown | Static = (
            Static(visible(message.content), classes="user-text", markup=False)
            if message.role == "user"
            else ModelMarkdown(self.shown_text(), json_reply=json_reply)  # a reply: its control characters shown
        )
        self._feed = MarkdownFeed(self.body) if isinstance(self.body, Markdown) else None  # the reply's answer
        self.thoughts: Thoughts | None = Thoughts(message.thinking) if message.thinking else None

    def compose(self) -> ComposeResult:
        yield self.header
        if self.thoughts is not None:
            yield self.thoughts
        yield self.body

    def shown_text(self) -> str:
        """A reply's text as shown: one stopped before any text says so (oterm drops it; this keeps
        it, stored as it is, for Ctrl+R to write it again), rather than being an empty message."""
        message = self.message
        empty = message.status == "stopped" and not message.content.strip() and not message.thinking
        return STOPPED_EMPTY if empty else message.content

    def header_text(self) -> str:
        note = f" · version {self.message.version}/{self.message.versions}" if self.message.versions > 1 else ""
        note += ENDING.get(self.message.status, "")
        note += f" · {self.progress}" if self.progress else ""
        stats = self.message.stats
        if stats.get("search"):
            note += f" · best of {stats['search']}"
        if stats.get("tokens_per_second"):
            note += f" · {stats['completion_tokens']} tokens, {stats['tokens_per_second']:.1f} tok/s"
        if stats.get("finish_reason") == "length":
            cut_at = stats.get("num_predict", stats.get("completion_tokens", "?"))  # a continued reply: its last run's
            note += f" · cut at num_predict {cut_at} (finish reason: length)"
        return WHO.get(self.message.role, self.message.role) + note

    async def append(self, text: str, thinking: str = "") -> None:
        """Add streamed text (and thinking); Textual's stream batches it to the frame rate."""
        if not self.is_attached or self._feed is None:  # no feed: a user's message, shown as typed
            return
        if thinking:
            if self.thoughts is None:
                self.thoughts = Thoughts(streaming=True)
                await self.mount(self.thoughts, before=self.body)
            await self.thoughts.write(thinking)
        if not text:
            return
        if not self._feed.started and self.thoughts is not None:
            self.thoughts.fold()  # the answer begins
        await self._feed.write(text)

    def show_progress(self, progress: str) -> None:
        """A search's progress in the header, until the reply ends."""
        if progress != self.progress:
            self.progress = progress
            self.header.update(self.header_text())

    async def finish(self) -> None:
        """The reply ended: close the stream, render the stored text once, say how it ended."""
        self.progress = ""
        await self._close_feed()
        if self.is_attached:
            if isinstance(self.body, Markdown):
                if self.message.thinking and self.thoughts is None:
                    self.thoughts = Thoughts()
                    await self.mount(self.thoughts, before=self.body)
                if self.thoughts is not None:
                    await self.thoughts.done(self.message.thinking, answered=bool(self.message.content))
                await self.body.update(self.shown_text())
            else:
                self.body.update(visible(self.message.content))
            self.header.update(self.header_text())

    async def _close_feed(self) -> None:
        if self._feed is not None:
            await self._feed.close()

    @guarded
    async def on_unmount(self) -> None:
        await self._close_feed()


class NoticeLine(Static):
    """A line from andon itself in the conversation (command output, errors)."""

    def __init__(self, text: str, error: bool = False) -> None:
        super().__init__(Wrapped(text, hang), classes="notice error" if error else "notice", markup=False)

    def set_text(self, text: str) -> None:
        """Say something else in its place (an empty chat's welcome after a switch)."""
        self.update(Wrapped(text, hang))


class EarlierMessages(Button):
    """Stands for the messages not mounted above the conversation; pressing it shows more."""

    def __init__(self, hidden: int) -> None:
        super().__init__(self.label_for(hidden), id="earlier", compact=True)

    @staticmethod
    def label_for(hidden: int) -> str:
        return f"↑ {hidden} earlier message{'s' if hidden != 1 else ''}: show more"


class StatusFields(DOMNode):
    """What the status bar shows, each field declared once, here: the chat screen holds them (the
    model's part follows its model, the rest the open chat's ChatView) and binds them down to its
    StatusBar (`data_bind(*StatusFields.bound())`), so nothing tells the bar to update.

    A class to inherit last (`class StatusBar(Widget, StatusFields)`): the node's own class comes
    first, for its styles.
    """

    model_name = reactive("")
    preset_label = reactive("")
    tokens_per_second: reactive[float | None] = reactive(None)
    context_used = reactive(0)
    num_ctx = reactive(0)
    drafts: reactive[tuple[int, int]] = reactive((0, 0))  # the last reply's (accepted, drafted) tokens
    model_note = reactive("")  # the model: loading, or not loaded
    chat_note = reactive("")  # the chat: a reply waiting for the model

    @classmethod
    def bound(cls) -> list[reactive[Any]]:
        """The fields, for `data_bind`."""
        return [value for value in vars(StatusFields).values() if isinstance(value, reactive)]


class StatusBar(Widget, StatusFields):
    """model │ preset │ tokens per second │ drafts accepted │ context used of num_ctx │ a note while
    something waits. The drafts (accepted, drafted) are the last reply's, shown where it verified any."""

    def render(self) -> Content:
        """The whole line where it fits; else shorter words, then a shorter model name (at 80 columns
        the context count, the drafts and a loading model's progress must still show)."""
        width = self.content_size.width or 10**6
        line = " │ ".join(self._parts(short=False))
        if cell_len(line) > width:
            parts = self._parts(short=True)
            over = cell_len(" │ ".join(parts)) - width
            if over > 0:
                name = parts[0]
                parts[0] = name[: max(4, len(name) - over - 1)] + "…"
            line = " │ ".join(parts)
        return Content(line)

    def _parts(self, short: bool) -> list[str]:
        rate = f"{self.tokens_per_second:.1f} tok/s" if self.tokens_per_second else "– tok/s"
        preset = self.preset_label if short else f"preset: {self.preset_label}"
        context = f"{'ctx' if short else 'context'} {self.context_used}/{self.num_ctx}"
        parts = [self.model_name, preset, rate, context]
        accepted, drafted = self.drafts
        if drafted:
            parts.insert(3, f"draft {accepted}/{drafted}" + ("" if short else " accepted"))
        note = self.chat_note or self.model_note
        if note:
            parts.append(note)
        return parts


__all__ = [
    "ChatInput",
    "EarlierMessages",
    "MessageBox",
    "NoticeLine",
    "Recall",
    "StatusBar",
    "StatusFields",
    "earlier_messages",
    "last_code_block",
    "preset_summary",
]
