"""One parameter's contract: its type, default, what is allowed, and how a value is checked.

`ParamSpec.validate` takes values from code and files (TOML, JSON); `ParamSpec.parse` reads what a
person types. Every error is a ParameterError with one line naming the parameter, the value and
what is allowed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from andon.samplers.errors import ParameterError
from andon.samplers.registry import SAMPLER_NAMES
from andon.samplers.typed import parse_text

# A logit_bias beyond this is refused: +-1000 already forces or bans any token (logits span tens),
# and a bias past float32's range would turn logits into inf and NaN.
MAX_BIAS = 1000.0
MAX_TOKEN_ID = 2**31 - 1  # llama.cpp's llama_token is an int32
_TOKEN_IDS = f"must be a token id from 0 to {MAX_TOKEN_ID}"
_LONGEST_SHOWN = 60

Kind = Literal[
    "float", "int", "choice", "bool", "str", "str_list", "sampler_list", "bias_map", "format", "endpoint_list"
]


def _fmt(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _show(value: Any) -> str:
    """A value as an error message quotes it, cut short when it is long."""
    if isinstance(value, str):
        text = repr(value)
    elif isinstance(value, float):
        text = _fmt(value)
    elif isinstance(value, (list, tuple, dict)):
        text = json.dumps(value, ensure_ascii=False, default=str)
    else:
        text = str(value)
    return text if len(text) <= _LONGEST_SHOWN else text[: _LONGEST_SHOWN - 3] + "..."


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: how it is typed, what it defaults to, what is allowed."""

    name: str
    kind: Kind
    default: Any
    description: str
    minimum: float | None = None
    maximum: float | None = None
    min_exclusive: bool = False
    max_exclusive: bool = False
    choices: tuple[int, ...] = field(default=())
    levels: tuple[str, ...] = field(default=())  # words a "bool" also takes (think's low/medium/high)

    @property
    def allowed(self) -> str:
        """What is allowed, in the words of the error messages."""
        if self.kind == "choice":
            return "must be one of " + ", ".join(str(c) for c in self.choices)
        if self.kind == "str_list":
            return "must be a list of text"
        if self.kind == "sampler_list":
            return "must be a list of sampler names from: " + ", ".join(SAMPLER_NAMES)
        if self.kind == "bias_map":
            return f"must be a map of token ids or text to a number from -{MAX_BIAS:g} to {MAX_BIAS:g}, or false"
        if self.kind == "bool":
            return "must be " + " or ".join(", ".join(("true", "false", *self.levels)).rsplit(", ", 1))
        if self.kind == "str":
            return "must be text"
        if self.kind == "format":
            return 'must be "" (free text), "json", or a JSON schema object'
        if self.kind == "endpoint_list":
            return "must be a list of host:port (port 1-65535)"
        noun = "a whole number" if self.kind == "int" else "a number"
        lo, hi = self.minimum, self.maximum
        if lo is not None and hi is not None:
            left = ">" if self.min_exclusive else ">="
            right = "<" if self.max_exclusive else "<="
            return f"must be {noun} {left} {_fmt(lo)} and {right} {_fmt(hi)}"
        if lo is not None:
            return f"must be {noun} {'>' if self.min_exclusive else '>='} {_fmt(lo)}"
        if hi is not None:
            return f"must be {noun} {'<' if self.max_exclusive else '<='} {_fmt(hi)}"
        return f"must be {noun}"

    @property
    def summary(self) -> str:
        """What is allowed, short enough for a table cell."""
        if self.kind == "sampler_list":
            return "a list of sampler names, each at most once (the default lists them all)"
        return self.allowed.removeprefix("must be ")

    def refuse(self, value: Any) -> ParameterError:
        return ParameterError(f"{self.name}: {_show(value)} is not allowed ({self.allowed})")

    def validate(self, value: Any) -> Any:
        """Return the value in its canonical type, or raise ParameterError naming it."""
        if self.kind in ("float", "int", "choice"):
            return self._number(value)
        if self.kind == "str_list":
            if isinstance(value, str):
                return (value,)
            if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
                return tuple(value)
            raise self.refuse(value)
        if self.kind == "sampler_list":
            return self._sampler_list(value)
        if self.kind == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in self.levels:
                return value.strip().lower()
            raise self.refuse(value)
        if self.kind == "str":
            if isinstance(value, str):
                return value
            raise self.refuse(value)
        if self.kind == "format":
            return self._format(value)
        if self.kind == "endpoint_list":
            return self._endpoints(value)
        return self._bias_map(value)

    def parse(self, text: str, *, words: bool = False) -> Any:
        """Read a value as a person types it: the one parser of `/set parameter`, `--set` and the panel.

        See `andon.samplers.typed` for the rules; `words=True` is `/set parameter`'s habit of
        taking each word of a list of text (`stop a b`) as an item.
        """
        return parse_text(self, text, words=words)

    def _number(self, value: Any) -> float | int:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.refuse(value)
        if self.kind in ("int", "choice"):
            if isinstance(value, float) and not value.is_integer():
                raise self.refuse(value)
            value = int(value)
            if self.kind == "choice":
                if value not in self.choices:
                    raise self.refuse(value)
                return value
        else:
            value = float(value)
            if not math.isfinite(value):
                raise self.refuse(value)
        lo, hi = self.minimum, self.maximum
        if lo is not None and (value < lo or (self.min_exclusive and value == lo)):
            raise self.refuse(value)
        if hi is not None and (value > hi or (self.max_exclusive and value == hi)):
            raise self.refuse(value)
        return value

    def _sampler_list(self, value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
            raise self.refuse(value)
        unknown = [v for v in value if v not in SAMPLER_NAMES]
        if unknown:
            raise ParameterError(f"{self.name}: {_show(unknown[0])} is not a sampler ({self.allowed})")
        if len(set(value)) != len(value):
            raise ParameterError(f"{self.name}: {_show(list(value))} names a sampler twice")
        return tuple(value)

    def _format(self, value: Any) -> str | dict[str, Any]:
        if isinstance(value, str) and value.strip().lower() in ("", "json"):
            return value.strip().lower()
        if isinstance(value, Mapping):
            return dict(value)
        raise self.refuse(value)

    def _endpoints(self, value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
            raise self.refuse(value)
        out = []
        for item in value:
            host, sep, port = item.strip().rpartition(":")
            host = host.strip("[]")
            if (
                not sep
                or not host
                or not port.isdigit()
                or not 1 <= int(port) <= 65535
                or any(c.isspace() for c in host)
            ):
                raise ParameterError(f"{self.name}: {_show(item)} is not allowed ({self.allowed})")
            out.append(item.strip())
        return tuple(out)

    def _bias_map(self, value: Any) -> dict[int | str, float]:
        if not isinstance(value, Mapping):
            raise self.refuse(value)
        return {self._token(key): self._bias(key, bias) for key, bias in value.items()}

    def _token(self, key: Any) -> int | str:
        """A token id (an int, or a string of digits) or a token's text."""
        if isinstance(key, str) and key.strip().lstrip("-").isdigit():
            digits = key.strip()
            if len(digits) > 10:
                raise ParameterError(f"{self.name}: token id {_show(digits)} is not allowed ({_TOKEN_IDS})")
            key = int(digits)
        if isinstance(key, bool) or not isinstance(key, (int, str)):
            raise ParameterError(f"{self.name}: {_show(key)} is not a token id or text ({self.allowed})")
        if isinstance(key, int) and not 0 <= key <= MAX_TOKEN_ID:
            raise ParameterError(f"{self.name}: token id {key} is not allowed ({_TOKEN_IDS})")
        return key

    def _bias(self, key: Any, bias: Any) -> float:
        if bias is False or (isinstance(bias, float) and bias == -math.inf):
            return -math.inf  # banned; -inf is how a ban is held once validated
        if isinstance(bias, (int, float)) and not isinstance(bias, bool) and abs(bias) <= MAX_BIAS:
            return float(bias)
        raise ParameterError(
            f"{self.name}: {_show(bias)} for {_show(key)} is not allowed "
            f"(must be a number from -{MAX_BIAS:g} to {MAX_BIAS:g}, or false to ban the token)"
        )
