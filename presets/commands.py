"""`set parameter NAME VALUE` and `show parameters`, as in `ollama run`, and `--set NAME=VALUE`.

Every value a person types goes through one parser, `ParamSpec.parse` (rules in
`andon.samplers.typed`): the text after the name is taken as typed, JSON lists and maps are JSON,
and only `/set parameter` splits a list of text into words (`stop a b`), as `ollama run` does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from andon.presets.parameters import ALL_SPECS, DEFAULTS, ParameterError, Parameters
from andon.samplers.params import NAMES_AT, unknown_name_message
from andon.samplers.spec import ParamSpec

USAGE_SET = "usage: /set parameter NAME VALUE (e.g. /set parameter temperature 0.7)"
# Where each surface lists the parameter names, for the "unknown parameter" line.
CLI_NAMES = NAMES_AT
APP_NAMES = "`/set parameter`"
# Ollama's parameters (api.Options and its Runner options in api/types.go, with those older Ollamas
# took) that andon does not implement: a Modelfile's line for one is skipped with a note, and
# `--set` or `/set parameter` names it as Ollama's rather than suggesting a name that looks alike.
OLLAMA_UNIMPLEMENTED = frozenset({
    "num_keep", "main_gpu", "use_mmap", "penalize_newline", "numa", "low_vram", "f16_kv", "logits_all",
    "vocab_only", "use_mlock", "num_gqa", "rope_frequency_base", "rope_frequency_scale", "embedding_only",
})  # fmt: skip
# andon's names of parameters Ollama knows by another name, and back.
OLLAMA_NAMES = {"draft_max": "draft_num_predict"}
ANDON_NAMES = {ollama: andon for andon, ollama in OLLAMA_NAMES.items()}


def spec_for(name: str, names_at: str = CLI_NAMES) -> ParamSpec:
    """The spec of a parameter; an unknown name is refused pointing to where the names are, and
    an Ollama parameter andon lacks is named as such (or by andon's name for it)."""
    spec = ALL_SPECS.get(name)
    if spec is not None:
        return spec
    if name in OLLAMA_UNIMPLEMENTED:
        raise ParameterError(f"{name} is an Ollama parameter andon does not implement ({names_at} lists andon's)")
    if name in ANDON_NAMES:
        raise ParameterError(f"{name} is Ollama's name for andon's {ANDON_NAMES[name]}: use {ANDON_NAMES[name]}")
    raise ParameterError(unknown_name_message(name, ALL_SPECS, names_at))


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


def parameter_lines(values: Mapping[str, Any], origin: Callable[[str, Any], str] | None = None) -> list[str]:
    """Ollama's `%-30s %v` lines; a list parameter (stop) gets a line per value. `origin(name, value)`
    adds where a value comes from, in parentheses after it."""
    lines: list[str] = []
    for name in sorted(values):
        value = values[name]
        items = list(value) if isinstance(value, (list, tuple)) and name != "samplers" else [value]
        for item in items:
            from_ = f"  ({origin(name, item)})" if origin is not None else ""
            lines.append(f"{name:<30} {format_value(item)}{from_}")
    return lines


def show_parameters(
    preset_params: Parameters,
    user_changes: Mapping[str, Any],
    own: Mapping[str, Any] | None = None,
    model: Mapping[str, Any] | None = None,
    names: tuple[str, str] = ("", ""),
) -> str:
    """The `/show parameters` listing: the preset's values (over its model's), then this chat's changes.

    With `own` (the values the preset itself sets) and `model` (the model's own defaults: an Ollama
    model's params layer, under the preset) each value says where it comes from: the preset, the
    model, or this chat. `names` are the preset's and the model's, for those notes.
    """
    own = preset_params.changed() if own is None else own
    model = model or {}
    tags = {"preset": f"preset {names[0]}".strip(), "model": f"model {names[1]}".strip()}

    def origin(name: str, item: Any) -> str:
        if name == "stop" and name in model:
            from_model = item in model[name] and item not in own.get(name, ())
        else:
            from_model = name in model and name not in own
        return tags["model" if from_model else "preset"]

    out = ["Model defined parameters:"]
    defined = preset_params.to_plain(sorted(preset_params.changed(DEFAULTS)))
    if defined:
        out.extend(f"  {line}" for line in parameter_lines(defined, origin))
    else:
        out.append("  No additional parameters were specified for this model.")
    out.append("")
    if user_changes:
        effective = Parameters.of(dict(user_changes), base=preset_params)
        out.append("User defined parameters:")
        shown = effective.to_plain(sorted(user_changes))
        out.extend(f"  {line}" for line in parameter_lines(shown, lambda _name, _item: "set in this chat"))
        out.append("")
    return "\n".join(out)


def parameter_listing(params: Parameters, width: int = 76) -> str:
    """`/set parameter` alone: every parameter with its value in this chat, two to a line (the
    chain's, then generation's and the rest, in the table's order), a long value cut with …."""
    cell = (width - 2) // 2
    name_width = max(map(len, ALL_SPECS))
    plain = params.to_plain()
    cells = [f"{name:<{name_width}} {_short(_listed(plain[name]), cell - name_width - 1)}" for name in ALL_SPECS]
    rows = [f"{left:<{cell}}  {right}".rstrip() for left, right in zip(cells[::2], [*cells[1::2], ""], strict=False)]
    return "\n".join(
        [
            "Parameters in this chat (/set parameter NAME VALUE changes one):",
            *rows,
            "`andon presets parameters` says what each one does and allows.",
        ]
    )


def _listed(value: Any) -> str:
    """A value as the listing shows it: lists and maps as JSON ([] is seen), the rest as `format_value`."""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (list, dict)) else format_value(value)


def _short(text: str, width: int) -> str:
    """`text` in at most `width` characters on one line (…, where it is cut)."""
    text = text.replace("\n", "\\n")
    return text if len(text) <= width else text[: width - 1] + "…"


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
