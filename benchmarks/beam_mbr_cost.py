"""What beam search and MBR cost next to one reply, on the embedded model, in one run.

    python benchmarks/beam_mbr_cost.py [--tokens 128] [--rounds 3]

Targets (issue 23): 4 beams of N tokens <= 2.5x one greedy reply of N tokens; 8 MBR samples of N
tokens <= 4x one sampled reply. The end of turn is banned (logit_bias) so every run writes N tokens.
"""

from __future__ import annotations

import argparse
import statistics
import time

from andon.app.engine.engine import Engine, ModelOptions
from andon.app.models.files import embedded_model_path
from andon.presets.parameters import Parameters

PROMPT = [{"role": "user", "content": "Tell me a long story about a lighthouse keeper."}]


def seconds(engine: Engine, values: dict, rounds: int) -> float:
    """Median wall time of a whole reply with these parameters."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _event in engine.stream(PROMPT, Parameters.of(values)):
            pass
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    engine = Engine(ModelOptions(embedded_model_path(), num_ctx=4096))
    end = {str(t): False for t in range(engine.n_vocab) if engine.is_end_of_turn(t)}
    n = {"num_predict": args.tokens, "logit_bias": end, "seed": 1}
    seconds(engine, {**n, "temperature": 0}, 1)  # warm up: the prompt cached, the threads started
    rows = [
        ("greedy reply", seconds(engine, {**n, "temperature": 0}, args.rounds), None),
        ("4 beams", seconds(engine, {**n, "num_beams": 4}, args.rounds), 2.5),
        ("sampled reply", seconds(engine, n, args.rounds), None),
        ("8 MBR samples", seconds(engine, {**n, "mbr_samples": 8}, args.rounds), 4.0),
    ]
    print(f"model {engine.model_name}; {args.tokens} tokens a reply; median of {args.rounds}")
    for i, (name, s, target) in enumerate(rows):
        ratio = f"{s / rows[i - 1][1]:.2f}x (target <= {target}x)" if target else ""
        print(f"{name:>14}: {s:7.2f} s {ratio}")
    engine.close()


if __name__ == "__main__":
    main()
