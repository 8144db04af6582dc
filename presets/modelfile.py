"""Ollama Modelfiles: import into a preset, export a preset; an Ollama model's own defaults.

Import reads a Modelfile as Ollama's parser does (`andon.presets.ollama_syntax`): FROM, PARAMETER
(several `stop` lines make a list, and so do several lines of `banned_strings`), SYSTEM, DRAFT
(Ollama's draft model for speculative decoding: andon's `draft`), MESSAGE (the preset's example
exchange, sent before each chat) and TEMPLATE (kept and exported back, but not used: it is a Go
template, and andon formats a chat with the model's own chat template, which llama.cpp runs; the
import says so in one note); other directives, and parameters Ollama has but andon does not use,
are reported, not fatal. Every value is checked as `--set` checks it (`ParamSpec.parse`, the one
parser), and a value refused or a parameter neither andon nor Ollama knows is fatal: nothing is
written. FROM and DRAFT are checked by the caller's resolver (the app layer knows where models
are): a relative path is taken from the Modelfile's folder, and a missing file or unknown name
refuses the import, as `ollama create` does.

Export writes what Ollama knows as Ollama reads it (`draft_max` as Ollama's `draft_num_predict`, a
draft model as DRAFT; text in the first of Ollama's forms that reads back exactly) and andon's own
settings as comments under ANDON_SECTION, in `--set`'s syntax (text as JSON, on one line), which
import reads back: the description, the task, andon's own parameters, and any system prompt or
stop string that no form of Ollama's can hold exactly (a control character, or a line ending in
\"\"\"). A preset exported and imported again is the same preset.

An Ollama model carries its defaults in its `params` and `system` layers: `ollama_defaults` reads
them like a Modelfile's PARAMETER and SYSTEM lines, and `with_model_defaults` puts them under a
preset (see its docstring for which wins).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, get_args

from andon.presets.commands import ANDON_NAMES, OLLAMA_NAMES, OLLAMA_UNIMPLEMENTED, parse_value, spec_for
from andon.presets.ollama_syntax import Command, Comment, SyntaxProblem, ollama_text, read_commands, unwritable
from andon.presets.parameters import ALL_SPECS, ParameterError, Parameters
from andon.presets.preset import ExampleMessage, Preset, Role, Task
from andon.presets.text import TextError, check

# Parameters a current Ollama accepts in a Modelfile (api.Options and its Runner options).
OLLAMA_PARAMETERS = frozenset({
    "num_ctx", "num_batch", "num_gpu", "num_thread", "seed", "num_predict", "top_k", "top_p", "min_p",
    "typical_p", "repeat_last_n", "temperature", "repeat_penalty", "presence_penalty", "frequency_penalty",
    "stop", "draft_num_predict",
})  # fmt: skip
# Export's comment above andon's own settings (`# PARAMETER name value` lines and the like, which
# Ollama skips); they run on the lines right below it, up to the next command.
ANDON_SECTION = "# andon parameters that Ollama does not know:"
OLLAMA_IGNORED = OLLAMA_UNIMPLEMENTED  # Ollama parameters andon does not use (some deprecated in Ollama itself)
_TASKS: tuple[str, ...] = get_args(Task)
TEMPLATE_UNUSED = (
    "TEMPLATE (Ollama's Go template) is kept for export, not used: andon uses the model's own chat template"
)


class ModelfileError(Exception):
    """A Modelfile that cannot be imported, or a preset that cannot be exported; names the line and what is wrong."""


@dataclass
class ImportedModelfile:
    model: str | None = None
    system: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    description: str = ""  # andon's export carries the preset's description and task
    task: Task = "chat"
    lines: dict[str, int] = field(default_factory=dict)  # the line that set each parameter
    messages: list[ExampleMessage] = field(default_factory=list)  # MESSAGE lines, in order
    template: str = ""  # TEMPLATE, as written

    def to_preset(self, name: str, description: str = "") -> Preset:
        params = Parameters.of(self.parameters)
        return Preset(
            name=name,
            description=description or self.description or "Imported from an Ollama Modelfile.",
            task=self.task,
            system=self.system,
            model=self.model,
            parameters=params,
            messages=tuple(self.messages),
            template=self.template,
        )


# Checks a FROM argument and returns what the preset keeps (an absolute path or a model name; None
# for the default model); raises ModelfileError saying why the model cannot be found.
FromResolver = Callable[[str], str | None]


def parse_modelfile(text: str, resolve_from: FromResolver | None = None) -> ImportedModelfile:
    """A Modelfile's settings; FROM and DRAFT go through `resolve_from` when given (kept as written if not).

    ModelfileError (`line N: ...`) for the first thing Ollama's parser or `--set` would refuse.
    """
    reading = _Import(resolve_from)
    try:
        for item in read_commands(text):
            reading.take(item)
    except SyntaxProblem as exc:
        raise ModelfileError(str(exc)) from None
    return reading.finish()


class _Import:
    """One Modelfile being read: Ollama's commands, then andon's own settings over them."""

    def __init__(self, resolve_from: FromResolver | None) -> None:
        self.out = ImportedModelfile()
        self.resolve_from = resolve_from
        self.lists: dict[str, list[str]] = {}  # Ollama's lines of a list of text (stop), one item each
        self.own: dict[str, Any] = {}  # andon's section: exact values, over Ollama's lines
        self.own_system: str | None = None
        self.own_messages: list[ExampleMessage] | None = None  # andon's section: all of them, exactly
        self.own_template: str | None = None
        self.section_line = 0  # the line of the section's last comment; 0 outside it

    def take(self, item: Command | Comment) -> None:
        if isinstance(item, Comment):
            self._comment(item)
            return
        self.section_line = 0
        if item.directive == "FROM":
            self.out.model = self._model(item.value, item.line, "FROM")
        elif item.directive == "DRAFT":
            self._set("draft", self._draft(item.value, item.line, "DRAFT"), item.line, self.out.parameters)
        elif item.directive == "SYSTEM":
            self.out.system = item.value
        elif item.directive == "PARAMETER":
            self._parameter(item.key.lower(), item.value, item.line, ollama=True)
        elif item.directive == "MESSAGE":
            self.out.messages.append(_message(item.key, item.value, item.line))
        elif item.directive == "TEMPLATE":
            self.out.template = item.value
            self.out.notes.append(f"line {item.line}: {TEMPLATE_UNUSED}")
        else:
            self.out.notes.append(f"line {item.line}: {item.directive} is not used by andon (ignored)")

    def _comment(self, comment: Comment) -> None:
        if comment.text.rstrip() == ANDON_SECTION[1:]:
            self.section_line = comment.line
            return
        if not self.section_line or comment.line != self.section_line + 1:
            self.section_line = 0  # a comment of the user's own, or the section has ended
            return
        self.section_line = comment.line
        word, _, rest = comment.text.removeprefix(" ").partition(" ")  # a note (two spaces) has no word
        if word == "PARAMETER":
            name, _, value = rest.partition(" ")
            self._parameter(name.lower(), value, comment.line, ollama=False)
        elif word in ("SYSTEM", "DESCRIPTION", "TEMPLATE"):
            text = _json_text(rest, comment.line, word)
            if word == "SYSTEM":
                self.own_system = text
            elif word == "TEMPLATE":
                self.own_template = text
            else:
                self.out.description = text
        elif word == "MESSAGES":
            self.own_messages = _json_messages(rest, comment.line)
        elif word == "TASK":
            if rest.strip() not in _TASKS:
                raise ModelfileError(
                    f"line {comment.line}: TASK {rest.strip()!r} is not a task (one of {', '.join(_TASKS)})"
                )
            self.out.task = rest.strip()  # type: ignore[assignment]  # one of Task's values

    def _parameter(self, name: str, text: str, line: int, *, ollama: bool) -> None:
        """PARAMETER NAME VALUE: Ollama's line (VALUE as Ollama unquoted it) or andon's (as `--set` reads it)."""
        name = ANDON_NAMES.get(name, name) if ollama else name
        if ollama and name in OLLAMA_IGNORED:
            self.out.notes.append(f"line {line}: PARAMETER {name} is not used by andon (ignored)")
            return
        try:
            spec = spec_for(name)
            if ollama and spec.kind == "str_list":  # Ollama: one line, one item, exactly as written
                value: Any = spec.validate([text])
            else:
                value = parse_value(name, text)
        except ParameterError as exc:
            raise ModelfileError(f"line {line}: {exc}") from None
        if name == "draft":
            value = self._draft(value, line, "draft")
        if ollama and spec.kind == "str_list":  # several lines add up, as Ollama's `stop` lines do
            self.lists.setdefault(name, []).extend(value)
            self.out.lines.setdefault(name, line)
        else:
            self._set(name, value, line, self.out.parameters if ollama else self.own)

    def _set(self, name: str, value: Any, line: int, into: dict[str, Any]) -> None:
        into[name] = value
        self.out.lines[name] = line

    def _model(self, arg: str, line: int, directive: str) -> str | None:
        if not arg.strip():
            raise ModelfileError(f"line {line}: {directive} needs a model name or the path of a .gguf file")
        if self.resolve_from is None:
            return arg.strip()
        try:
            return self.resolve_from(arg.strip())
        except ModelfileError as exc:
            raise ModelfileError(f"line {line}: {directive} {arg.strip()}: {exc}") from None

    def _draft(self, arg: str, line: int, directive: str) -> str:
        """A draft model as the preset keeps it ("" and "ngram" as they are)."""
        if directive == "draft" and arg.strip() in ("", "ngram"):
            return arg
        model = self._model(arg, line, directive)
        return arg.strip() if model is None else model  # None: the embedded model

    def finish(self) -> ImportedModelfile:
        out = self.out
        out.parameters.update(self.lists)
        out.parameters.update(self.own)
        if self.own_system is not None:
            out.system = self.own_system
        if self.own_messages is not None:
            out.messages = self.own_messages
        if self.own_template is not None:
            out.template = self.own_template
        try:
            Parameters.of(out.parameters)
        except ParameterError as exc:
            raise ModelfileError(str(exc)) from None
        return out


def _json_text(text: str, line: int, word: str) -> str:
    """An andon comment's JSON string (`# SYSTEM "..."`), which must be text."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelfileError(f"line {line}: {word} must be one JSON string ({exc.msg} at column {exc.colno})") from None
    if not isinstance(value, str):
        raise ModelfileError(f"line {line}: {word} must be one JSON string, not {type(value).__name__}")
    try:
        return check(value, f"line {line}: {word}")
    except TextError as exc:
        raise ModelfileError(str(exc)) from None


