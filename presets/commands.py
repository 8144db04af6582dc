"""`set parameter NAME VALUE` and `show parameters`, as in `ollama run`; one parser for CLI and TUI."""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from andon.presets.parameters import ALL_SPECS, DEFAULTS, ParameterError, Parameters
from andon.samplers.params import unknown_name_message

USAGE_SET = "usage: /set parameter NAME VALUE (e.g. /set parameter temperature 0.7)"
RAW_TEXT = frozenset({"format", "grammar"})  # values taken as typed: a JSON schema, a GBNF grammar


def _spec(name: str):
    spec = ALL_SPECS.get(name)
    if spec is None:
        raise ParameterError(unknown_name_message(name, ALL_SPECS))
    return spec


def parse_words(name: str, words: Sequence[str]) -> Any:
    """The value of `set parameter NAME WORD...`: `stop` takes each word as one stop string."""
    spec = _spec(name)
    if not words:
        raise ParameterError(f"{name}: a value is needed ({spec.allowed})")
    if spec.kind == "str_list" and not (len(words) == 1 and words[0].startswith("[")):
        return spec.validate([_unquote(w) for w in words])
    return spec.parse(" ".join(words))


def parse_set_parameter(line: str) -> tuple[str, Any]:
    """`NAME VALUE...` (what follows `/set parameter`) into a validated (name, value)."""
    name, _, rest = line.strip().partition(" ")
    if name in RAW_TEXT and rest.strip():
        text = rest.strip()
        return name, parse_words(name, ["" if text in ('""', "''") else text])  # JSON and GBNF keep their quotes
    try:
        words = shlex.split(line)
    except ValueError:
        words = line.split()
    if not words:
        raise ParameterError(USAGE_SET)
    return words[0], parse_words(words[0], words[1:])


def parse_assignments(items: Sequence[str]) -> dict[str, Any]:
    """`--set NAME=VALUE` options; repeating a list parameter (stop) adds to it."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ParameterError(f"--set {item!r}: expected NAME=VALUE, e.g. --set temperature=0.7")
        spec = _spec(name)
        value = spec.parse(text)
        if spec.kind == "str_list" and name in out and not text.strip().startswith("["):
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
    shown = ", ".join(str(v) for v in plain) if isinstance(plain, list) else format_value(plain).strip('"')
    return f"Set parameter '{name}' to '{shown}'"


def _unquote(word: str) -> str:
    if len(word) >= 2 and word[0] == word[-1] and word[0] in "\"'":
        return word[1:-1]
    return word
