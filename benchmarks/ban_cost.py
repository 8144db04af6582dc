"""What banned_strings costs per token when nothing matches (issue 24: target <= 0.1 ms with 10
banned strings, <= 0.5 ms with 100).

A reply's text is cut into the embedded model's tokens and fed token by token to what a reply
with bans runs for each token (app/engine/generation.py, Reply): the state kept before the token
(the default chain's and the draw's state, the text decoder) and the BanWatch's look at the held
text (one compiled alternation, a whole match then a partial one). Half the banned strings are
phrases, half `re:` patterns; none occurs in the text. The model's forward pass is not included:
this is what the bans add to it.

    python benchmarks/ban_cost.py [--rounds 5] [--tokens 2000]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import llama_cpp
import numpy as np
from andon.app.engine.banning import BanWatch
from andon.app.engine.generation import _SamplingState
from andon.app.engine.tokens import TextDecoder
from andon.app.models.files import embedded_model_path
from andon.presets.bans import Bans
from andon.samplers import build_chain

TEXT = (
    "The sea is a vast and mysterious realm, teeming with life and full of wonders. Waves roll in from "
    "the horizon, carrying salt and light; gulls wheel above the harbour while fishing boats return with "
    "their catch. Beneath the surface, forests of kelp sway in the current and shoals of silver fish "
    "turn as one. Sailors have told stories of it for thousands of years, and it still keeps its secrets. "
)


def banned(n: int) -> list[str]:
    """n banned strings that the text never contains: half phrases, half bounded patterns."""
    phrases = [f"quartz nebula {i}" for i in range(n // 2)]
    patterns = [f"re:zeb{i}r[a-z]{{0,4}}" for i in range(n - n // 2)]
    return [*phrases, *patterns]


def pieces(tokens: int) -> list[bytes]:
    llm = llama_cpp.Llama(str(embedded_model_path()), vocab_only=True, verbose=False)
    text = TEXT * (tokens // 60 + 1)
    ids = llm.tokenize(text.encode(), add_bos=False)[:tokens]
    return [llm.detokenize([t]) for t in ids]


def per_token_ms(data: list[bytes], bans: Bans | None) -> float:
    """Milliseconds per token of what a reply does for bans (nothing where there are none)."""
    chain, rng, decoder = build_chain(seed=1), np.random.default_rng(1), TextDecoder()
    watch = BanWatch(bans) if bans is not None else None
    start = time.perf_counter()
    for piece in data:
        text = decoder.feed(piece)
        if watch is not None:
            mark = (_SamplingState(chain, rng), copy.deepcopy(decoder))
            verdict = watch.feed(mark, text)
            assert verdict.rewind is None
    return (time.perf_counter() - start) * 1000 / len(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=2000)
    args = parser.parse_args()
    data = pieces(args.tokens)
    print(f"{len(data)} tokens, {args.rounds} rounds, median ms per token (what bans add):")
    base = statistics.median(per_token_ms(data, None) for _ in range(args.rounds))
    for n, target in ((10, 0.1), (100, 0.5)):
        bans = Bans.of(banned(n))
        ms = statistics.median(per_token_ms(data, bans) for _ in range(args.rounds)) - base
        print(f"  {n:>3} banned strings: {ms:.4f} ms (target <= {target} ms) {'ok' if ms <= target else 'OVER'}")


if __name__ == "__main__":
    main()
