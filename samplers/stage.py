"""What every stage of the chain looks like."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from andon.samplers.candidates import Candidates
from numpy.typing import NDArray


@dataclass(slots=True)
class Step:
    """What a stage may read besides the candidates: the context and the chain's generator."""

    input_ids: NDArray[np.intc]
    rng: np.random.Generator
    n_vocab: int


class Stage:
    """One sampler. `apply` returns a new candidate set and never mutates its argument."""

    name: ClassVar[str] = "stage"

    def apply(self, c: Candidates, step: Step) -> Candidates:
        raise NotImplementedError

    def reset(self) -> None:
        """Forget any state learnt from earlier calls."""
