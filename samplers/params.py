"""Every sampling parameter: name, type, default, valid range, one line of help.

This table is the one source of truth: the chain reads its values through it, and
`presets.Parameters` builds its pydantic fields from it, so a range or a message is written once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from andon.samplers.errors import ParameterError
from andon.samplers.registry import SAMPLER_NAMES

Kind = Literal[
    "float", "int", "choice", "bool", "str", "str_list", "sampler_list", "bias_map", "format", "endpoint_list"
]

DEFAULT_ORDER: tuple[str, ...] = SAMPLER_NAMES


def _fmt(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, float):
        return _fmt(value)
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


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

    @property
    def allowed(self) -> str:
        """What is allowed, in the words of the error messages."""
        if self.kind == "choice":
            return "must be one of " + ", ".join(str(c) for c in self.choices)
        if self.kind == "str_list":
            return "must be a list of strings"
        if self.kind == "sampler_list":
            return "must be a list of sampler names from: " + ", ".join(SAMPLER_NAMES)
        if self.kind == "bias_map":
            return "must map token ids or token text to a number or false"
        if self.kind == "bool":
            return "must be true or false"
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

    def parse(self, text: str) -> Any:
        """Read a value typed by a person (`--set name=value`, `/set parameter`)."""
        text = text.strip()
        if self.kind in ("float", "int", "choice"):
            try:
                number = float(text) if self.kind == "float" else _parse_int(text)
            except ValueError:
                raise self.refuse(text) from None
            return self.validate(number)
        if self.kind == "bool":
            word = text.lower()
            if word in ("true", "yes", "on", "1"):
                return True
            if word in ("false", "no", "off", "0"):
                return False
            raise self.refuse(text)
        if self.kind == "str":
            return self.validate(text)
        if self.kind == "format":
            if text.startswith("{"):
                try:
                    return self.validate(json.loads(text))
                except json.JSONDecodeError as exc:
                    raise ParameterError(f"{self.name}: the schema is not valid JSON ({exc})") from None
            return self.validate(text)
        if self.kind == "endpoint_list" and not text.startswith("["):
            return self.validate([t for t in text.replace(";", ",").split(",") if t.strip()])
        if self.kind == "bias_map":
            try:
                return self.validate(json.loads(text) if text else {})
            except json.JSONDecodeError:
                raise self.refuse(text) from None
        if text.startswith("["):
            try:
                return self.validate(json.loads(text))
            except json.JSONDecodeError:
                raise self.refuse(text) from None
        if self.kind == "sampler_list":
            return self.validate(text.replace(";", ","))  # validate splits a string on commas
        return self.validate([text])

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
        out: dict[int | str, float] = {}
        for key, bias in value.items():
            token: int | str = key
            if isinstance(key, str) and key.strip().lstrip("-").isdigit():
                token = int(key)
            if isinstance(token, bool) or not isinstance(token, (int, str)):
                raise self.refuse(value)
            if isinstance(token, int) and token < 0:
                raise ParameterError(f"{self.name}: token id {token} is not allowed (must be >= 0)")
            if bias is False:
                out[token] = -math.inf
            elif isinstance(bias, bool) or not isinstance(bias, (int, float)) or math.isnan(bias):
                raise ParameterError(
                    f"{self.name}: {_show(bias)} for {_show(key)} is not allowed (must be a number or false)"
                )
            else:
                out[token] = float(bias)
        return out


def _parse_int(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)  # "2.0" is a whole number; "2.5" is refused by validate


def _f(name: str, default: float, description: str, **bounds: Any) -> ParamSpec:
    return ParamSpec(name, "float", default, description, **bounds)


def _i(name: str, default: int, description: str, **bounds: Any) -> ParamSpec:
    return ParamSpec(name, "int", default, description, **bounds)


# One line of help each: the parameter table, `andon presets parameters` and the app's parameter
# panel show it as it is written here.
SAMPLING_SPECS: tuple[ParamSpec, ...] = (
    _f(
        "temperature",
        0.8,
        "Divides the logits: below 1 is more focused, above 1 more random; 0 is greedy (always the likeliest).",
        minimum=0.0,
    ),
    _f(
        "dynatemp_range",
        0.0,
        "Dynamic temperature: moves it within temperature +/- range with the entropy of the distribution; 0 is off.",
        minimum=0.0,
    ),
    _f(
        "dynatemp_exponent",
        1.0,
        "Dynamic temperature: exponent on the normalised entropy; above 1 stays nearer the low end.",
        minimum=0.0,
    ),
    _i("top_k", 40, "Keep only the k likeliest tokens; 0 is off.", minimum=0),
    _f(
        "top_p",
        0.9,
        "Nucleus sampling: keep the likeliest tokens until their probabilities add up to p; 1 is off.",
        minimum=0.0,
        maximum=1.0,
    ),
    _f(
        "min_p",
        0.0,
        "Drop tokens less likely than min_p times the likeliest token; 0 is off.",
        minimum=0.0,
        maximum=1.0,
    ),
    _f(
        "typical_p",
        1.0,
        "Locally typical sampling: keep the tokens nearest the expected surprise, up to this mass; 1 is off.",
        minimum=0.0,
        maximum=1.0,
        min_exclusive=True,
    ),
    _f("top_n_sigma", -1.0, "Keep tokens whose logit is within n standard deviations of the top one; <= 0 is off."),
    _f(
        "xtc_probability",
        0.0,
        "XTC (exclude top choices): the chance per token that it sets the likeliest tokens aside; 0 is off.",
        minimum=0.0,
        maximum=1.0,
    ),
    _f(
        "xtc_threshold",
        0.1,
        "XTC removes every token at least this likely except the least likely of them; above 0.5 is off.",
        minimum=0.0,
        maximum=1.0,
    ),
    _f(
        "dry_multiplier",
        0.0,
        "DRY: penalty on a token that would continue a repeat of earlier text; 0 is off.",
        minimum=0.0,
    ),
    _f("dry_base", 1.75, "DRY: the penalty grows as base^(repeat length - dry_allowed_length).", minimum=1.0),
    _i("dry_allowed_length", 2, "DRY: repeats up to this many tokens long go unpenalised.", minimum=0),
    _i(
        "dry_penalty_last_n",
        64,
        "DRY: how many recent tokens it searches for repeats; -1 is the whole context, 0 is off.",
        minimum=-1,
    ),
    ParamSpec(
        "dry_sequence_breakers",
        "str_list",
        ("\n", ":", '"', "*"),
        "DRY: a repeat never reaches back across a token that contains one of these strings.",
    ),
    _i(
        "repeat_last_n",
        64,
        "How many recent tokens (prompt and reply) the repetition penalties look at; -1 is all, 0 is off.",
        minimum=-1,
    ),
    _f(
        "repeat_penalty",
        1.0,
        "Penalise tokens seen recently: positive logits divided by it, negative ones multiplied; 1 is off.",
        minimum=0.0,
        min_exclusive=True,
    ),
    _f("presence_penalty", 0.0, "Subtracted from the logit of every token seen recently; 0 is off."),
    _f("frequency_penalty", 0.0, "Subtracted from a token's logit once for each time it was seen recently; 0 is off."),
    ParamSpec(
        "mirostat",
        "choice",
        0,
        "Mirostat 1 or 2: truncates to keep the surprise near mirostat_tau, instead of the other samplers; 0 is off.",
        choices=(0, 1, 2),
    ),
    _f(
        "mirostat_tau",
        5.0,
        "Mirostat: the target surprise in bits; lower is more focused.",
        minimum=0.0,
        min_exclusive=True,
    ),
    _f(
        "mirostat_eta",
        0.1,
        "Mirostat: learning rate, how fast it follows the surprise of each token.",
        minimum=0.0,
        min_exclusive=True,
    ),
    _f(
        "tfs_z",
        1.0,
        "Tail free sampling: cut the tail where the sorted probabilities flatten out; 1 is off.",
        minimum=0.0,
        maximum=1.0,
        min_exclusive=True,
    ),
    _f("top_a", 0.0, "Drop tokens less likely than top_a times the top probability squared; 0 is off.", minimum=0.0),
    _f(
        "epsilon_cutoff",
        0.0,
        "Drop tokens less likely than this probability (not the x1e-4 scale of some UIs); 0 is off.",
        minimum=0.0,
        maximum=1.0,
        max_exclusive=True,
    ),
    _f(
        "eta_cutoff",
        0.0,
        "Drop tokens less likely than min(eta, sqrt(eta) * exp(-entropy)), looser when unsure; 0 is off.",
        minimum=0.0,
        maximum=1.0,
        max_exclusive=True,
    ),
    _f(
        "smoothing_factor",
        0.0,
        "Quadratic sampling: low values even out the top choices, high values focus on them; 0 is off.",
        minimum=0.0,
    ),
    _f(
        "smoothing_curve",
        1.0,
        "Quadratic sampling: above 1 adds a cubic term; 1 is plain quadratic.",
        minimum=1.0,
    ),
    ParamSpec(
        "logit_bias",
        "bias_map",
        {},
        'Added to token logits before any other sampler, e.g. {"15": 2, "Hello": -5}; false bans the token.',
    ),
    _i("min_keep", 1, "Every truncation sampler keeps at least this many tokens.", minimum=1),
    ParamSpec(
        "samplers",
        "sampler_list",
        DEFAULT_ORDER,
        "The order the samplers run in; logit_bias always runs first and a sampler that is off is skipped.",
    ),
    _i("seed", -1, "Random seed; -1 picks a new one each reply, any other value repeats a reply exactly.", minimum=-1),
)

SPECS: dict[str, ParamSpec] = {s.name: s for s in SAMPLING_SPECS}


def resolve(params: Mapping[str, Any] | None, specs: Mapping[str, ParamSpec] = SPECS) -> dict[str, Any]:
    """Validate a mapping of names to values and fill in every default.

    Raises ParameterError for an unknown name or a value outside its range.
    """
    values = {name: spec.default for name, spec in specs.items()}
    for name, value in (params or {}).items():
        spec = specs.get(name)
        if spec is None:
            raise ParameterError(unknown_name_message(name, specs))
        values[name] = spec.validate(value)
    return values


def unknown_name_message(name: str, specs: Mapping[str, ParamSpec]) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(specs), n=1)
    hint = f"; did you mean {close[0]}?" if close else "; see `show parameters` for the names"
    return f"{name}: unknown parameter{hint}"
