"""Structured output: the `format` and `grammar` parameters as one GBNF grammar for llama.cpp.

`format: json` is llama.cpp's JSON grammar as llama-cpp-python ships it: a JSON object, as in
Ollama, llama.cpp's json.gbnf and OpenAI's JSON mode. (Started at its `value` rule instead, small
models answer with a bare string that never ends.) A JSON schema is first checked against
its metaschema (the `jsonschema` library), then against the keywords that llama-cpp-python's
schema-to-GBNF converter enforces: a keyword it would silently ignore (`minimum`, `uniqueItems`,
...) is refused, so every reply made under a schema validates against it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from andon.app.grammar import GrammarError, check_grammar
from andon.presets.parameters import Parameters

Source = Literal["json", "schema", "grammar"]

# Keywords that only describe a schema: allowed anywhere, ignored by the converter.
_NOTES = frozenset(
    {"title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated", "readOnly", "writeOnly"}
)
_DEFS = frozenset({"$defs", "definitions"})
# Keywords the converter turns into grammar rules (with the combinations checked in _check_node).
_ENFORCED = frozenset(
    {
        "type", "$ref", "anyOf", "allOf", "const", "enum",
        "properties", "required", "additionalProperties",
        "items", "prefixItems", "minItems", "maxItems",
        "pattern", "format", "minLength", "maxLength",
    }
)  # fmt: skip
_JSON_CHAR = r'[^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})'
_JSON_SPACE = r'| " " | "\n"{1,2} [ \t]{0,20}'
_CONVERTER_FORMATS = frozenset({"date", "time", "date-time", "uuid", "uuid1", "uuid2", "uuid3", "uuid4", "uuid5"})


@dataclass(frozen=True)
class GrammarSpec:
    """A grammar to build over the model's vocabulary."""

    text: str
    root: str
    source: Source


def grammar_for(params: Parameters) -> GrammarSpec | None:
    """The grammar these parameters ask for, checked; None for free text. Raises GrammarError."""
    fmt, grammar = params.format, params.grammar
    if fmt and grammar:
        raise GrammarError(
            'format and grammar cannot be used together: format asks for JSON, grammar for GBNF; set one of them to ""'
        )
    if grammar:
        check_grammar(grammar)
        return GrammarSpec(grammar, "root", "grammar")
    if fmt == "json":
        from llama_cpp.llama_grammar import JSON_GBNF

        return GrammarSpec(JSON_GBNF, "root", "json")
    if isinstance(fmt, Mapping):
        return GrammarSpec(schema_to_gbnf(fmt), "root", "schema")
    return None


def schema_to_gbnf(schema: Mapping[str, Any]) -> str:
    """GBNF for a JSON schema, by llama-cpp-python's converter; GrammarError where it cannot be."""
    from jsonschema import SchemaError
    from jsonschema.validators import validator_for

    schema = copy.deepcopy(dict(schema))  # the converter rewrites $ref in place
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        where = _path(exc.path)
        raise GrammarError(
            f"format: the schema is not valid: {exc.message}{f' (at {where})' if where else ''}"
        ) from None
    _check_node(schema, "")
    converter = _converter()
    try:
        converter.visit(converter.resolve_refs(schema, "schema"), "")
    except (AssertionError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError) as exc:
        raise GrammarError(f"format: the schema cannot be turned into a grammar: {exc or type(exc).__name__}") from None
    return converter.format_grammar()


def _converter() -> Any:
    """llama-cpp-python's SchemaConverter with llama.cpp's current `char` and `space` rules.

    The copy llama-cpp-python ships lets raw control characters (a newline) into a string, which
    JSON forbids, and allows at most one space between items, so a model that indents its JSON
    is refused at every line; llama.cpp's own converter fixed both.
    """
    from llama_cpp.llama_grammar import BuiltinRule, SchemaConverter

    class Converter(SchemaConverter):
        def __init__(self, **options: Any) -> None:
            super().__init__(**options)
            self._rules["space"] = _JSON_SPACE

        def _add_primitive(self, name: str, rule: BuiltinRule) -> str:
            if name == "char":
                rule = BuiltinRule(_JSON_CHAR, [])
            return super()._add_primitive(name, rule)

    return Converter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)


def _path(parts: Any) -> str:
    return ".".join(str(p) for p in parts)


def _refuse(where: str, what: str) -> GrammarError:
    return GrammarError(f"format: {what}{f' (at {where})' if where else ''}")


def _check_node(node: Any, where: str) -> None:
    """Refuse what the converter would ignore, in this subschema and the ones inside it."""
    if not isinstance(node, Mapping):
        raise _refuse(where, "a subschema must be an object here (true/false schemas are not supported)")
    unknown = sorted(set(node) - _ENFORCED - _NOTES - _DEFS)
    if unknown:
        hint = " (use anyOf)" if unknown[0] == "oneOf" else ""
        raise _refuse(
            where,
            f"the schema keyword {unknown[0]!r} is not supported{hint}; supported: " + ", ".join(sorted(_ENFORCED)),
        )
    _check_combinations(node, where)
    for key, child in _children(node):
        _check_node(child, f"{where}.{key}" if where else key)


