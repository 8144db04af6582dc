"""Reading a value as a person types it: the one parser behind `/set parameter`, `--set`, the app's
parameter panel and an Ollama Modelfile's PARAMETER lines.

The rules, the same everywhere:

- The text is taken as typed (no shell-style splitting). A list that opens with `["` or `[]`, and
  a map or schema (`{`), is JSON: `["\\n", ":"]` holds a newline and a colon.
- Text that opens with `"` is a JSON string, escapes included (`"\\n"` is a newline); text wholly
  in single quotes is taken as written between them.
- A list of text (`stop`, `dry_sequence_breakers`) is one item, or with `words=True` (the habit of
  `/set parameter stop a b`, as in `ollama run`) one item per word; a quoted word ("a b" or 'a b')
  keeps its spaces. Sampler names and RPC servers may be separated by commas or spaces.
- Numbers as Python reads them ("1e-3", "2.0" for a whole number); true/false, yes/no, on/off, 1/0,
  and a bool's levels where it has them (`think high`).
"""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Any

from andon.samplers.errors import ParameterError

if TYPE_CHECKING:
    from andon.samplers.spec import ParamSpec

_JSON_LIST = re.compile(r'\[\s*["\]]')
_DECODER = json.JSONDecoder(strict=False)  # a typed tab or newline inside quotes is itself
_WORD = re.compile(r"\S+")
_SEPARATORS = re.compile(r"[\s,;]+")
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def parse_text(spec: ParamSpec, text: str, *, words: bool = False) -> Any:
    """The validated value of `text` for this parameter; ParameterError (one line) if refused."""
    text = text.strip()
    if is_json(spec, text):
        return spec.validate(_json(spec, text))
    if spec.kind in ("str_list", "sampler_list", "endpoint_list"):
        return spec.validate(_items(spec, text, words))
    if text.startswith('"'):
        quoted = _whole_string(text)
        if quoted is not None:
            text = quoted
        elif spec.kind != "str":
            raise ParameterError(f"{spec.name}: {text[:60]} is not one quoted string ({spec.allowed})")
        if spec.kind in ("str", "format"):
            return spec.validate(text)
    if spec.kind in ("str", "format"):
        if len(text) >= 2 and text[0] == text[-1] == "'" and "'" not in text[1:-1]:
            text = text[1:-1]  # 'as typed', shell-style
        return spec.validate(text)
    if spec.kind == "bias_map":
        if text:
            raise ParameterError(f'{spec.name}: {text[:60]!r} is not allowed ({spec.allowed}, e.g. {{"15": 5}})')
        return spec.validate({})
    if spec.kind == "bool":
        return _bool(spec, text)
    return spec.validate(_number(spec, text))


def is_json(spec: ParamSpec, text: str) -> bool:
    """Whether this text is read as JSON for this parameter."""
    if text.startswith("{"):
        return spec.kind in ("bias_map", "format")
    return _JSON_LIST.match(text) is not None


def _json(spec: ParamSpec, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"{exc.msg} at column {exc.colno}"
        if spec.kind == "format":
            raise ParameterError(f"{spec.name}: the schema is not valid JSON ({where})") from None
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise ParameterError(f"{spec.name}: {shown} is not valid JSON ({where}); {spec.allowed}") from None


def _items(spec: ParamSpec, text: str, words: bool) -> list[str]:
    if not text:
        return []
    if spec.kind == "str_list":
        return quoted_words(spec, text) if words or text.startswith('"') else [text]
    if spec.kind == "sampler_list" and text.startswith("[") and text.endswith("]"):
        text = text[1:-1]  # [top_k, temperature] without JSON's quotes
    return [item for item in _SEPARATORS.split(text) if item]


def quoted_words(spec: ParamSpec, text: str) -> list[str]:
    """Words separated by spaces; "a b" (JSON escapes) and 'a b' (as typed) keep their spaces."""
    out: list[str] = []
    pos = 0
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
            continue
        word, end = _word(spec, text, pos)
        if end < len(text) and not text[end].isspace():
            raise ParameterError(f"{spec.name}: put a space after the quoted word that ends at column {end}")
        out.append(word)
        pos = end
    return out


def _word(spec: ParamSpec, text: str, pos: int) -> tuple[str, int]:
    if text[pos] == '"':
        try:
            word, end = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError:
            raise ParameterError(
                f'{spec.name}: the quote at column {pos + 1} never closes (a " inside is written \\")'
            ) from None
        return word, end
    if text[pos] == "'":
        close = text.find("'", pos + 1)
        if close < 0:
            raise ParameterError(f"{spec.name}: the quote at column {pos + 1} never closes")
        return text[pos + 1 : close], close + 1
    match = _WORD.match(text, pos)
    assert match is not None  # text[pos] is not a space
    return match.group(), match.end()


def _whole_string(text: str) -> str | None:
    """The string when the text is exactly one JSON string, else None."""
    try:
        value, end = _DECODER.raw_decode(text)
    except json.JSONDecodeError:
        return None
    return value if end == len(text) and isinstance(value, str) else None


def _bool(spec: ParamSpec, text: str) -> bool | str:
    word = text.lower()
    if word in spec.levels:
        return word
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise spec.refuse(text)


def _number(spec: ParamSpec, text: str) -> float | int:
    if not text:
        raise ParameterError(f"{spec.name}: a value is needed ({spec.allowed})")
    try:
        value: float | int = int(text) if spec.kind != "float" else float(text)
    except ValueError:
        value = _float(spec, text)  # "2.0" is a whole number; "2.5" is refused by validate
    if isinstance(value, float) and not math.isfinite(value):
        raise spec.refuse(text)  # "nan", "inf", or too many digits: quote what was typed
    return value


def _float(spec: ParamSpec, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise spec.refuse(text) from None
