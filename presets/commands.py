"""`set parameter NAME VALUE` and `show parameters`, as in `ollama run`, and `--set NAME=VALUE`.

Every value a person types goes through one parser, `ParamSpec.parse` (rules in
`andon.samplers.typed`): the text after the name is taken as typed, JSON lists and maps are JSON,
and only `/set parameter` splits a list of text into words (`stop a b`), as `ollama run` does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from andon.presets.parameters import ALL_SPECS, DEFAULTS, ParameterError, Parameters
from andon.samplers.params import NAMES_AT, unknown_name_message
from andon.samplers.spec import ParamSpec

USAGE_SET = "usage: /set parameter NAME VALUE (e.g. /set parameter temperature 0.7)"
# Where each surface lists the parameter names, for the "unknown parameter" line.
CLI_NAMES = NAMES_AT
APP_NAMES = "`/show parameters`"


def spec_for(name: str, names_at: str = CLI_NAMES) -> ParamSpec:
    """The spec of a parameter; an unknown name is refused pointing to where the names are."""
    spec = ALL_SPECS.get(name)
    if spec is None:
        raise ParameterError(unknown_name_message(name, ALL_SPECS, names_at))
    return spec


def parse_value(name: str, text: str, *, words: bool = False, names_at: str = CLI_NAMES) -> Any:
    """The validated value of NAME typed as `text` (`--set`, a Modelfile line, the parameter panel)."""
    return spec_for(name, names_at).parse(text, words=words)


def parse_words(name: str, words: Sequence[str]) -> Any:
    """The value of a Modelfile's `PARAMETER NAME VALUE`: VALUE is one item, as Ollama reads it."""
    return parse_value(name, " ".join(words))


def parse_set_parameter(line: str, *, names_at: str = APP_NAMES) -> tuple[str, Any]:
    """`NAME VALUE...` (what follows `/set parameter`) into a validated (name, value).

    The value is the rest of the line as typed; `stop a b` sets two stop strings.
    """
    parts = line.strip().split(maxsplit=1)
    if not parts:
        raise ParameterError(USAGE_SET)
    name = parts[0]
    spec = spec_for(name, names_at)
    if len(parts) == 1:
        raise ParameterError(f"{name}: a value is needed ({spec.allowed})")
    return name, spec.parse(parts[1], words=True)


def parse_assignments(items: Sequence[str], *, names_at: str = CLI_NAMES) -> dict[str, Any]:
    """`--set NAME=VALUE` options; repeating a list of text (stop) adds to it."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ParameterError(f"--set {item!r}: expected NAME=VALUE, e.g. --set temperature=0.7")
        spec = spec_for(name, names_at)
        value = spec.parse(text)
        if spec.kind == "str_list" and name in out:
            value = (*out[name], *value)
        out[name] = value
    return out


def apply(params: Parameters, changes: Mapping[str, Any]) -> Parameters:
    """The parameters with these changes, validated; nothing changes when one is refused."""
    return Parameters.of(dict(changes), base=params)


def format_value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, bool):
        return "false" if not value else "true"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value)
    return str(value)


def parameter_lines(values: Mapping[str, Any]) -> list[str]:
    """Ollama's `%-30s %v` lines; a list parameter (stop) gets a line per value."""
    lines: list[str] = []
    for name in sorted(values):
        value = values[name]
        if isinstance(value, (list, tuple)) and name != "samplers":
            lines.extend(f"{name:<30} {format_value(v)}" for v in value)
        else:
            lines.append(f"{name:<30} {format_value(value)}")
    return lines


def show_parameters(preset_params: Parameters, user_changes: Mapping[str, Any]) -> str:
    """The `/show parameters` listing: the preset's own values, then this session's changes."""
    out = ["Model defined parameters:"]
    defined = preset_params.to_plain(sorted(preset_params.changed(DEFAULTS)))
    if defined:
        out.extend(f"  {line}" for line in parameter_lines(defined))
    else:
        out.append("  No additional parameters were specified for this model.")
    out.append("")
    if user_changes:
        effective = Parameters.of(dict(user_changes), base=preset_params)
        out.append("User defined parameters:")
        out.extend(f"  {line}" for line in parameter_lines(effective.to_plain(sorted(user_changes))))
        out.append("")
    return "\n".join(out)


def confirm_set(name: str, value: Any) -> str:
    """Ollama's confirmation line: Set parameter 'stop' to 'a, b'."""
    plain = Parameters.of({name: value}).to_plain([name])[name]
    if isinstance(plain, list):
        shown = ", ".join(v if _plain_word(v) else json.dumps(v, ensure_ascii=False) for v in plain)
    elif name == "grammar" and isinstance(plain, str):
        shown = plain.replace("\n", "\\n")  # a grammar as typed, on one line
    else:
        shown = format_value(plain).strip('"')
    return f"Set parameter '{name}' to '{shown}'"


def _plain_word(text: str) -> bool:
    """Whether a list item reads unambiguously without quotes (no newline, comma or edge space)."""
    return bool(text) and text.isprintable() and "," not in text and text.strip() == text
