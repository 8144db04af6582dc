"""Is MBR worth its samples? `andon eval`'s questions answered by one sample of a preset and by
minimum Bayes risk over N samples of the same preset (issue 23: MBR over 8 balanced samples is at
least as accurate as one balanced sample). Both accuracies are printed, with each run's time.

    python benchmarks/mbr_accuracy.py [--preset balanced] [--samples 8] [--limit N] [--seed 1]

The same comparison from the command line: `andon eval --presets balanced` and
`andon eval --presets balanced --set mbr_samples=8`. Each question is asked with the same seed in
both runs (MBR's samples use seed, seed + 1, ...), with at most 48 tokens a reply, as `andon eval`.
"""

from __future__ import annotations

import argparse
import time

from andon.app.chat.settings import resolve_settings
from andon.app.engine.engine import Engine, ModelOptions
from andon.app.study.evaluation import evaluate, questions
from andon.presets.commands import apply


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="balanced")
    ap.add_argument("--samples", type=int, default=8, help="MBR samples (default 8)")
    ap.add_argument("--limit", type=int, help="only the first N questions")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    s = resolve_settings(args.preset)
    qs = questions()[: args.limit]
    runs = [
        (f"{args.preset}, one sample", s.params, s.system),
        (f"{args.preset}, MBR of {args.samples}", apply(s.params, {"mbr_samples": args.samples}), s.system),
    ]
    engine = Engine(ModelOptions.from_parameters(s.model_path, s.params))
    print(f"model {engine.model_name}; {len(qs)} questions of andon eval; seed {args.seed}")
    for run in runs:
        start = time.perf_counter()
        (result,) = evaluate(engine, [run], qs, seed=args.seed)
        took = time.perf_counter() - start
        print(f"{result.preset:>24}: accuracy {result.accuracy * 100:5.1f}% "
              f"({sum(result.correct)}/{len(qs)}) in {took:6.1f} s")  # fmt: skip
    engine.close()


if __name__ == "__main__":
    main()
