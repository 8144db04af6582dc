"""`Parameters`: every parameter andon takes, as one frozen pydantic model.

The fields are generated from the ParamSpec table (samplers.params for sampling, the generation
table below), so a default, a range, a description or an error message exists in one place.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any

from andon.presets import bans
from andon.samplers.params import SAMPLING_SPECS, ParameterError, ParamSpec, unknown_name_message
from pydantic import ConfigDict, Field, PlainSerializer, PlainValidator, ValidationError, create_model, model_validator

MAX_SEARCH = 64  # most beams or MBR samples: each is a sequence of its own in one batch
MBR_UTILITIES = ("chrf", "bleu")
THINK_LEVELS = ("low", "medium", "high")  # `think`'s reasoning efforts, as Ollama's and llama.cpp's

GENERATION_SPECS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "num_predict",
        "int",
        -1,
        "Most tokens in a reply; -1 or 0 is no limit (until the end of the turn or a full context), as in Ollama.",
        minimum=-1,
    ),
    ParamSpec("stop", "str_list", (), "End the reply before any of these strings; the string itself is not shown."),
    ParamSpec(
        "num_ctx",
        "int",
        4096,
        "Context window in tokens; refused when its KV cache would not fit in the memory available.",
        minimum=64,
        # the same bound on every machine (README's table is generated): more than any model's
        # trained context; what fits this machine's memory is checked as the model loads
        maximum=1 << 24,
    ),
    ParamSpec(
        "num_gpu", "int", -1, "Layers offloaded to the GPU; -1 is all the backend can take, 0 is CPU only.", minimum=-1
    ),
    ParamSpec(
        "num_thread",
        "int",
        0,
        "CPU threads; 0 lets llama.cpp choose; at most 4 per CPU core of the machine.",
        minimum=0,
        # ggml's own maximum (GGML_MAX_N_THREADS); far more hang or crash llama.cpp (100000
        # segfaults); the machine's cores are checked as the model loads
        maximum=512,
    ),
    ParamSpec(
        "num_batch", "int", 512, "Prompt batch size in tokens; above num_ctx it is num_ctx.", minimum=1, maximum=1 << 24
    ),
)

# Structured output, speculative decoding, thinking and placement.
OUTPUT_SPECS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "format",
        "format",
        "",
        'The reply\'s form: "" free text, "json" any JSON value, or a JSON schema the reply must satisfy.',
    ),
    ParamSpec("grammar", "str", "", "A GBNF grammar the reply must be a sentence of; empty is off."),
    ParamSpec(
        "draft",
        "str",
        "",
        'Speculative decoding: "" off, "ngram" (drafts copied from earlier text), or a draft model.',
    ),
    ParamSpec("draft_max", "int", 16, "Speculative decoding: most tokens drafted per step.", minimum=0, maximum=256),
    ParamSpec(
        "draft_min", "int", 0, "Speculative decoding: fewest drafted tokens worth verifying.", minimum=0, maximum=256
    ),
    ParamSpec(
        "draft_p_min",
        "float",
        0.75,
        "Speculative decoding: a draft model stops drafting where its top probability falls below this.",
        minimum=0.0,
        maximum=1.0,
    ),
    ParamSpec(
        "think",
        "bool",
        True,
        "Let reasoning models think before answering; low/medium/high go to a template's reasoning_effort.",
        levels=THINK_LEVELS,
    ),
    ParamSpec(
        "think_budget",
        "int",
        -1,
        "Most tokens of thinking; at the budget the thinking is closed and the answer follows; -1 is no limit.",
        minimum=-1,
    ),
    ParamSpec(
        "banned_strings",
        "str_list",
        (),
        "Phrases the reply never contains (any case), or re:REGEX; on a match the reply rewinds and avoids it.",
    ),
    ParamSpec("rpc", "endpoint_list", (), "llama.cpp RPC servers (host:port) that hold some of the model's layers."),
)

# Search decoding (app/engine/beams.py, app/engine/mbr.py): Hugging Face generate's names and meanings.
SEARCH_SPECS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "num_beams",
        "int",
        1,
        "Beams of a beam search; 1 is off. Penalties, DRY, logit_bias, grammar apply; truncation, temperature do not.",
        minimum=1,
        maximum=MAX_SEARCH,
    ),
    ParamSpec(
        "length_penalty",
        "float",
        1.0,
        "Beam search: a finished beam's score is its log-probability / length^length_penalty.",
        minimum=-10.0,
        maximum=10.0,
    ),
    ParamSpec("early_stopping", "bool", False, "Beam search: stop as soon as num_beams beams have finished."),
    ParamSpec(
        "mbr_samples",
        "int",
        0,
        "Minimum Bayes risk: draw this many replies and keep the one most like the others; 0 is off.",
        minimum=0,
        maximum=MAX_SEARCH,
    ),
    ParamSpec("mbr_utility", "str", "chrf", 'Minimum Bayes risk: how replies are compared, "chrf" or "bleu".'),
)

_TABLES = (*SAMPLING_SPECS, *GENERATION_SPECS, *OUTPUT_SPECS, *SEARCH_SPECS)
ALL_SPECS: dict[str, ParamSpec] = {s.name: s for s in _TABLES}
SAMPLING_NAMES: frozenset[str] = frozenset(s.name for s in SAMPLING_SPECS)
MODEL_NAMES: frozenset[str] = frozenset({"num_ctx", "num_gpu", "num_thread", "num_batch"})


def _serialize_bias(value: Mapping[int | str, float]) -> dict[str, float | bool]:
    return {str(k): (False if v == -math.inf else v) for k, v in value.items()}


def _serialize_list(value: tuple[str, ...]) -> list[str]:
    return list(value)


def _validator(spec: ParamSpec) -> Any:
    """The spec's check, and for banned_strings each item's (a bounded regular expression)."""
    if spec.name == "mbr_utility":
        return _utility
    if spec.name != "banned_strings":
        return spec.validate

    def validate(value: Any) -> Any:
        try:
            return bans.check(spec.validate(value))
        except ValueError as exc:
            raise ParameterError(str(exc)) from None

    return validate


def _utility(value: Any) -> str:
    if value not in MBR_UTILITIES:
        raise ParameterError(f"mbr_utility: {value!r} is not allowed (must be one of {', '.join(MBR_UTILITIES)})")
    return str(value)


def _search_conflict(p: Any) -> str | None:
    """The one line for a search setting that cannot go with another, or None."""
    if p.num_beams > 1 and p.mbr_samples > 0:
        return (
            f"num_beams {p.num_beams} and mbr_samples {p.mbr_samples} cannot be used together: "
            "set num_beams to 1 or mbr_samples to 0"
        )
    if p.num_beams > 1 and p.draft:
        return f'num_beams {p.num_beams} cannot be used with draft {p.draft!r}: set draft to "" for beam search'
    return None


def _field(spec: ParamSpec) -> tuple[Any, Any]:
    annotated: Any = Annotated[Any, PlainValidator(_validator(spec))]
    if spec.kind == "bias_map":
        annotated = Annotated[Any, PlainValidator(spec.validate), PlainSerializer(_serialize_bias)]
    elif spec.kind in ("str_list", "sampler_list", "endpoint_list"):
        annotated = Annotated[Any, PlainValidator(_validator(spec)), PlainSerializer(_serialize_list)]
    default = spec.validate(spec.default)
    if spec.kind == "bias_map":
        return annotated, Field(default_factory=dict, description=spec.description)
    return annotated, Field(default=default, description=spec.description)


_Base = create_model(  # type: ignore[call-overload]
    "_ParametersBase",
    __config__=ConfigDict(extra="forbid", frozen=True),
    **{name: _field(spec) for name, spec in ALL_SPECS.items()},
)


class Parameters(_Base):  # type: ignore[misc, valid-type]
    """The effective generation parameters. Build with `Parameters.of(...)` for andon's messages."""

    @model_validator(mode="after")
    def _combinations(self) -> Parameters:
        if (conflict := _search_conflict(self)) is not None:
            raise ParameterError(conflict)
        return self

    @classmethod
    def of(cls, values: Mapping[str, Any] | None = None, base: Parameters | None = None) -> Parameters:
        """Validate `values` over `base` (or the defaults); ParameterError names the first problem."""
        values = dict(values or {})
        for name in values:
            if name not in ALL_SPECS:
                raise ParameterError(unknown_name_message(name, ALL_SPECS))
        merged = {**(base.model_dump() if base is not None else {}), **values}
        try:
            return cls.model_validate(merged)
        except ValidationError as exc:
            raise ParameterError(_first_message(exc)) from None

    def changed(self, reference: Parameters | None = None) -> dict[str, Any]:
        """The fields that differ from `reference` (the defaults when None), as plain values."""
        ref = (reference or DEFAULTS).model_dump()
        mine = self.model_dump()
        return {k: v for k, v in mine.items() if v != ref[k]}

    def sampling(self) -> dict[str, Any]:
        """What the sampler chain takes."""
        return {k: v for k, v in self.model_dump().items() if k in SAMPLING_NAMES}

    def model_options(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in MODEL_NAMES}

    def to_plain(self, names: Any = None) -> dict[str, Any]:
        """JSON/TOML-ready values (lists, `false` for banned tokens)."""
        data = self.model_dump(mode="json")
        return data if names is None else {k: data[k] for k in names}


def _first_message(exc: ValidationError) -> str:
    err = exc.errors()[0]
    name = str(err["loc"][0]) if err["loc"] else "parameters"
    msg = err.get("msg", "")
    if "ctx" in err and isinstance(err["ctx"].get("error"), ParameterError):
        return str(err["ctx"]["error"])
    return msg.removeprefix("Value error, ") if msg.startswith("Value error, ") else f"{name}: {msg}"


def describe(name: str) -> str:
    spec = ALL_SPECS[name]
    return f"{spec.description} ({spec.allowed.removeprefix('must be ')})"


DEFAULTS = Parameters()

__all__ = [
    "ALL_SPECS",
    "DEFAULTS",
    "GENERATION_SPECS",
    "OUTPUT_SPECS",
    "SEARCH_SPECS",
    "ParameterError",
    "Parameters",
    "describe",
]
