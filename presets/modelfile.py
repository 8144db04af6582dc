"""Ollama Modelfiles: import into a preset, export a preset.

Import reads FROM, PARAMETER (several `stop` lines make a list) and SYSTEM (with \"\"\" blocks);
other directives and parameters andon does not use are reported, not fatal. A value out of range
is fatal: nothing is written. Export writes what Ollama knows as PARAMETER lines and andon's own
samplers as comments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from andon.presets.commands import format_value, parse_words
from andon.presets.parameters import ALL_SPECS, ParameterError, Parameters
from andon.presets.preset import Preset

# Parameters a current Ollama accepts in a Modelfile (api.Options and its Runner options).
OLLAMA_PARAMETERS = frozenset({
    "num_ctx", "num_batch", "num_gpu", "num_thread", "seed", "num_predict", "top_k", "top_p", "min_p",
    "typical_p", "repeat_last_n", "temperature", "repeat_penalty", "presence_penalty", "frequency_penalty",
    "stop",
})  # fmt: skip
# Ollama parameters andon does not use (some deprecated in Ollama itself).
OLLAMA_IGNORED = frozenset({
    "num_keep", "penalize_newline", "numa", "low_vram", "f16_kv", "logits_all", "vocab_only",
    "use_mmap", "use_mlock", "main_gpu", "num_gqa", "rope_frequency_base", "rope_frequency_scale",
})  # fmt: skip
_DIRECTIVES = {"FROM", "PARAMETER", "SYSTEM", "TEMPLATE", "ADAPTER", "LICENSE", "MESSAGE", "REQUIRES"}


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


def parse_modelfile(text: str) -> ImportedModelfile:
    out = ImportedModelfile()
    stops: list[str] = []
    for lineno, directive, args in _commands(text):
        if directive == "FROM":
            out.model = args.strip()
        elif directive == "SYSTEM":
            out.system = args
        elif directive == "PARAMETER":
            name, _, value = args.strip().partition(" ")
            name = name.lower()
            value = value.strip()
            if name in OLLAMA_IGNORED:
                out.notes.append(f"line {lineno}: PARAMETER {name} is not used by andon (ignored)")
                continue
            if name not in ALL_SPECS:
                out.notes.append(f"line {lineno}: PARAMETER {name} is unknown (ignored)")
                continue
            try:
                if name == "stop":
                    stops.extend(parse_words(name, [value]))
                else:
                    out.parameters[name] = parse_words(name, [value])
            except ParameterError as exc:
                raise ModelfileError(f"line {lineno}: {exc}") from None
        else:
            out.notes.append(f"line {lineno}: {directive} is not used by andon (ignored)")
    if stops:
        out.parameters["stop"] = stops
    return out


def export_modelfile(preset: Preset, default_model: str) -> str:
    lines = [f"# Modelfile exported by andon from preset {preset.name!r}"]
    if preset.description:
        lines.extend(f"# {line}" if line else "#" for line in preset.description.splitlines())
    lines.append(f"FROM {preset.model or default_model}")
    params = preset.parameters
    changed = params.changed()
    plain = params.to_plain(sorted(changed))
    extra: list[str] = []
    for name in sorted(changed):
        value = plain[name]
        values = value if isinstance(value, list) and name == "stop" else [value]
        target = lines if name in OLLAMA_PARAMETERS else extra
        for v in values:
            target.append(f"PARAMETER {name} {_modelfile_value(v)}")
    if extra:
        lines.append("# andon parameters that Ollama does not know:")
        lines.extend(f"# {line}" for line in extra)
    if preset.system:
        lines.append(f'SYSTEM """{preset.system}"""')
    return "\n".join(lines) + "\n"


def _modelfile_value(value: Any) -> str:
    if isinstance(value, str):
        return format_value(value)
    if isinstance(value, list):
        return format_value(", ".join(str(v) for v in value)) if value else '""'
    return format_value(value)


def _commands(text: str):
    """(line number, DIRECTIVE, argument text) for each command, joining \"\"\" blocks."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        raw = lines[i]
        lineno = i + 1
        i += 1
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
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
