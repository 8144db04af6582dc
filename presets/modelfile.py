"""Ollama Modelfiles: import into a preset, export a preset; an Ollama model's own defaults.

Import reads FROM, PARAMETER (several `stop` lines make a list), SYSTEM (with \"\"\" blocks) and
DRAFT (Ollama's draft model for speculative decoding: andon's `draft`); other directives and
parameters andon does not use are reported, not fatal. A value out of range is fatal: nothing is
written. FROM and DRAFT are checked by the caller's resolver (the app layer knows where models are):
a relative path is taken from the Modelfile's folder, and a missing file or unknown name refuses the
import, as `ollama create` does. Export writes what Ollama knows as PARAMETER lines (`draft_max` as
Ollama's `draft_num_predict`, a draft model as DRAFT) and andon's own parameters as comments under
ANDON_SECTION, which import reads back: a preset exported and imported again is the same preset.

An Ollama model carries its defaults in its `params` and `system` layers: `ollama_defaults` reads
them like a Modelfile's PARAMETER and SYSTEM lines, and `with_model_defaults` puts them under a
preset (see its docstring for which wins).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from andon.presets.commands import format_value, parse_words
from andon.presets.parameters import ALL_SPECS, ParameterError, Parameters
from andon.presets.preset import Preset

# Parameters a current Ollama accepts in a Modelfile (api.Options and its Runner options).
OLLAMA_PARAMETERS = frozenset({
    "num_ctx", "num_batch", "num_gpu", "num_thread", "seed", "num_predict", "top_k", "top_p", "min_p",
    "typical_p", "repeat_last_n", "temperature", "repeat_penalty", "presence_penalty", "frequency_penalty",
    "stop", "draft_num_predict",
})  # fmt: skip
# andon's names of parameters Ollama knows by another name, and back.
OLLAMA_NAMES = {"draft_max": "draft_num_predict"}
ANDON_NAMES = {ollama: andon for andon, ollama in OLLAMA_NAMES.items()}
# Export's comment above andon's own parameters (`# PARAMETER name value` lines, which Ollama skips).
ANDON_SECTION = "# andon parameters that Ollama does not know:"
# Ollama parameters andon does not use (some deprecated in Ollama itself).
OLLAMA_IGNORED = frozenset({
    "num_keep", "penalize_newline", "numa", "low_vram", "f16_kv", "logits_all", "vocab_only",
    "use_mmap", "use_mlock", "main_gpu", "num_gqa", "rope_frequency_base", "rope_frequency_scale",
})  # fmt: skip
_DIRECTIVES = {"FROM", "PARAMETER", "SYSTEM", "TEMPLATE", "ADAPTER", "LICENSE", "MESSAGE", "REQUIRES", "DRAFT"}


class ModelfileError(Exception):
    """A Modelfile that cannot be imported; names the line and what is wrong."""


@dataclass
class ImportedModelfile:
    model: str | None = None
    system: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_preset(self, name: str, description: str = "") -> Preset:
        params = Parameters.of(self.parameters)
        return Preset(
            name=name,
            description=description or "Imported from an Ollama Modelfile.",
            task="chat",
            system=self.system,
            model=self.model,
            parameters=params,
        )


# Checks a FROM argument and returns what the preset keeps (an absolute path or a model name; None
# for the default model); raises ModelfileError saying why the model cannot be found.
FromResolver = Callable[[str], str | None]


def parse_modelfile(text: str, resolve_from: FromResolver | None = None) -> ImportedModelfile:
    """A Modelfile's settings; FROM goes through `resolve_from` when given (kept as written if not)."""
    out = ImportedModelfile()
    stops: list[str] = []
    for lineno, directive, args in _commands(text):
        if directive == "FROM":
            out.model = _from(args.strip(), lineno, resolve_from)
        elif directive == "DRAFT":
            draft = _from(args.strip(), lineno, resolve_from, "DRAFT")  # None: the embedded model
            out.parameters["draft"] = args.strip() if draft is None else draft
        elif directive == "SYSTEM":
            out.system = args
        elif directive == "PARAMETER":
            name, _, value = args.strip().partition(" ")
            name = ANDON_NAMES.get(name.lower(), name.lower())
            if _usable(name, f"line {lineno}: PARAMETER {name}", out.notes):
                try:
                    parsed = parse_words(name, [value.strip()])
                except ParameterError as exc:
                    raise ModelfileError(f"line {lineno}: {exc}") from None
                if name == "stop":
                    stops.extend(parsed)
                else:
                    out.parameters[name] = parsed
        else:
            out.notes.append(f"line {lineno}: {directive} is not used by andon (ignored)")
    if stops:
        out.parameters["stop"] = stops
    return out


