"""The parameter table users read, generated from the ParamSpecs so it cannot drift from the code.

`andon presets parameters` prints it; README.md holds the Markdown form between the markers
`<!-- parameters:begin -->` and `<!-- parameters:end -->`. After changing a spec, regenerate it:

    python -m andon.presets.table --write README.md
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from andon.presets.parameters import ALL_SPECS, GENERATION_SPECS, OUTPUT_SPECS, SEARCH_SPECS
from andon.samplers import parameter_groups
from andon.samplers.params import ParamSpec

BEGIN = "<!-- parameters:begin -->"
END = "<!-- parameters:end -->"
REGENERATE = "python -m andon.presets.table --write README.md"

Style = Literal["markdown", "text"]

_TYPES = {
    "float": "number",
    "int": "integer",
    "choice": "integer",
    "bool": "true/false",
    "str": "text",
    "str_list": "list of text",
    "sampler_list": "list of names",
    "bias_map": "map",
    "format": "text or schema",
    "endpoint_list": "list of host:port",
}


def groups() -> list[tuple[str, list[ParamSpec]]]:
    """Every parameter once: sampling in the chain's order, generation and model, then the rest."""
    sampling = [ALL_SPECS[name] for _, names in parameter_groups() for name in names]
    return [
        (
            "Sampling, in the chain's default order (logit_bias runs first; adaptive_p, when on, runs last "
            "and picks the token itself; mirostat, when on, replaces the samplers from penalties to adaptive_p)",
            sampling,
        ),
        ("Generation and model", list(GENERATION_SPECS)),
        ("Structured output, speculative decoding, thinking and RPC placement", list(OUTPUT_SPECS)),
        ("Search decoding: beam search and minimum Bayes risk (Hugging Face generate's names)", list(SEARCH_SPECS)),
    ]


def parameter_table(style: Style = "markdown", width: int | None = None) -> str:
    """The table of every parameter: name, type, default, what is allowed, one line of help.

    `width` wraps the text layout's help lines (a terminal's columns); Markdown is never wrapped.
    """
    if style == "markdown":
        return "\n\n".join(_markdown(title, specs) for title, specs in groups()) + "\n"
    return "\n\n".join(_text(title, specs, width) for title, specs in groups()) + "\n"


def default_text(spec: ParamSpec) -> str:
    """A default as a user would type it: JSON for text, lists and maps, numbers as they are."""
    value = spec.validate(spec.default)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (str, tuple, list, dict)):
        return json.dumps(list(value) if isinstance(value, tuple) else value, ensure_ascii=False)
    return str(value)


def type_text(spec: ParamSpec) -> str:
    """The type column: a bool with levels (think) lists them after true/false."""
    return "/".join((_TYPES[spec.kind], *spec.levels))


def _markdown(title: str, specs: Sequence[ParamSpec]) -> str:
    lines = [f"**{title}**", "", "| name | type | default | allowed | what it does |", "|---|---|---|---|---|"]
    for spec in specs:
        cells = [f"`{spec.name}`", type_text(spec), f"`{default_text(spec)}`", spec.summary, spec.description]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _text(title: str, specs: Sequence[ParamSpec], width: int | None) -> str:
    indent = " " * 25
    lines = [*_wrap(title, "", "", width), "", f"  {'name':<22} {'default':<14} allowed"]
    for spec in specs:
        default = default_text(spec)
        shown = "(below)" if len(default) > 14 else default  # a long list: on a line of its own
        lines.extend(_wrap(spec.summary, f"  {spec.name:<22} {shown:<14} ", " " * 40, width))
        if shown != default:
            lines.extend(_wrap(f"default {default}", indent, indent, width))
        lines.extend(_wrap(spec.description, indent, indent, width))
    return "\n".join(lines)


def _wrap(text: str, first: str, rest: str, width: int | None) -> list[str]:
    if width is None or width < len(first) + 20:
        return [first + text]
    return textwrap.wrap(text, width, initial_indent=first, subsequent_indent=rest, break_on_hyphens=False)


def readme_block(readme: str) -> str | None:
    """The text between the markers, or None when README has none."""
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < start:
        return None
    return readme[start + len(BEGIN) : end].strip("\n") + "\n"


def with_table(readme: str) -> str:
    """README text with the block between the markers replaced by the current table."""
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < start:
        raise ValueError(f"no {BEGIN} ... {END} block to fill")
    return f"{readme[: start + len(BEGIN)]}\n{parameter_table('markdown')}{readme[end:]}"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m andon.presets.table", description=__doc__.splitlines()[0])
    ap.add_argument("--write", metavar="README", type=Path, help="replace the table between the markers in this file")
    ap.add_argument("--text", action="store_true", help="the terminal layout instead of Markdown")
    args = ap.parse_args(argv)
    if args.write is None:
        sys.stdout.write(parameter_table("text" if args.text else "markdown"))
        return 0
    try:
        args.write.write_text(with_table(args.write.read_text("utf-8")), "utf-8")
    except (OSError, ValueError) as exc:
        print(f"{ap.prog}: {args.write}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
