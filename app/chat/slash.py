"""Slash commands in the chat input, as in `ollama run`. An invalid command changes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from andon.app.chat.history import HistoryError
from andon.app.chat.session import ChatSession
from andon.app.engine.structured import check_change, resolve_set_line, resolve_value
from andon.app.models.files import ModelPathError
from andon.presets.commands import (
    confirm_set,
    parameter_listing,
    parse_set_parameter,
    parse_words,
    show_parameters,
)
from andon.presets.parameters import THINK_LEVELS, ParameterError
from andon.presets.store import PresetError

Action = Literal["quit", "cleared", "settings", "verbose", "quiet", "model", "continue"] | None
USAGE_FORMAT = "usage: /set format json | /set format SCHEMA (JSON text or a .json file) | /set noformat"

# /help: these commands, then the keys of the UI that runs them (run_slash's `keys`)
HELP = """Available commands:
  /set parameter NAME VALUE   Set a parameter (alone: list them all with their values)
  /set system TEXT            Set the system prompt for this chat
  /set format json            Reply in JSON (or: /set format SCHEMA, a JSON schema or .json file)
  /set noformat               Reply in free text again
  /show parameters            Show the values the preset, the model and this chat set
  /show system                Show the system prompt
  /show info                  Show the model's details (architecture, size, context length)
  /show modelfile             Show this chat's settings as an Ollama Modelfile
  /list                       List the models andon can use
  /model NAME                 Switch this chat to another model (/model alone: pick one; also Ctrl+O)
  /set verbose, /set quiet    Show (or stop showing) timings after each reply
  /set think, /set nothink    Let a reasoning model think first, or ask it not to (where its template can)
  /preset NAME                Switch this chat's preset (keeps your /set changes)
  /load NAME                  Load a model (as /model), or a preset afresh (drops your /set
                              changes and system prompt)
  /save NAME                  Save the current settings as a user preset
  /clear                      Clear this chat's messages (a copy is kept in the chat list)
  /continue                   Continue the last reply where it stopped or was cut (num_predict)
  /help, /?                   Show this help
  /bye                        Quit"""


@dataclass
class SlashResult:
    text: str
    action: Action = None
    ok: bool = True
    model: str = ""  # action "model": the model asked for ("": pick one)
    presets: tuple[str, ...] = ()  # action "model" from /load: the presets, named if no model is found


def run_slash(session: ChatSession, line: str, keys: str = "") -> SlashResult:
    """Run a slash command on the session; `keys` is the UI's key section, /help shows it after HELP."""
    words = line.strip().split(maxsplit=2)
    command = words[0].lower()
    try:
        if command in ("/help", "/?"):
            return SlashResult(f"{HELP}\n\n{keys}" if keys else HELP)
        if command in ("/bye", "/exit"):
            return SlashResult("", "quit")
        if command == "/clear":
            return _clear(session)
        if command == "/continue":  # the UI continues the reply (it runs the model)
            return SlashResult("", "continue")
        if command == "/set":
            return _set(session, words[1:])
        if command == "/list":
            return _list()
        if command == "/model":  # the rest of the line: a path may hold spaces
            return SlashResult("", "model", model=line.strip()[len(words[0]) :].strip())
        if command == "/show":
            return _show(session, words[1:])
        if command in ("/preset", "/load", "/save"):
            if len(words) != 2:
                return SlashResult(f"usage: {command} NAME", ok=False)
            name = words[1]
            if command == "/load" and name not in session.store.names():  # Ollama's /load MODEL
                return SlashResult("", "model", model=name, presets=tuple(session.store.names()))
            if command == "/save":
                session.save_as_preset(name)
                return SlashResult(f"Saved the current settings as preset '{name}'")
            preset = session.switch_preset(name, keep_changes=command == "/preset")
            return SlashResult(f"Preset '{preset.name}' applies from the next reply", "settings")
    except (
        ParameterError,
        PresetError,
        HistoryError,
        ModelPathError,
        ValueError,
        OSError,
    ) as exc:  # one line, nothing changed
        return SlashResult(f"error: {exc}", ok=False)
    return SlashResult(f"Unknown command '{words[0]}'. Type /? for help", ok=False)


def _clear(session: ChatSession) -> SlashResult:
    """Clear the chat's messages as stored now; they are kept as a chat of their own, counted as copied."""
    held = bool(session.messages)
    copy, count = session.clear(f"{session.chat.title} (before /clear)")
    if copy is None:  # (another andon may have cleared what this one still showed)
        return SlashResult("Nothing to clear: this chat has no messages.", "cleared" if held else None)
    return SlashResult(
        f"Cleared session context ({count} messages). They are kept in the chat '{copy.title}' in the chat list.",
        "cleared",
    )


