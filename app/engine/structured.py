"""Structured output: the `format` and `grammar` parameters as one GBNF grammar for llama.cpp.

`format: json` is llama.cpp's JSON grammar as llama-cpp-python ships it: a JSON object, as in
Ollama, llama.cpp's json.gbnf and OpenAI's JSON mode. (Started at its `value` rule instead, small
models answer with a bare string that never ends.) A JSON schema is first checked against
its metaschema (the `jsonschema` library), then against the keywords the grammar enforces, and
turned into GBNF by llama-cpp-python's SchemaConverter with what llama.cpp's own converter added
since: integer bounds (and number bounds, app/engine/number_ranges.py), counts written as `x{m,n}`
rather than nested optionals, `$ref` anywhere (pydantic's `$defs`, recursive models), a list of
types as a union (`Optional[...]`), and the formats date (a real calendar day), time, date-time,
uuid, email and ipv4. A keyword the grammar cannot enforce (`multipleOf`, `uniqueItems`, a `format`
such as uri, ...) is refused by name, so every reply made under a schema validates against it.
The grammar is then checked like a grammar a person wrote (app/engine/grammar.py): its size and
nesting, and that some reply can match it (a model that always requires itself cannot end).
"""

from __future__ import annotations

import copy
import json
import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from andon.app.control_text import visible
from andon.app.engine import gbnf
from andon.app.engine.grammar import MAX_GRAMMAR_CHARS, GrammarError, check_grammar
from andon.app.engine.number_ranges import DIGITS, Bound, integer_range, number_range
from andon.presets.parameters import Parameters

Source = Literal["json", "schema", "grammar"]