def _message(role: str, text: str, line: int) -> ExampleMessage:
    """`MESSAGE ROLE TEXT` (the role as Ollama's parser checked it)."""
    if role not in get_args(Role):
        raise ModelfileError(f"line {line}: expected MESSAGE ROLE TEXT, the role one of {', '.join(get_args(Role))}")
    try:
        return ExampleMessage(role=role, content=check(text, f"line {line}: MESSAGE"))  # type: ignore[arg-type]
    except TextError as exc:
        raise ModelfileError(str(exc)) from None


def _json_messages(text: str, line: int) -> list[ExampleMessage]:
    """andon's `# MESSAGES [["role", "text"], ...]`: the example exchange where Ollama's lines cannot hold it."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelfileError(f"line {line}: MESSAGES must be JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(value, list) or not all(_text_pair(pair) for pair in value):
        raise ModelfileError(f'line {line}: MESSAGES must be a JSON list of ["role", "text"] pairs')
    return [_message(role, content, line) for role, content in value]


def _text_pair(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(isinstance(item, str) for item in value)


def _usable(name: str, where: str, notes: list[str]) -> bool:
    """Whether andon uses this Ollama parameter; a note says why not (never dropped silently)."""
    if name in OLLAMA_IGNORED:
        notes.append(f"{where} is not used by andon (ignored)")
        return False
    if name not in ALL_SPECS:
        notes.append(f"{where} is unknown (ignored)")
        return False
    return True


def ollama_defaults(params: Mapping[str, Any], system: str = "") -> ImportedModelfile:
    """An Ollama model's `params` layer (JSON) and `system` layer as its Modelfile defaults.

    A parameter andon does not know or whose value it refuses is noted and left out: the model
    stays usable with the rest.
    """
    out = ImportedModelfile(system=system)
    for raw_name, value in params.items():
        name = ANDON_NAMES.get(str(raw_name).lower(), str(raw_name).lower())
        if not _usable(name, f"parameter {name}", out.notes):
            continue
        try:
            out.parameters[name] = ALL_SPECS[name].validate(value)
        except ParameterError as exc:
            out.notes.append(f"{exc} (ignored)")
    return out


def with_model_defaults(preset: Preset, defaults: ImportedModelfile | None) -> Preset:
    """The preset over a model's own defaults (an Ollama model's params and system layers).

    As in Ollama, a model's parameters are defaults: they replace andon's defaults, each value the
    preset changes from andon's defaults wins over them, and `--set` / `/set` override both. Stop
    strings add up (the model's are those its chat template needs). The model's SYSTEM replaces a
    preset's generic system prompt, since it says what that model is; a preset made from a
    Modelfile (one with FROM and SYSTEM) keeps its own, as a derived Ollama Modelfile does.
    """
    if defaults is None or not (defaults.parameters or defaults.system):
        return preset
    own = preset.parameters.changed()
    values = {**defaults.parameters, **own}
    if "stop" in defaults.parameters and "stop" in own:
        values["stop"] = list(dict.fromkeys([*defaults.parameters["stop"], *own["stop"]]))
    system = preset.system
    if defaults.system and not (preset.model and preset.system):
        system = defaults.system
    return preset.model_copy(update={"parameters": Parameters.of(values), "system": system})


def export_modelfile(preset: Preset, default_model: str, notes: list[str] | None = None) -> str:
    """The preset as a Modelfile that Ollama reads and andon imports back as the same preset.

    `notes` gets a line for each text Ollama will not see because its syntax cannot hold it (andon
    keeps it in its section). ModelfileError when the model itself cannot be written as FROM.
    """
    notes = [] if notes is None else notes
    model = preset.model or default_model
    written_model = ollama_text(model)
    if written_model is None:
        why = unwritable(model)
        raise ModelfileError(f"cannot export preset {preset.name!r}: its model {model!r} cannot be FROM: {why}")
    lines = [f"# Modelfile exported by andon from preset {preset.name!r}"]
    lines.extend(f"#  {_printable(line)}" if line else "#" for line in preset.description.splitlines())
    lines.append(f"FROM {written_model}")
    own = [f"DESCRIPTION {_andon_value(preset.description)}"] if preset.description else []
    if preset.task != "chat":
        own.append(f"TASK {preset.task}")
    params = preset.parameters
    plain = params.to_plain(sorted(params.changed()))
    draft = ollama_text(params.draft) if params.draft.strip() not in ("", "ngram") else None
    if draft is not None:  # a draft model: Ollama's DRAFT
        lines.append(f"DRAFT {draft}")
    for name, value in plain.items():
        ollama = OLLAMA_NAMES.get(name, name)
        if name == "stop":
            lines.extend(_stop_lines(value, own, notes))
        elif ollama in OLLAMA_PARAMETERS:
            lines.append(f"PARAMETER {ollama} {_andon_value(value)}")
        elif name != "draft" or draft is None:
            own.append(f"PARAMETER {name} {_andon_value(value)}")
    system = ollama_text(preset.system, "triple,quoted") if preset.system else None
    if preset.system and system is None:
        notes.append(f"Ollama will not see the system prompt: {unwritable(preset.system)}")
        own.extend([f" ({notes[-1]}; andon keeps it here)", f"SYSTEM {_andon_value(preset.system)}"])
    template = _template_line(preset.template, own, notes)
    messages = _message_lines(preset.messages, own, notes)
    if own:
        lines.append(ANDON_SECTION)
        lines.extend(f"# {entry}" for entry in own)
    if template:
        lines.append(template)
    if system is not None:
        lines.append(f"SYSTEM {system}")
    lines.extend(messages)
    return "\n".join(lines) + "\n"


def _template_line(template: str, own: list[str], notes: list[str]) -> str:
    """Ollama's TEMPLATE line ("" for none); andon's section holds one Ollama's syntax cannot."""
    if not template:
        return ""
    written = ollama_text(template, "triple,quoted")
    if written is not None:
        return f"TEMPLATE {written}"
    notes.append(f"Ollama will not see the template: {unwritable(template)}")
    own.extend([f" ({notes[-1]}; andon keeps it here)", f"TEMPLATE {_andon_value(template)}"])
    return ""


def _message_lines(messages: Sequence[ExampleMessage], own: list[str], notes: list[str]) -> list[str]:
    """Ollama's `MESSAGE ROLE TEXT` lines; every message in andon's section too if Ollama cannot hold one."""
    written = [ollama_text(m.content, "bare,triple,quoted") for m in messages]
    for message, text in zip(messages, written, strict=True):
        if text is None:
            notes.append(f"Ollama will not see a {message.role} message: {unwritable(message.content)}")
            own.append(f" ({notes[-1]}; andon keeps the messages here)")
    if None in written:
        own.append(f"MESSAGES {_andon_value([[m.role, m.content] for m in messages])}")
    return [f"MESSAGE {m.role} {text}" for m, text in zip(messages, written, strict=True) if text is not None]


def _stop_lines(stops: list[str], own: list[str], notes: list[str]) -> list[str]:
    """Ollama's `PARAMETER stop` lines; the whole list in andon's section too if Ollama cannot hold one."""
    written = [ollama_text(stop, "quoted,triple,bare") for stop in stops]
    for stop, text in zip(stops, written, strict=True):
        if text is None:
            notes.append(f"Ollama will not see the stop string {json.dumps(stop)[:40]}: {unwritable(stop)}")
            own.append(f" ({notes[-1]}; andon keeps the stop strings here)")
    if None in written:
        own.append(f"PARAMETER stop {_andon_value(stops)}")
    return [f"PARAMETER stop {text}" for text in written if text is not None]


def modelfile_for(model: str, params: Parameters, system: str, based_on: Preset | None = None) -> str:
    """The Modelfile of a chat's settings (`/show modelfile`): FROM the model, its parameters and system."""
    base = based_on or Preset.model_validate({"name": "chat"})
    return export_modelfile(base.model_copy(update={"parameters": params, "system": system, "model": model}), model)


def _andon_value(value: Any) -> str:
    """A value as `--set` reads it back exactly, as one line of printable text: numbers as Python
    writes them (exact), text, lists and maps as JSON with every unprintable character escaped."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        short = f"{value:g}"
        return short if float(short) == value else repr(value)
    if isinstance(value, int):
        return str(value)
    return _printable(json.dumps(value, ensure_ascii=False))


def _printable(text: str) -> str:
    """`text` with each unprintable character as its JSON escape (\\u001b): a Modelfile line stays
    one line, and a terminal showing it obeys nothing."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else json.dumps(char)[1:-1] for char in text)