def _children(node: Mapping[str, Any]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key in ("properties", *_DEFS):
        out.extend((f"{key}.{name}", sub) for name, sub in node.get(key, {}).items())
    for key in ("anyOf", "allOf", "prefixItems"):
        out.extend((f"{key}.{i}", sub) for i, sub in enumerate(node.get(key, [])))
    items = node.get("items")
    if isinstance(items, list):
        out.extend((f"items.{i}", sub) for i, sub in enumerate(items))
    elif items is not None:
        out.append(("items", items))
    if isinstance(node.get("additionalProperties"), Mapping):
        out.append(("additionalProperties", node["additionalProperties"]))
    return out


def _check_combinations(node: Mapping[str, Any], where: str) -> None:
    """Keywords the converter drops when it meets them together with others."""
    keys = set(node) - _NOTES - _DEFS
    for alone in ("$ref", "anyOf"):
        if alone in keys and keys - {alone}:
            others = ", ".join(sorted(keys - {alone}))
            raise _refuse(where, f"{alone} cannot be combined with {others} (put them inside each alternative)")
    if isinstance(node.get("type"), list) and keys - {"type"}:
        raise _refuse(where, "a list of types cannot be combined with other keywords (use anyOf)")
    if "allOf" in keys and (keys - {"allOf", "type"} or node.get("type", "object") != "object"):
        raise _refuse(where, "allOf cannot be combined with other keywords")
    for i, part in enumerate(node.get("allOf", [])):
        if isinstance(part, Mapping) and set(part) - _NOTES - {"$ref", "properties", "required", "type"}:
            raise _refuse(
                f"{where}.allOf.{i}" if where else f"allOf.{i}", "allOf may only join objects ($ref or properties)"
            )
    if "prefixItems" in keys and "items" in keys:
        raise _refuse(where, "prefixItems cannot be combined with items")
    if keys & {"minItems", "maxItems"} and "items" not in keys:
        raise _refuse(where, "minItems and maxItems need items")
    if keys & {"minLength", "maxLength"} and (node.get("type") != "string" or "pattern" in keys or _known_format(node)):
        raise _refuse(where, 'minLength and maxLength need type "string" and no pattern or format')
    missing = sorted(set(node.get("required", [])) - set(node.get("properties", {})))
    if missing:
        raise _refuse(where, f"required names {missing[0]!r}, which is not in properties")
    ref = node.get("$ref")
    if isinstance(ref, str) and not ref.startswith("#"):
        raise _refuse(where, f"$ref {ref!r} points outside the schema (only #/... references are supported)")
    pattern = node.get("pattern")
    if isinstance(pattern, str) and not (pattern.startswith("^") and pattern.endswith("$")):
        raise _refuse(where, f"pattern {pattern!r} must start with ^ and end with $")


def _known_format(node: Mapping[str, Any]) -> bool:
    return node.get("format") in _CONVERTER_FORMATS


# --- values typed by a person: files for format and grammar ------------------------------------


def resolve_value(name: str, text: str) -> str:
    """`format`/`grammar` text as typed: a schema file's or grammar file's path becomes its content.

    format: "", "json" and inline JSON (`{...}`) stay; anything else is a path to a JSON schema.
    grammar: `@path`, or a path that exists or ends in .gbnf, is read; other text is GBNF itself.
    Other parameters are returned unchanged. Raises GrammarError for a file that cannot be read.
    """
    value = text.strip()
    if value in ('""', "''"):
        return text  # an empty value, quoted
    if name == "format" and value and value.lower() != "json" and not value.startswith("{"):
        return _read(name, value)
    if name == "grammar" and value and "::=" not in value:
        path = value[1:] if value.startswith("@") else value
        if value.startswith("@") or path.endswith(".gbnf") or Path(path).expanduser().is_file():
            return _read(name, path)
    return text


def resolve_assignment(item: str) -> str:
    """`--set NAME=VALUE` with a file named for format or grammar replaced by its content."""
    name, sep, text = item.partition("=")
    return f"{name}={resolve_value(name.strip(), text)}" if sep else item


def resolve_set_line(line: str) -> str:
    """`NAME VALUE` of `/set parameter` with a file named for format or grammar replaced by its content."""
    name, sep, text = line.strip().partition(" ")
    return f"{name} {resolve_value(name, text)}" if sep else line


def check_change(params: Parameters, changes: Mapping[str, Any]) -> None:
    """Refuse a change of format or grammar that cannot constrain a reply (GrammarError), or a draft
    model that cannot be found or is not a GGUF (DraftModelError), before it is kept (ValueErrors)."""
    if "format" in changes or "grammar" in changes:
        grammar_for(Parameters.of(dict(changes), base=params))
    if "draft" in changes:
        from andon.app.speculative import check_draft

        check_draft(Parameters.of(dict(changes), base=params))


def format_option(value: str) -> str:
    """`--format VALUE` as the `--set` it stands for."""
    return f"format={value}"


def grammar_option(value: str) -> str:
    """`--grammar VALUE` as the `--set` it stands for: a file unless it is GBNF text itself."""
    return f"grammar={value if '::=' in value else '@' + value}"


def _read(name: str, path_text: str) -> str:
    path = Path(path_text).expanduser()
    kind = "schema" if name == "format" else "grammar"
    if not path.is_file():
        allowed = (
            '"", "json", a JSON schema or the path of a .json schema file'
            if name == "format"
            else "GBNF text or the path of a .gbnf file"
        )
        raise GrammarError(f"{name}: the {kind} file {path_text} does not exist ({name} must be {allowed})")
    try:
        content = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GrammarError(f"{name}: cannot read the {kind} file {path_text}: {exc}") from None
    if name == "format":
        try:
            json.loads(content)
        except json.JSONDecodeError as exc:
            raise GrammarError(f"format: the schema file {path_text} is not valid JSON ({exc})") from None
    return content
