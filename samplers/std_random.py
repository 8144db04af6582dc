"""llama.cpp's own random draws: std::mt19937 and libstdc++'s std::discrete_distribution<int>.

A stage that selects the token as llama.cpp does (adaptive-p) must draw the same numbers from the
same seed. numpy's MT19937 is the same generator; RandomState's integer seeding is the standard
init_genrand, as `std::mt19937(seed)`. The draw is what libstdc++ (GCC, which builds the installed
llama.cpp) does: the weights in double, normalised by their left-to-right sum, their running sum
with the last entry set to 1, and `lower_bound` of generate_canonical<double, 53>, which takes two
32-bit outputs: (a + b * 2^32) / 2^64. Fewer than two weights draw nothing and give index 0.

The state is a plain value (`MtState`), replaced on each draw and never changed in place, so a
chain's save_state/restore_state keeps and puts it back like any other attribute.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

MtState = Mapping[str, Any]
_TWO_32 = 4294967296.0
_ONE_BELOW = float(np.nextafter(1.0, 0.0))


def mt19937_state(seed: int) -> MtState:
    """The state of `std::mt19937(seed)` (seed taken modulo 2^32, as llama.cpp's uint32_t)."""
    legacy: dict[str, Any] = np.random.RandomState(seed % (1 << 32)).get_state(legacy=False)
    return {"bit_generator": "MT19937", "state": legacy["state"]}


def discrete(weights: NDArray[np.float32], state: MtState, draws: bool = True) -> tuple[int, MtState]:
    """(index chosen, the generator's next state) as std::discrete_distribution<int>(weights)(rng).

    `draws` False: the distribution has fewer than two entries, so nothing is drawn and the
    answer is 0 (`weights` may be shorter than what llama.cpp holds: zero-weight entries it
    keeps change neither the sums nor the choice).
    """
    if not draws:
        return 0, state
    generator = np.random.MT19937()
    generator.state = cast(Any, state)
    low, high = (float(x) for x in generator.random_raw(2))
    u = (low + high * _TWO_32) / (_TWO_32 * _TWO_32)
    u = min(u, _ONE_BELOW)
    w = weights.astype(np.float64)
    total = np.cumsum(w)[-1]  # std::accumulate: left to right
    cumulative = np.cumsum(w / total)
    cumulative[-1] = 1.0
    index = int(np.searchsorted(cumulative, u, side="left"))  # std::lower_bound
    return min(index, w.shape[0] - 1), generator.state
