"""The sampler chain: parameters in, a llama-cpp-python logits processor out."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
from andon.samplers.candidates import Candidates
from andon.samplers.logit_bias import check_token_ids
from andon.samplers.params import resolve
from andon.samplers.registry import BY_NAME, selected
from andon.samplers.stage import Stage, Step
from andon.samplers.vocab import Vocab
from numpy.typing import NDArray


class LogitsProcessor(Protocol):
    """llama-cpp-python's logits processor signature."""

    def __call__(self, input_ids: NDArray[np.intc], scores: NDArray[np.single], /) -> NDArray[np.single]: ...


# Called after each stage with its name and the candidates it left (the inspector's view).
Observer = Callable[[str, Candidates], None]
# Chain.save_state's snapshot: the generator's state and each stage's attributes.
ChainState = tuple[Mapping[str, Any], tuple[dict[str, Any], ...]]


def is_active(name: str, p: Mapping[str, Any]) -> bool:
    """Whether the stage `name` would change anything with these resolved values."""
    return BY_NAME[name].active(p)


def needs_vocab(params: Mapping[str, Any] | None) -> bool:
    """Whether the chain for these values reads token texts (DRY's breakers, logit_bias by text).

    Raises ParameterError like `build_chain` for an unknown name or a value outside its range.
    """
    p = resolve(params)
    return any(stage.needs_vocab(p) for stage in selected(p))


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

    def save_state(self) -> ChainState:
        """What a run may change: the generator XTC draws from and each stage's learnt state.

        `restore_state` puts it back, so the chain can run a second time for the same token (a
        grammar's fallback) without mirostat's mu or the random draws advancing twice. A stage's
        state is its attributes; stages replace them in `apply`, never mutate them in place.
        """
        return self.rng.bit_generator.state, tuple(dict(vars(stage)) for stage in self.stages)

    def restore_state(self, state: ChainState) -> None:
        rng, stages = state
        self.rng.bit_generator.state = rng
        for stage, saved in zip(self.stages, stages, strict=True):
            vars(stage).update(saved)

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
            cands.owned = False  # the observer may keep them as they are
        for stage in self.stages:
            cands = stage.apply(cands, step)
            if observe is not None:
                observe(stage.name, cands)
                cands.owned = False
        return cands

    def candidates(self, logits: NDArray[np.single]) -> Candidates:
        n = logits.shape[0]
        if self._ids is None or self._ids.shape[0] != n:
            self._ids = np.arange(n, dtype=np.intc)
            self._ids.setflags(write=False)
        values = np.array(logits, dtype=np.float32, copy=True)
        return Candidates(self._ids, values, sorted=False, identity=True, owned=True)

    @staticmethod
    def scatter(cands: Candidates, logits: NDArray[np.single]) -> NDArray[np.single]:
        """Full-vocabulary logits: the candidates' values, -inf for every other token."""
        if cands.identity and cands.size == logits.shape[0] and np.isfinite(cands.logits).any():
            return cands.logits  # every token, in vocabulary order: already the answer (a copy of `logits`)
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
    n_vocab: int | None = None,
    seed: int | None = None,
) -> Chain:
    """A chain for these parameter values (`andon.samplers.params`); missing names take their defaults.

    Raises ValueError (ParameterError) naming an unknown parameter or a value outside its range,
    and, where the vocabulary is known (`vocab`, or only its size `n_vocab`), a logit_bias token id
    it does not have. `seed` overrides params["seed"]; -1 or None draws a fresh seed.
    """
    p = resolve(params)
    if vocab is not None and not isinstance(vocab, Vocab):
        vocab = Vocab(vocab)
    if vocab is not None:
        n_vocab = vocab.size
    if n_vocab is not None:
        check_token_ids(p["logit_bias"], n_vocab)
    if seed is None:
        seed = p["seed"]
    stages = [stage.from_params({**p, "seed": seed}, vocab) for stage in selected(p)]  # adaptive-p's own
    return Chain(stages, None if seed is None or seed < 0 else seed)
