"""Every sampler the chain can run, in one table: where each goes in the chain and what it reads.

Each stage class declares its name, its parameters, how it is built, when it is active and whether
it needs token texts (see `stage.Stage`); this module only says where it goes. Adding a sampler is
its class, one entry here and its ParamSpecs in `params.py`.
"""

from __future__ import annotations

from andon.samplers.adaptive_p import AdaptiveP
from andon.samplers.logit_bias import LogitBias
from andon.samplers.mirostat import Mirostat
from andon.samplers.penalties import Dry, Penalties
from andon.samplers.stage import Params, Stage
from andon.samplers.temperature import Smoothing, Temperature
from andon.samplers.truncation import (
    EpsilonCutoff,
    EtaCutoff,
    MinP,
    TailFree,
    TopA,
    TopK,
    TopNSigma,
    TopP,
    Typical,
    Xtc,
)

# The stages `samplers` orders, in the default order: llama.cpp's, with the samplers it lacks where
# text-generation-webui puts them relative to the others, and adaptive-p last (SELECTING).
ORDERED: tuple[type[Stage], ...] = (
    Penalties,
    Dry,
    TopNSigma,
    TopK,
    Typical,
    TopP,
    MinP,
    TailFree,
    TopA,
    EpsilonCutoff,
    EtaCutoff,
    Xtc,
    Smoothing,
    Temperature,
    AdaptiveP,
)
# Runs before the ordered stages, whatever their order.
FIRST: type[Stage] = LogitBias
# Picks the token itself: runs after every other stage wherever `samplers` lists it, as llama.cpp
# adds adaptive-p at the chain's end in place of its dist sampler.
SELECTING: type[Stage] = AdaptiveP
# When active, replaces the ordered stages: logit_bias -> temperature -> mirostat, as in llama.cpp.
REPLACING: type[Stage] = Mirostat
# Parameters of the chain as a whole rather than of one stage.
CHAIN_PARAMETERS: tuple[str, ...] = ("min_keep", "samplers", "seed")

SAMPLER_NAMES: tuple[str, ...] = tuple(stage.name for stage in ORDERED)
BY_NAME: dict[str, type[Stage]] = {stage.name: stage for stage in (FIRST, *ORDERED, REPLACING)}


def selected(p: Params) -> list[type[Stage]]:
    """The stage classes a chain runs for these resolved values, in the order it runs them."""
    first = [FIRST] if FIRST.active(p) else []
    if REPLACING.active(p):
        return [*first, Temperature, REPLACING]
    ordered = [BY_NAME[name] for name in p["samplers"] if BY_NAME[name].active(p)]
    return [*first, *(s for s in ordered if s is not SELECTING), *(s for s in ordered if s is SELECTING)]


def parameter_groups() -> list[tuple[str, tuple[str, ...]]]:
    """(stage name, the parameters it reads) in chain order, then ("chain", the chain's own)."""
    return [*((stage.name, stage.parameters) for stage in (FIRST, *ORDERED, REPLACING)), ("chain", CHAIN_PARAMETERS)]
