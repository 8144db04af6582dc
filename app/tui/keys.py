"""The chat screen's keys, each declared once: its Binding (key, action, the footer's word, what it
does as its tooltip, id), its title in the command palette and its words in /help.

The app's BINDINGS, the palette's entries for the actions, /help's key section and the welcome
text's hints are all written from KEYS: a key added here is in all of them (tests/app/test_keys.py).
The order is the footer's (for the keys it shows) and /help's.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding, BindingType

# the message box's placeholder: the first keys a newcomer needs (the chat screen's and the first frame's)
PLACEHOLDER = "Type a message · Enter sends · Ctrl+J new line · /? commands · Ctrl+P all actions"

NAMES = {"escape": "Esc", "enter": "Enter", "tab": "Tab", "up": "Up", "down": "Down", "left": "Left", "right": "Right",
         "pageup": "PgUp", "pagedown": "PgDn", "home": "Home", "end": "End"}  # fmt: skip


@dataclass(frozen=True)
class Key:
    """One key of the chat screen: its binding, its palette title and what /help says it does.

    A key with no title and no help is another key for the action of the key before it (Ctrl+C
    stops a reply as Esc does): /help names them together, the palette names the first.
    """

    binding: Binding
    title: str = ""  # its entry in the command palette
    help: str = ""  # /help's words after the key

    @property
    def action(self) -> str:
        """The chat screen's action (the binding's, without its "screen." namespace)."""
        return self.binding.action.removeprefix("screen.")


def _key(
    key: str, action: str, footer: str, does: str, title: str, help: str, id: str, *, show: bool = True,
    priority: bool = False,
) -> Key:  # fmt: skip
    """A key of the chat screen's `action`: `footer` is the footer's (and Textual's keys panel's)
    word for it, `does` the palette's (and the footer's tooltip)."""
    binding = Binding(key, f"screen.{action}", footer, show=show, priority=priority, tooltip=does, id=id)
    return Key(binding, title, help)


# the footer shows the keys marked shown, in this order; the rest are in /help and Ctrl+P (Keys)
KEYS = (
    _key("escape", "stop", "Stop", "Stop the reply being written (what was written stays)", "Stop",
         "stop the reply", "reply.stop"),
    # Ctrl+C stops a reply being written; otherwise it does what it does (copy, the quit hint)
    Key(Binding("ctrl+c", "screen.stop_reply", "Stop", show=False, priority=True, id="reply.stop_ctrl_c")),
    _key("ctrl+r", "regenerate", "Regenerate", "Write the last reply again", "Regenerate", "regenerate",
         "reply.regenerate", show=False),
    _key("ctrl+g", "continue_reply", "Continue", "Continue the last reply where it stopped or was cut",
         "Continue reply", "continue reply", "reply.continue", show=False),
    # priority, only while the message box is empty: there it moves a word (the screen's check_action)
    _key("ctrl+left", "previous_version", "Version ←", "Show the last reply's previous version",
         "Previous version of the reply", "previous version", "reply.version_previous", show=False, priority=True),
    _key("ctrl+right", "next_version", "Version →", "Show the last reply's next version",
         "Next version of the reply", "next version", "reply.version_next", show=False, priority=True),
    _key("ctrl+l", "edit_last", "Edit last", "Edit the last message and send it again", "Edit last message",
         "edit last", "message.edit", show=False),
    _key("ctrl+t", "next_preset", "Next preset", "Switch this chat to the next preset", "Next preset",
         "next preset", "preset.next", show=False),
    _key("f3", "pick_preset", "Presets", "Choose this chat's preset", "Pick a preset", "pick a preset",
         "preset.pick"),
    # F4 is priority: it runs as it arrives, so the letters typed right after it go to the panel's filter
    _key("f4", "toggle_parameters", "Parameters",
         "The parameter panel: every sampling and model setting of this chat", "Parameters", "parameters",
         "parameters.toggle", priority=True),
    _key("ctrl+o", "pick_model", "Model", "Choose this chat's model (loads it; also 'Model: NAME')",
         "Pick a model", "pick a model", "model.pick"),
    _key("f5", "toggle_inspector", "Inspector", "Next-token candidates through the sampler chain",
         "Inspector", "inspector", "inspector.toggle", show=False),
    # F6 is priority: the message box (a TextArea) would take it as "select the line"
    _key("f6", "inspect_input", "Inspect input", "The inspector on the reply to the input box's text",
         "Inspect the message being typed", "inspect the input", "inspector.input", show=False, priority=True),
    _key("ctrl+n", "new_chat", "New chat", "Start a new chat", "New chat", "new chat", "chat.new"),
    _key("f9", "copy_reply", "Copy reply", "Copy the last reply", "Copy reply", "copy reply", "reply.copy"),
    _key("f10", "copy_code", "Copy code", "Copy the last code block of the last reply", "Copy code block",
         "copy code block", "reply.copy_code", show=False),
    # priority: the message box (a TextArea) would take F7 as "select all"
    _key("f7", "copy_any", "Copy…", "Pick any message or code block of this chat to copy", "Copy…",
         "copy any message or code block", "copy.pick", show=False, priority=True),
    _key("f2", "rename_chat", "Rename", "Give the open chat another title", "Rename chat", "rename",
         "chat.rename", show=False),
    _key("f8", "delete_chat", "Delete chat", "Delete the open chat (asks first)", "Delete chat", "delete",
         "chat.delete", show=False),
    _key("ctrl+s", "export_chat", "Export", "Write the open chat as Markdown in andon's data folder",
         "Export chat", "export", "chat.export", show=False),
    _key("ctrl+f", "search_chats", "Search chats", "Search the chats' titles and messages", "Search chats",
         "search chats", "chats.search", show=False),
    _key("ctrl+b", "toggle_chat_list", "Chat list", "The list of saved chats on the left",
         "Hide or show the chat list", "hide/show the chat list", "chats.toggle", show=False),
    _key("f1", "help", "Help", "The keys and the slash commands, as /help", "Help", "this help", "help",
         show=False),
)  # fmt: skip

# the palette's entries for the actions that have no key: (title, what it does, action)
UNBOUND = (
    ("Chain order", "The sampler stages in the order they run (Shift+Up/Down, Space)", "edit_chain_order"),
    ("Sweep parameters…", "N replies for each combination of two parameters' values, as heat maps", "sweep"),
)

# The message box's own keys (ChatInput). It handles them as they arrive, among the characters
# typed around them: a binding runs when its key reaches the app, after the keys typed next are in
# the box (Ctrl+J then "cd" in one write gave "cd" and then the new line).
SEND = "enter"
NEWLINE = ("ctrl+j", "shift+enter")
EARLIER, LATER = "up", "down"  # on an empty box (or one showing what Up recalled): earlier messages
QUIT = "ctrl+d"  # on an empty box, as in a shell and `ollama run`; else it deletes a character
# the keys that scroll the conversation from the box (as in oterm and LM Studio): the conversation's
# method for each. PgUp and PgDn stay the box's while its own text is taller than it (it scrolls then).
SCROLL = {"pageup": "scroll_page_up", "pagedown": "scroll_page_down", "ctrl+home": "scroll_home",
          "ctrl+end": "scroll_end"}  # fmt: skip

# /help's keys that are not the chat screen's: the message box's and Textual's (keys, words)
BEFORE = ((SEND, "send"), (NEWLINE[0], "new line"), (f"{EARLIER},{LATER}", "earlier messages"),
          ("pageup,pagedown", "scroll the chat"), ("ctrl+home,ctrl+end", "its top/end"))  # fmt: skip
AFTER = (("ctrl+p", "command palette (every action)"), ("ctrl+q", "quit"), (QUIT, "quit (on an empty box)"))

# The parameter panel's keys (its BINDINGS; its title names them). Up and Down leave a list or a
# field of several lines at its first or last line (inside, they move in it).
PANEL = (
    Binding("up", "field(-1)", "Previous", show=False, tooltip="The parameter above", id="parameters.previous"),
    Binding("down", "field(1)", "Next", show=False, tooltip="The parameter below", id="parameters.next"),
    Binding("escape", "clear_filter", "Clear filter", show=False, tooltip="Every parameter again",
            id="parameters.clear_filter"),
)  # fmt: skip

# the welcome text's hints: (the keys' ids, what they do)
WELCOME = (
    (("preset.pick", "preset.next"), "presets"),
    (("parameters.toggle",), "parameters"),
    (("chat.new",), "new chat"),
    (("reply.copy",), "copy the reply"),
)
WELCOME_AFTER = "Ctrl+P: every action · /? or /help: commands and keys · Ctrl+Q: quit"

HELP_STOPS = (2, 22, 44)  # /help's key columns start here (a longer entry takes the next that fits)
HELP_GAP = 3  # after an entry longer than the last column
HELP_WIDTH = 76  # /help's lines fit the conversation of an 80-column terminal


def key_name(keys: str) -> str:
    """A binding's keys as /help writes them: "ctrl+n" is "Ctrl+N", "f9" is "F9", "escape" is "Esc"."""

    def one(key: str) -> str:
        *mods, last = key.split("+")
        return "+".join([*(m.capitalize() for m in mods), NAMES.get(last, last.upper())])

    return " / ".join(one(k.strip()) for k in keys.split(","))