# Keywords that only describe a schema: allowed anywhere, ignored by the converter.
_NOTES = frozenset(
    {"title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated", "readOnly", "writeOnly"}
)
_DEFS = frozenset({"$defs", "definitions"})
_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
# Keywords that apply to one type of value, and so to that alternative of a list of types.
_BY_TYPE: dict[str, frozenset[str]] = {
    "string": frozenset({"minLength", "maxLength", "pattern", "format"}),
    "integer": frozenset(_BOUNDS),
    "number": frozenset(_BOUNDS),
    "array": frozenset({"items", "prefixItems", "minItems", "maxItems"}),
    "object": frozenset({"properties", "required", "additionalProperties"}),
    "boolean": frozenset(),
    "null": frozenset(),
}
# Keywords the grammar enforces (with the combinations checked in _check_combinations).
_ENFORCED = frozenset({"type", "$ref", "anyOf", "allOf", "const", "enum"}).union(*_BY_TYPE.values())
_HINTS = {
    "oneOf": " (use anyOf)",
    "nullable": ' (OpenAPI\'s; in JSON Schema write anyOf: [..., {"type": "null"}])',
}
_JSON_CHAR = r'[^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})'
_JSON_SPACE = r'| " " | "\n"{1,2} [ \t]{0,20}'
_FORMATS = ("date", "date-time", "email", "ipv4", "time", "uuid")
_UUIDS = frozenset({"uuid", "uuid1", "uuid2", "uuid3", "uuid4", "uuid5"})
# A calendar day, leap years and all (llama.cpp's allows 2023-02-31, which no date library reads),
# in years 1000 to 9999.
_MONTH_DAY = (
    '("0" [13578] | "1" [02]) "-" ("0" [1-9] | [12] [0-9] | "3" [01]) | '
    '("0" [469] | "11") "-" ("0" [1-9] | [12] [0-9] | "30") | '
    '"02" "-" ("0" [1-9] | "1" [0-9] | "2" [0-8])'
)
_LEAP_YEAR = '[1-9] [0-9] ("0" [48] | [2468] [048] | [13579] [26]) | ([2468] [048] | [13579] [26]) "00"'
_DATE = f'[1-9] [0-9]{{3}} "-" ({_MONTH_DAY}) | ({_LEAP_YEAR}) "-02-29"'
_EMAIL_PART = "[A-Za-z0-9_%+-]{1,64}"
_EMAIL = (
    f'"\\"" {_EMAIL_PART} ("." {_EMAIL_PART}){{0,4}} "@" '
    '([A-Za-z0-9] ([A-Za-z0-9-]{0,61} [A-Za-z0-9])? "."){1,4} [A-Za-z]{2,24} "\\"" space'
)
_OCTET = '("25" [0-5] | "2" [0-4] [0-9] | "1" [0-9] [0-9] | [1-9] [0-9] | [0-9])'
_IPV4 = f'"\\"" {_OCTET} ("." {_OCTET}){{3}} "\\"" space'  # no leading zeros, as ipaddress reads it
_STRING_FORMATS = {"email": _EMAIL, "ipv4": _IPV4}
MAX_COUNT = gbnf.MAX_REPETITION  # llama.cpp reads a larger count in x{m,n} as no limit at all
MAX_SCHEMA_DEPTH = 100  # subschemas inside each other (the checks and the converter recurse)
MAX_FILE_BYTES = 4 << 20  # a schema or grammar file (a grammar is at most 200,000 characters)


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
    """GBNF for a JSON schema, checked as a grammar; GrammarError (one line) where it cannot be."""
    from jsonschema import SchemaError
    from jsonschema.validators import validator_for

    depth = _depth(schema)
    if depth > MAX_SCHEMA_DEPTH:
        raise GrammarError(f"format: the schema nests too deep: {depth} subschemas (at most {MAX_SCHEMA_DEPTH})")
    schema = copy.deepcopy(dict(schema))  # the user's schema stays as it was
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        where = _path(exc.path)
        raise GrammarError(
            f"format: the schema is not valid: {exc.message}{f' (at {where})' if where else ''}"
        ) from None
    for node, where in _nodes(schema):
        _check_node(node, where)
    converter = _converter_class()()
    converter.register_refs(schema)
    try:
        converter.visit(schema, "")
    except GrammarError:
        raise
    except (AssertionError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError) as exc:
        why = _shown(str(exc) or type(exc).__name__, 160)
        raise GrammarError(f"format: the schema cannot be turned into a grammar: {why}") from None
    text = converter.format_grammar()
    if len(text) > MAX_GRAMMAR_CHARS:
        raise GrammarError(
            f"format: the schema makes a grammar of {len(text):,} characters (at most {MAX_GRAMMAR_CHARS:,}); "
            "fewer properties, shorter enums or smaller counts"
        )
    _check_schema_grammar(text, {name: ref for ref, name in converter.ref_names.items()})
    return text


def _check_schema_grammar(text: str, refs: Mapping[str, str]) -> None:
    """The grammar's own checks, in the schema's words: `refs` maps a reference's rule to it."""
    try:
        shape = gbnf.read(text)
    except gbnf.BadCount:
        shape = None  # check_grammar says it in words
    endless = [r for r in gbnf.endless(shape) if r in refs] if shape is not None else []
    if endless:
        ref = refs[endless[0]]
        what = "a reply" if ref == "#" else f"each {ref}"
        raise GrammarError(
            f"format: no reply can match the schema: {what} must contain another, without end "
            "(a required property or a minItems leads back to it; make one optional)"
        )
    try:
        check_grammar(text)
    except GrammarError as exc:
        raise GrammarError(
            f"format: the schema's grammar cannot be used: {str(exc).removeprefix('grammar: ')}"
        ) from None


