"""What every stage of the chain looks like, and what each declares about itself.

A stage class is the one place that says, for its sampler: its `name` (as `samplers` orders it),
the `parameters` it reads, how it is built from them (`from_params`), when it changes anything
(`active`) and whether it needs the model's token texts (`needs_vocab`). The chain builds a stage
only when it is active, so `apply` never tests for the "off" values again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from andon.samplers.candidates import Candidates
from andon.samplers.vocab import Vocab
from numpy.typing import NDArray

Params = Mapping[str, Any]


@dataclass(slots=True)
class Step:
    """What a stage may read besides the candidates: the context and the chain's generator."""

    input_ids: NDArray[np.intc]
    rng: np.random.Generator
    n_vocab: int


class Stage:
    """One sampler. `apply` returns a new candidate set and never mutates its argument, except
    the logits `writable_logits` lends where the chain owns them (Candidates.owned)."""

    name: ClassVar[str] = "stage"
    # The parameters this stage reads, in the order the parameter table lists them.
    parameters: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_params(cls, p: Params, vocab: Vocab | None) -> Stage:
        """The stage for these resolved parameter values."""
        raise NotImplementedError

    @classmethod
    def active(cls, p: Params) -> bool:
        """Whether the stage would change anything with these values (the "off" its help names)."""
        return True

    @classmethod
    def needs_vocab(cls, p: Params) -> bool:
        """Whether, with these values, the stage reads token texts (only asked when active)."""
        return False

    def apply(self, c: Candidates, step: Step) -> Candidates:
        raise NotImplementedError

    def reset(self) -> None:
        """Forget any state learnt from earlier calls."""