def _set(session: ChatSession, args: list[str]) -> SlashResult:
    if not args:
        return SlashResult("usage: /set parameter NAME VALUE | /set system TEXT", ok=False)
    if args[0] == "parameter":
        if len(args) < 2:  # as `ollama run` lists them, with this chat's values
            return SlashResult(parameter_listing(session.params))
        name, value = parse_set_parameter(resolve_set_line(args[1]))
        check_change(session.params, {name: value})
        session.set_parameters({name: value})
        return SlashResult(confirm_set(name, value), "settings")
    if args[0] in ("verbose", "quiet"):
        verbose = args[0] == "verbose"
        return SlashResult("Set 'verbose' mode." if verbose else "Set 'quiet' mode.", "verbose" if verbose else "quiet")
    if args[0] in ("format", "noformat"):
        return _set_format(session, args)
    if args[0] in ("think", "nothink"):
        return _set_think(session, args)
    if args[0] == "system":
        if len(args) < 2 or not args[1].strip():
            return SlashResult("usage: /set system TEXT", ok=False)
        text = args[1].strip()
        if text.startswith('"""') and text.endswith('"""') and len(text) >= 6:
            text = text[3:-3]
        session.set_system(text)
        return SlashResult("Set system message.", "settings")
    return SlashResult(f"Unknown command '/set {args[0]}'. Type /? for help", ok=False)


def _set_think(session: ChatSession, args: list[str]) -> SlashResult:
    """Ollama's `/set think [LEVEL]` and `/set nothink`: the `think` parameter (a level is low,
    medium or high, which a template with a reasoning effort is given)."""
    level = args[1].strip().lower() if len(args) > 1 else ""
    if level and (args[0] == "nothink" or level not in THINK_LEVELS):
        return SlashResult(f"usage: /set think [{'|'.join(THINK_LEVELS)}] | /set nothink", ok=False)
    session.set_parameters({"think": level or args[0] == "think"})
    return SlashResult(f"Set 'think' mode to '{level}'." if level else f"Set '{args[0]}' mode.", "settings")


def _set_format(session: ChatSession, args: list[str]) -> SlashResult:
    """Ollama's `/set format json` and `/set noformat`; `/set format` also takes a JSON schema."""
    if args[0] == "noformat":
        session.set_parameters({"format": ""})
        return SlashResult("Disabled format.", "settings")
    if len(args) < 2:
        return SlashResult(USAGE_FORMAT, ok=False)
    value = parse_words("format", [resolve_value("format", args[1])])
    check_change(session.params, {"format": value})
    session.set_parameters({"format": value})
    shown = "'json' mode" if value == "json" else "a JSON schema"
    return SlashResult(f"Set format to {shown}.", "settings")


def _show(session: ChatSession, args: list[str]) -> SlashResult:
    what = args[0] if args else ""
    if what == "parameters":
        return _show_parameters(session)
    if what == "system":
        return SlashResult(session.system or "No system message was specified for this model.")
    if what == "modelfile":
        from andon.presets.modelfile import modelfile_for

        model = session.model_ref or session.chat.model or "the model andon was started with"
        return SlashResult(modelfile_for(model, session.params, session.system or "", session.preset))
    if what == "info":
        return _show_info(session)
    return SlashResult("usage: /show info | /show modelfile | /show parameters | /show system", ok=False)


def _show_parameters(session: ChatSession) -> SlashResult:
    """Ollama's `/show parameters`, each value marked as the preset's, the model's or this chat's."""
    own = session.store.load(session.preset.name).parameters.changed()  # the preset's, without the model's
    defaults = session.model_defaults.parameters if session.model_defaults else {}
    model = Path(session.model_ref).name if "/" in session.model_ref else session.model_ref
    names = (session.preset.name, model)
    return SlashResult(show_parameters(session.preset.parameters, session.changes, own, defaults, names))


def _list() -> SlashResult:
    from andon.app.models.catalog import list_models

    listed, problems = list_models()
    lines = [f"{'NAME':32} {'SIZE':>9}  {'CONTEXT':>8}  SOURCE"]
    for model in listed:
        size = f"{model.info.file_size / 1e6:.0f} MB"
        lines.append(f"{model.entry.name:32} {size:>9}  {model.info.context_length or '?':>8}  {model.entry.source}")
    lines += [f"skipped: {p}" for p in problems]
    return SlashResult("\n".join(lines) if listed else "No models found. " + "; ".join(problems))


def _show_info(session: ChatSession) -> SlashResult:
    from andon.app.models.catalog import find_model, info_for

    model = session.model_ref or session.chat.model
    entry = find_model(model) if model else None
    if entry is None:
        from andon.app.models.catalog import embedded_entry

        entry = embedded_entry()
    info = info_for(entry)
    return SlashResult(
        "  Model\n"
        f"    name              {entry.name}\n"
        f"    architecture      {info.architecture}\n"
        f"    parameters        {info.parameters}\n"
        f"    quantization      {info.quantization}\n"
        f"    context length    {info.context_length}\n"
        f"    embedding length  {info.embedding_length}\n"
        f"    file              {entry.path}"
    )