@lru_cache(maxsize=1)
def _converter_class() -> type:
    """llama-cpp-python's SchemaConverter, with what llama.cpp's own converter added since.

    The copy llama-cpp-python ships lets raw control characters (a newline) into a string, which
    JSON forbids, and allows at most one space between items, so a model that indents its JSON
    is refused at every line; it ignores number bounds, writes maxItems as optionals nested
    maxItems deep (llama.cpp's parser crashes past a few thousand), resolves `$ref` only outside
    `$defs` and names every reference by its last part.
    """
    from jsonschema import Draft202012Validator
    from llama_cpp.llama_grammar import PRIMITIVE_RULES, RESERVED_NAMES, BuiltinRule, SchemaConverter
    from referencing import Registry
    from referencing.exceptions import Unresolvable
    from referencing.jsonschema import DRAFT202012

    is_type = Draft202012Validator.TYPE_CHECKER.is_type

    class Converter(SchemaConverter):
        def __init__(self) -> None:
            super().__init__(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
            self._rules["space"] = _JSON_SPACE
            self.ref_names: dict[str, str] = {}

        def register_refs(self, schema: dict[str, Any]) -> None:
            """Every #... reference in the schema, $defs included, resolved (GrammarError if not)."""
            resolver = Registry().with_resource("", DRAFT202012.create_resource(schema)).resolver()
            for node, where in _nodes(schema):
                ref = node.get("$ref")
                if isinstance(ref, str) and ref not in self._refs:
                    try:
                        self._refs[ref] = resolver.lookup(ref).contents
                    except Unresolvable:
                        raise _refuse(where, f"$ref {ref!r} points to nothing in the schema") from None

        def _resolve_ref(self, ref: str) -> str:
            """One rule per reference, named by its last part, made unique (a recursive model
            refers to its own rule, defined once the visit that met it first returns)."""
            name = self.ref_names.get(ref)
            if name is None:
                base = _rule_name(ref.rsplit("/", 1)[-1]) or "ref"
                taken = set(self._rules) | set(self.ref_names.values()) | RESERVED_NAMES
                name = next(n for n in (base, *(f"{base}{i}" for i in range(1, len(taken) + 2))) if n not in taken)
                self.ref_names[ref] = name
                inner = self.visit(self._refs[ref], name)
                if inner != name:
                    self._rules[name] = inner
            return name

        def _visit_pattern(self, pattern: str, name: str) -> str:
            return str(super()._visit_pattern(_json_safe_pattern(pattern), name))

        def _add_primitive(self, name: str, rule: BuiltinRule) -> str:
            if name == "char":
                rule = BuiltinRule(_JSON_CHAR, [])
            elif name == "date":
                rule = BuiltinRule(_DATE, [])
            return super()._add_primitive(name, rule)

        def visit(self, schema: dict[str, Any], name: str) -> str:
            rule_name = name + "-" if name in RESERVED_NAMES else name or "root"
            kind = schema.get("type")
            if isinstance(kind, list):
                return self._add_rule(rule_name, self._generate_union_rule(name, _alternatives(schema, is_type)))
            if "enum" in schema or "const" in schema:
                values = _values(schema, is_type)
                return self._add_rule(
                    rule_name, "(" + " | ".join(self._generate_constant_rule(v) for v in values) + ")"
                )
            if kind in ("integer", "number") and any(b is not None for b in _number_bounds(schema)):
                body = (
                    integer_range(*_integer_bounds(schema))
                    if kind == "integer"
                    else number_range(*_number_bounds(schema))
                )
                return self._add_rule(rule_name, f"({body}) space")
            if kind in (None, "array") and isinstance(schema.get("items"), Mapping):
                item = self.visit(schema["items"], f"{name}{'-' if name else ''}item")
                counts = _repetition(item, schema.get("minItems", 0), schema.get("maxItems"), '"," space')
                return self._add_rule(rule_name, f'"[" space {counts} "]" space')
            if kind == "string" and ("minLength" in schema or "maxLength" in schema):
                char = self._add_primitive("char", PRIMITIVE_RULES["char"])
                counts = _repetition(char, schema.get("minLength", 0), schema.get("maxLength"))
                return self._add_rule(rule_name, f'"\\"" {counts} "\\"" space')
            fmt = schema.get("format")
            if kind in (None, "string") and fmt in _STRING_FORMATS and "pattern" not in schema:
                rule = BuiltinRule(_STRING_FORMATS[fmt], [])
                return self._add_rule(rule_name, self._add_primitive(f"{fmt}-string", rule))
            return str(super().visit(schema, name))

    return Converter


# A pattern's classes as characters a JSON string may hold unescaped (the converter writes them as
# raw characters, so `.` or `[^,]` could otherwise let a `"` end the string or a newline in).
_UNSAFE_IN_JSON = '"\\\\\\x00-\\x1F\\x7F'
_SHORTHANDS = {"d": "0-9", "w": "A-Za-z0-9_", "s": " "}  # \\s: a space (a raw tab or newline is not JSON)
_KEPT_ESCAPES = frozenset("[]()|{}*+?xu")  # escapes the converter (or GBNF) reads as they are


def _json_safe_pattern(pattern: str) -> str:
    """A pattern rewritten for llama-cpp-python's converter: `.`, negated classes and the shorthand
    classes (\\d \\D \\w \\W \\s \\S) as classes of characters a JSON string may hold as they are,
    and escaped punctuation (\\. \\- \\/ ...) as plain characters (the converter copies `\\d` or `\\.`
    into the grammar, where llama.cpp cannot read them)."""
    if '"' in pattern or "\\\\" in pattern or any(ord(c) < 0x20 or c == "\x7f" for c in pattern):
        raise GrammarError(
            f"format: pattern {_shown(pattern, 60)} has a quote, a backslash or a control character, "
            "which a JSON string escapes (not supported)"
        )
    out: list[str] = []
    i, in_class = 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(_escape(pattern, pattern[i + 1], in_class))
            i += 2
            continue
        if in_class and c == "]":
            in_class = False
        elif not in_class and c == "[":
            in_class = True
            negated = pattern[i + 1 : i + 2] == "^"
            out.append("[^" + _UNSAFE_IN_JSON if negated else "[")
            i += 1 + negated
            continue
        elif not in_class and c == ".":
            c = f"[^{_UNSAFE_IN_JSON}]"
        out.append(c)
        i += 1
    return "".join(out)


def _escape(pattern: str, e: str, in_class: bool) -> str:
    """One regular expression escape \\e, in a class or not, as the converter should be given it."""
    if e.lower() in _SHORTHANDS:
        chars = _SHORTHANDS[e.lower()]
        if e.islower():
            return chars if in_class else f"[{chars}]"
        if not in_class:
            return f"[^{chars}{_UNSAFE_IN_JSON}]"
    elif e in _KEPT_ESCAPES or (in_class and e == "]"):
        return "\\" + e
    elif not e.isalnum() and e != "-":
        return f"[{e}]" if e == "." and not in_class else e
    elif e == "-":
        return "\\x2D" if in_class else "-"
    raise GrammarError(f"format: pattern {_shown(pattern, 60)}: \\{e} cannot be enforced here (write a class)")


def _rule_name(text: str) -> str:
    return "".join(c if c.isascii() and (c.isalnum() or c == "-") else "-" for c in text).strip("-")


def _repetition(item: str, low: int, high: int | None, separator: str = "") -> str:
    """`item` low..high times (high None: no limit), as llama.cpp's build_repetition writes it."""
    if high == 0:
        return ""
    if low == 0 and high == 1:
        return f"{item}?"
    if not separator:
        if low == 1 and high is None:
            return f"{item}+"
        if low == 0 and high is None:
            return f"{item}*"
        return f"{item}{{{low},{'' if high is None else high}}}"
    rest = _repetition(f"({separator} {item})", max(low - 1, 0), None if high is None else high - 1)
    return f"({item} {rest})?" if low == 0 else f"{item} {rest}"


def _alternatives(schema: Mapping[str, Any], is_type: Any) -> list[dict[str, Any]]:
    """A list of types as a union: each type with the keywords that apply to it (and an enum's
    values of that type); a type none of whose enum values fit is left out."""
    out = []
    for kind in schema["type"]:
        keep = _BY_TYPE.get(kind, frozenset()) | {"enum", "const"}
        alternative = {"type": kind, **{k: v for k, v in schema.items() if k in keep}}
        if ("enum" in alternative or "const" in alternative) and not _values(alternative, is_type):
            continue
        out.append(alternative)
    return out


def _values(schema: Mapping[str, Any], is_type: Any) -> list[Any]:
    """The enum's (or const's) values that also fit the schema's type and other keywords."""
    from jsonschema import Draft202012Validator

    values = [schema["const"]] if "const" in schema else list(schema["enum"])
    if "enum" in schema and "const" in schema:
        values = [v for v in values if v in schema["enum"]]
    rest = {k: v for k, v in schema.items() if k not in ("enum", "const") and k not in _NOTES}
    if not rest:
        return values
    kinds = rest.get("type")
    if kinds is not None:
        kinds = kinds if isinstance(kinds, list) else [kinds]
        values = [v for v in values if any(is_type(v, k) for k in kinds)]
    try:
        fits = Draft202012Validator(rest)
        return [v for v in values if fits.is_valid(v)]
    except Exception:  # a $ref among the other keywords, which a lone validator cannot follow
        return values


def _integer_bounds(schema: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """The least and greatest integer the bounds allow (None: no bound a reply could reach)."""
    low, high = _number_bounds(schema)
    lo = None
    if low is not None:
        floor = low.value.to_integral_value("ROUND_FLOOR")
        lo = int(floor) + 1 if low.strict or floor != low.value else int(floor)
    hi = None
    if high is not None:
        ceiling = high.value.to_integral_value("ROUND_CEILING")
        hi = int(ceiling) - 1 if high.strict or ceiling != high.value else int(ceiling)
    return lo, hi


def _number_bounds(schema: Mapping[str, Any]) -> tuple[Bound | None, Bound | None]:
    """The tighter of minimum/exclusiveMinimum and of maximum/exclusiveMaximum, as Bounds; a bound
    past what a reply can write (16 digits) is no bound."""
    limit = Decimal(10) ** DIGITS
    low = high = None
    for key, strict in (("minimum", False), ("exclusiveMinimum", True)):
        if key in schema:
            bound = Bound(Decimal(str(schema[key])), strict)
            if low is None or bound.value > low.value or (bound.value == low.value and strict):
                low = bound
    for key, strict in (("maximum", False), ("exclusiveMaximum", True)):
        if key in schema:
            bound = Bound(Decimal(str(schema[key])), strict)
            if high is None or bound.value < high.value or (bound.value == high.value and strict):
                high = bound
    low = None if low is not None and low.value <= -limit else low
    high = None if high is not None and high.value >= limit else high
    return low, high


def _path(parts: Any) -> str:
    return ".".join(str(p) for p in parts)


def _refuse(where: str, what: str) -> GrammarError:
    return GrammarError(f"format: {what}{f' (at {where})' if where else ''}")


def _nodes(schema: Any) -> Iterator[tuple[Any, str]]:
    """Every subschema with where it is (a.b.c), without recursion (a schema may nest deep)."""
    todo: list[tuple[Any, str]] = [(schema, "")]
    while todo:
        node, where = todo.pop()
        yield node, where
        if isinstance(node, Mapping):
            todo.extend((child, f"{where}.{key}" if where else key) for key, child in reversed(_children(node)))


def _depth(schema: Any) -> int:
    """How many subschemas deep the schema nests (1: none inside it), without recursion."""
    deepest, todo = 0, [(schema, 1)]
    while todo:
        node, depth = todo.pop()
        deepest = max(deepest, depth)
        if isinstance(node, Mapping):
            todo.extend((child, depth + 1) for _, child in _children(node))
    return deepest


def _check_node(node: Any, where: str) -> None:
    """Refuse what the grammar would not enforce in this subschema (not the ones inside it)."""
    if not isinstance(node, Mapping):
        raise _refuse(where, "a subschema must be an object here (true/false schemas are not supported)")
    unknown = sorted(set(node) - _ENFORCED - _NOTES - _DEFS)
    if unknown:
        raise _refuse(
            where,
            f"the schema keyword {unknown[0]!r} is not supported{_HINTS.get(unknown[0], '')}; supported: "
            + ", ".join(sorted(_ENFORCED)),
        )
    _check_combinations(node, where)
    _check_type_keywords(node, where)


def _children(node: Mapping[str, Any]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key in ("properties", *_DEFS):
        if isinstance(node.get(key), Mapping):
            out.extend((f"{key}.{name}", sub) for name, sub in node[key].items())
    for key in ("anyOf", "allOf", "prefixItems"):
        if isinstance(node.get(key), list):
            out.extend((f"{key}.{i}", sub) for i, sub in enumerate(node[key]))
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
    if "allOf" in keys and (keys - {"allOf", "type"} or node.get("type", "object") != "object"):
        raise _refuse(where, "allOf cannot be combined with other keywords")
    for i, part in enumerate(node.get("allOf", [])):
        if isinstance(part, Mapping) and set(part) - _NOTES - {"$ref", "properties", "required", "type"}:
            raise _refuse(
                f"{where}.allOf.{i}" if where else f"allOf.{i}", "allOf may only join objects ($ref or properties)"
            )
    if "prefixItems" in keys and "items" in keys:
        raise _refuse(where, "prefixItems cannot be combined with items")
    items = node.get("items")
    prefix = node.get("prefixItems", items if isinstance(items, list) else None)  # a tuple: exactly these
    tuple_fits = prefix is not None and node.get("minItems", len(prefix)) <= len(prefix) <= node.get(
        "maxItems", len(prefix)
    )
    if keys & {"minItems", "maxItems"} and not isinstance(items, Mapping) and not tuple_fits:
        raise _refuse(where, "minItems and maxItems need items (or as many prefixItems as they allow)")
    for low, high in (("minItems", "maxItems"), ("minLength", "maxLength")):
        if node.get(low, 0) > node.get(high, node.get(low, 0)):
            raise _refuse(where, f"{low} {node[low]} is more than {high} {node[high]}: no value fits")
    string_only = node.get("type") == "string" or "string" in (node.get("type") or [])
    if keys & {"minLength", "maxLength"} and (not string_only or "pattern" in keys or "format" in keys):
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


def _check_type_keywords(node: Mapping[str, Any], where: str) -> None:
    """Bounds, counts, formats and enums: each where the grammar can enforce it, or refused by name."""
    from jsonschema import Draft202012Validator

    kinds = node.get("type")
    kinds = set(kinds) if isinstance(kinds, list) else {kinds} if kinds else set()
    bounds = [b for b in _BOUNDS if b in node]
    if bounds:
        if not kinds & {"integer", "number"}:
            raise _refuse(where, f'{bounds[0]} needs type "integer" or "number"')
        if any(isinstance(node[b], bool) for b in bounds):
            raise _refuse(where, f"{bounds[0]} must be a number (draft 4's true/false form is not supported)")
        _check_range(node, where, integer="number" not in kinds)
    for key in ("minItems", "maxItems", "minLength", "maxLength"):
        if node.get(key, 0) > MAX_COUNT:
            raise _refuse(where, f"{key} {node[key]:,} is more than a grammar can count (at most {MAX_COUNT:,})")
    fmt = node.get("format")
    if isinstance(fmt, str) and (not kinds or "string" in kinds) and fmt not in _FORMATS and fmt not in _UUIDS:
        raise _refuse(where, f"format {fmt!r} cannot be enforced; supported: " + ", ".join(_FORMATS))
    if "enum" in node or "const" in node:
        is_type = Draft202012Validator.TYPE_CHECKER.is_type
        if not _values(node, is_type) or (isinstance(node.get("type"), list) and not _alternatives(node, is_type)):
            raise _refuse(where, "no value of enum/const fits the other keywords here")


def _check_range(node: Mapping[str, Any], where: str, integer: bool) -> None:
    """Refuse bounds no number meets, or a minimum past what a reply can write (16 digits)."""
    low, high = _number_bounds(node)
    limit = Decimal(10) ** DIGITS
    if (low is not None and low.value >= limit) or (high is not None and high.value <= -limit):
        raise _refuse(where, f"a bound past {DIGITS} digits cannot be written in a reply")
    if integer:
        lo, hi = _integer_bounds(node)
        if lo is not None and hi is not None and lo > hi:
            raise _refuse(where, "no integer is within minimum/maximum here")
    elif low is not None and high is not None and (low.value, high.strict or low.strict) >= (high.value, True):
        raise _refuse(where, "no number is within minimum/maximum here")


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
    if name == "format" and value.startswith("{"):
        _loads(value, "the schema")  # too deep for Python's JSON reader: one line, not a crash
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
        from andon.app.engine.speculative import check_draft

        check_draft(Parameters.of(dict(changes), base=params))


def format_option(value: str) -> str:
    """`--format VALUE` as the `--set` it stands for."""
    return f"format={value}"


def grammar_option(value: str) -> str:
    """`--grammar VALUE` as the `--set` it stands for: a file unless it is GBNF text itself."""
    return f"grammar={value if '::=' in value else '@' + value}"


def _read(name: str, path_text: str) -> str:
    """A schema or grammar file's text; GrammarError naming what the path is where it is not one.

    A FIFO, socket or device is never opened (reading a FIFO waits for a writer)."""
    path = Path(path_text).expanduser()
    kind = "schema" if name == "format" else "grammar"
    shown = _shown(path_text)
    what = _not_a_file(path)
    if what == "does not exist" and name == "format":
        _refuse_inline_json(path_text)
    if what is not None:
        allowed = (
            '"", "json", a JSON schema or the path of a .json schema file'
            if name == "format"
            else "GBNF text or the path of a .gbnf file"
        )
        raise GrammarError(f"{name}: {_named(shown, kind, what)} ({name} must be {allowed})")
    try:
        content = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GrammarError(f"{name}: cannot read the {kind} file {shown}: {visible(str(exc))}") from None
    if name == "format":
        value = _loads(content, f"the schema file {shown}")
        if not isinstance(value, dict):
            raise GrammarError(
                f"format: the schema file {shown} holds {_json_kind(value)}, not a schema "
                "(a JSON schema is an object: {...})"
            )
    return content


def _loads(text: str, what: str) -> Any:
    """JSON text read; GrammarError naming `what` where it is not valid or nests too deep."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise GrammarError(f"format: {what} is not valid JSON ({exc})") from None
    except RecursionError:
        raise GrammarError(
            f"format: {what} nests too deep to read (a schema nests at most {MAX_SCHEMA_DEPTH} deep)"
        ) from None


def _refuse_inline_json(text: str) -> None:
    """`--format [1, 2]` or `--format 5`: JSON, but not a schema (an object); a path otherwise."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return
    raise GrammarError(
        f"format: {_shown(text)} is {_json_kind(value)}, not a schema (a JSON schema is an object: {{...}})"
    )


def _shown(text: str, limit: int = 100) -> str:
    """A path or value as typed, for a one-line message: controls visible, a long one shortened
    in the middle (a path's file name is at its end)."""
    text = visible(text).replace("\n", "^J").replace("\t", "^I")
    return text if len(text) <= limit else text[: limit // 3] + "..." + text[-(limit - limit // 3 - 3) :]


def _not_a_file(path: Path) -> str | None:
    """What a path is where it is not a regular file ("does not exist", "is a folder", ...)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "does not exist"
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    if stat.S_ISREG(mode):
        size = os.stat(path).st_size
        return None if size <= MAX_FILE_BYTES else f"is too large ({size:,} bytes; at most {MAX_FILE_BYTES:,})"
    if stat.S_ISDIR(mode):
        return "is a folder, not a file"
    if stat.S_ISFIFO(mode):
        return "is a named pipe (FIFO), not a file"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a file"
    return "is a device, not a file"


def _named(path_text: str, kind: str, what: str) -> str:
    return f"the {kind} file {path_text} {what}" if what == "does not exist" else f"{path_text} {what}"


def _json_kind(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return f"JSON {json.dumps(value)}"
    if isinstance(value, (int, float)):
        return "a JSON number"
    if isinstance(value, str):
        return "a JSON string"
    return "a JSON list"