def bindings() -> list[BindingType]:
    """The app's BINDINGS (their actions are the chat screen's)."""
    return [key.binding for key in KEYS]


def keys_of(*ids: str) -> str:
    """The keys of these bindings, as the welcome text writes them: "F3 or Ctrl+T"."""
    by_id = {key.binding.id: key.binding.key for key in KEYS}
    return " or ".join(key_name(by_id[i]) for i in ids)


def _together() -> list[tuple[list[str], Key]]:
    """Each key with the keys for its action after it (Esc, Ctrl+C): their names and the first Key."""
    groups: list[tuple[list[str], Key]] = []
    for key in KEYS:
        if groups and not key.title and not key.help:
            groups[-1][0].append(key_name(key.binding.key))
        else:
            groups.append(([key_name(key.binding.key)], key))
    return groups


def palette() -> list[tuple[str, str, str]]:
    """The command palette's entries for the chat screen's actions: (title, what it does (key), action)."""
    keyed = [(key.title, f"{key.binding.tooltip} ({names[0]})", key.action) for names, key in _together()]
    return [*keyed, *UNBOUND]


def help_keys() -> str:
    """/help's key section: the entries in columns, as many a line as fit in HELP_WIDTH."""
    entries = [*(f"{key_name(k)} {w}" for k, w in BEFORE), *(f"{' or '.join(n)} {key.help}" for n, key in _together()),
               *(f"{key_name(k)} {w}" for k, w in AFTER)]  # fmt: skip
    lines = [""]
    for entry in entries:
        line = _placed(lines[-1], entry)
        if len(line) > HELP_WIDTH and lines[-1]:
            line = _placed("", entry)
            lines.append(line)
        lines[-1] = line
    return "Keys:\n" + "\n".join(lines)


def _placed(line: str, entry: str) -> str:
    """`line` with `entry` at the next column stop that leaves a space after what is there."""
    start = next((s for s in HELP_STOPS if s >= len(line) + (1 if line else 0)), len(line) + HELP_GAP)
    return line.ljust(start) + entry


def welcome_hints() -> str:
    """The welcome text's line of keys."""
    return " · ".join([*(f"{keys_of(*ids)}: {does}" for ids, does in WELCOME), WELCOME_AFTER])
