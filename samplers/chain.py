"""The sampler chain: parameters in, a llama-cpp-python logits processor out."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
from andon.samplers.candidates import Candidates
from andon.samplers.logit_bias import LogitBias
from andon.samplers.mirostat import Mirostat
from andon.samplers.params import resolve
from andon.samplers.penalties import Dry, Penalties
from andon.samplers.stage import Stage, Step
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
from andon.samplers.vocab import Vocab
from numpy.typing import NDArray


class LogitsProcessor(Protocol):
    """llama-cpp-python's logits processor signature."""

    def __call__(self, input_ids: NDArray[np.intc], scores: NDArray[np.single], /) -> NDArray[np.single]: ...


# Called after each stage with its name and the candidates it left (the inspector's view).
Observer = Callable[[str, Candidates], None]

_Factory = Callable[[dict[str, Any], Vocab | None], Stage]

_STAGES: dict[str, _Factory] = {
    "penalties": lambda p, v: Penalties(
        p["repeat_last_n"], p["repeat_penalty"], p["frequency_penalty"], p["presence_penalty"]
    ),
    "dry": lambda p, v: Dry(
        p["dry_multiplier"],
        p["dry_base"],
        p["dry_allowed_length"],
        p["dry_penalty_last_n"],
        tuple(p["dry_sequence_breakers"]),
        v,
    ),
    "top_n_sigma": lambda p, v: TopNSigma(p["top_n_sigma"], p["min_keep"]),
    "top_k": lambda p, v: TopK(p["top_k"], p["min_keep"]),
    "typical_p": lambda p, v: Typical(p["typical_p"], p["min_keep"]),
    "top_p": lambda p, v: TopP(p["top_p"], p["min_keep"]),
    "min_p": lambda p, v: MinP(p["min_p"], p["min_keep"]),
    "tfs_z": lambda p, v: TailFree(p["tfs_z"], p["min_keep"]),
    "top_a": lambda p, v: TopA(p["top_a"], p["min_keep"]),
    "epsilon_cutoff": lambda p, v: EpsilonCutoff(p["epsilon_cutoff"], p["min_keep"]),
    "eta_cutoff": lambda p, v: EtaCutoff(p["eta_cutoff"], p["min_keep"]),
    "xtc": lambda p, v: Xtc(p["xtc_probability"], p["xtc_threshold"], p["min_keep"]),
    "smoothing": lambda p, v: Smoothing(p["smoothing_factor"], p["smoothing_curve"]),
    "temperature": lambda p, v: Temperature(p["temperature"], p["dynatemp_range"], p["dynatemp_exponent"]),
}


def is_active(name: str, p: Mapping[str, Any]) -> bool:
    """Whether a stage would change anything with these values (PARAMETERS.md's "off")."""
    return {
        "penalties": p["repeat_last_n"] != 0
        and (p["repeat_penalty"] != 1.0 or p["frequency_penalty"] != 0.0 or p["presence_penalty"] != 0.0),
        "dry": p["dry_multiplier"] != 0.0 and p["dry_penalty_last_n"] != 0,
        "top_n_sigma": p["top_n_sigma"] > 0.0,
        "top_k": p["top_k"] > 0,
        "typical_p": p["typical_p"] < 1.0,
        "top_p": p["top_p"] < 1.0,
        "min_p": p["min_p"] > 0.0,
        "tfs_z": p["tfs_z"] < 1.0,
        "top_a": p["top_a"] > 0.0,
        "epsilon_cutoff": p["epsilon_cutoff"] > 0.0,
        "eta_cutoff": p["eta_cutoff"] > 0.0,
        "xtc": p["xtc_probability"] > 0.0 and p["xtc_threshold"] <= 0.5,
        "smoothing": p["smoothing_factor"] > 0.0,
        "temperature": True,  # temperature 1 is neutral but greedy (0) is not: always run it
    }[name]


class Chain:
    """An ordered list of stages. Call it like a llama-cpp-python logits processor."""

    def __init__(self, stages: Sequence[Stage], seed: int | None = None) -> None:
        self.stages = list(stages)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self._ids: NDArray[np.intc] | None = None

    def reset(self) -> None:
        """Start over: forget mirostat's mu and reseed XTC's generator."""
        self.rng = np.random.default_rng(self.seed)
        for stage in self.stages:
            stage.reset()

    def __call__(self, input_ids: NDArray[np.intc], logits: NDArray[np.single]) -> NDArray[np.single]:
        return self.run(input_ids, logits)

    def run(
        self,
        input_ids: NDArray[np.intc],
        logits: NDArray[np.single],
        observe: Observer | None = None,
    ) -> NDArray[np.single]:
        """New logits: removed tokens -inf, temperature applied. `logits` is not modified."""
        return self.scatter(self.candidates_after(input_ids, logits, observe), logits)

    def candidates_after(
        self,
        input_ids: NDArray[np.intc],
        logits: NDArray[np.single],
        observe: Observer | None = None,
    ) -> Candidates:
        """The candidates left after every stage (what `run` scatters back to the vocabulary)."""
        cands = self.candidates(logits)
        step = Step(np.asarray(input_ids), self.rng, logits.shape[0])
        if observe is not None:
            observe("input", cands)
        for stage in self.stages:
            cands = stage.apply(cands, step)
            if observe is not None:
                observe(stage.name, cands)
        return cands

    def candidates(self, logits: NDArray[np.single]) -> Candidates:
        n = logits.shape[0]
        if self._ids is None or self._ids.shape[0] != n:
            self._ids = np.arange(n, dtype=np.intc)
            self._ids.setflags(write=False)
        values = np.array(logits, dtype=np.float32, copy=True)
        return Candidates(self._ids, values, sorted=False, identity=True)

    @staticmethod
    def scatter(cands: Candidates, logits: NDArray[np.single]) -> NDArray[np.single]:
        """Full-vocabulary logits: the candidates' values, -inf for every other token."""
        out = np.full(logits.shape[0], -np.inf, np.float32)
        out[cands.ids] = cands.logits
        if not np.isfinite(cands.logits).any():
            # Never hand back a distribution with nothing in it: keep the best token the input had.
            out[int(np.argmax(logits))] = 0.0
        return out


def build_chain(
    params: Mapping[str, Any] | None = None,
    *,
    vocab: Vocab | Sequence[str] | None = None,
    seed: int | None = None,
) -> Chain:
    """A chain for these PARAMETERS.md values; missing names take their defaults.

    Raises ValueError (ParameterError) naming an unknown parameter or a value outside its range.
    `seed` overrides params["seed"]; -1 or None draws a fresh seed.
    """
    p = resolve(params)
    if vocab is not None and not isinstance(vocab, Vocab):
        vocab = Vocab(vocab)
    stages: list[Stage] = []
    if p["logit_bias"]:
        stages.append(LogitBias.build(p["logit_bias"], vocab))
    if p["mirostat"]:
        # llama.cpp's mirostat chain: logit_bias -> temperature -> mirostat
        stages.append(_STAGES["temperature"](p, vocab))
        stages.append(Mirostat(p["mirostat"], p["mirostat_tau"], p["mirostat_eta"], p["min_keep"]))
    else:
        stages.extend(_STAGES[name](p, vocab) for name in p["samplers"] if is_active(name, p))
    if seed is None:
        seed = p["seed"]
    return Chain(stages, None if seed is None or seed < 0 else seed)