def _from(arg: str, lineno: int, resolve_from: FromResolver | None, directive: str = "FROM") -> str | None:
    if not arg:
        raise ModelfileError(f"line {lineno}: {directive} needs a model name or the path of a .gguf file")
    if resolve_from is None:
        return arg
    try:
        return resolve_from(arg)
    except ModelfileError as exc:
        raise ModelfileError(f"line {lineno}: {directive} {arg}: {exc}") from None


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


def export_modelfile(preset: Preset, default_model: str) -> str:
    lines = [f"# Modelfile exported by andon from preset {preset.name!r}"]
    if preset.description:
        lines.extend(f"# {line}" if line else "#" for line in preset.description.splitlines())
    lines.append(f"FROM {preset.model or default_model}")
    params = preset.parameters
    changed = params.changed()
    plain = params.to_plain(sorted(changed))
    extra: list[str] = []
    draft: str = params.draft.strip()
    if draft and draft != "ngram":  # a draft model: Ollama's DRAFT
        lines.append(f"DRAFT {draft}")
    for name in sorted(changed):
        if name == "draft" and draft != "ngram":
            continue
        value = plain[name]
        values = value if isinstance(value, list) and name == "stop" else [value]
        ollama = OLLAMA_NAMES.get(name, name)
        target = lines if ollama in OLLAMA_PARAMETERS else extra
        for v in values:
            target.append(f"PARAMETER {ollama} {_modelfile_value(v)}")
    if extra:
        lines.append(ANDON_SECTION)
        lines.extend(f"# {line}" for line in extra)
    if preset.system:
        lines.append(f'SYSTEM """{preset.system}"""')
    return "\n".join(lines) + "\n"


def modelfile_for(model: str, params: Parameters, system: str, based_on: Preset | None = None) -> str:
    """The Modelfile of a chat's settings (`/show modelfile`): FROM the model, its parameters and system."""
    base = based_on or Preset.model_validate({"name": "chat"})
    return export_modelfile(base.model_copy(update={"parameters": params, "system": system, "model": model}), model)


def _modelfile_value(value: Any) -> str:
    if isinstance(value, str):
        return format_value(value)
    if isinstance(value, list):  # as `--set` and `/set parameter` take a list: JSON
        return json.dumps(value, ensure_ascii=False)
    return format_value(value)


def _commands(text: str):
    """(line number, DIRECTIVE, argument text) for each command, joining \"\"\" blocks."""
    lines = text.splitlines()
    i, in_section = 0, False
    while i < len(lines):
        raw = lines[i]
        lineno = i + 1
        i += 1
        stripped = raw.strip()
        if stripped == ANDON_SECTION:
            in_section = True
            continue
        if in_section and stripped.startswith("# PARAMETER "):
            stripped = stripped[2:]  # one of andon's own parameters, as export writes it
        elif not stripped or stripped.startswith("#"):
            in_section = in_section and stripped.startswith("#")
            continue
        else:
            in_section = False
        word, _, rest = stripped.partition(" ")
        directive = word.upper()
        if directive not in _DIRECTIVES:
            raise ModelfileError(
                f"line {lineno}: {word!r} is not a Modelfile command (expected one of {', '.join(sorted(_DIRECTIVES))})"
            )
        rest = rest.strip()
        if rest.startswith('"""'):
            body = rest[3:]
            while '"""' not in body and i < len(lines):
                body += "\n" + lines[i]
                i += 1
            if '"""' not in body:
                raise ModelfileError(f'line {lineno}: {directive} opens """ but never closes it')
            rest = body[: body.index('"""')]
        elif directive == "SYSTEM" and len(rest) >= 2 and rest[0] == rest[-1] == '"':
            rest = rest[1:-1]
        yield lineno, directive, rest
