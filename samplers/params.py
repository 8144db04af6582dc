"""Every sampling parameter: name, type, default, valid range, one line of help.

This table is the one source of truth: the chain reads its values through it, and
`presets.Parameters` builds its pydantic fields from it, so a range or a message is written once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from andon.samplers.errors import ParameterError
from andon.samplers.registry import SAMPLER_NAMES
from andon.samplers.spec import ParamSpec

DEFAULT_ORDER: tuple[str, ...] = SAMPLER_NAMES


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
        "adaptive_target",
        -1.0,
        "Adaptive-p: picks the token itself, near this probability, adapting to its recent picks; negative is off.",
        maximum=1.0,
    ),
    _f(
        "adaptive_decay",
        0.9,
        "Adaptive-p: how long it remembers its picks (about 1 / (1 - decay) tokens); lower adapts faster.",
        minimum=0.0,
        maximum=0.99,
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


# Where a user finds the names: the command line's listing (the app passes its own command).
NAMES_AT = "`andon presets parameters`"


def unknown_name_message(name: str, specs: Mapping[str, ParamSpec], names_at: str = NAMES_AT) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(specs), n=1)
    hint = f"did you mean {close[0]}? ({names_at} lists them all)" if close else f"see {names_at} for the names"
    return f"{name}: unknown parameter; {hint}"
