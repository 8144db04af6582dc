"""A sweep's cells batched or one by one: the same grid run through app/study/sweep.py's run_sweep
with a cell's N replies drawn together as llama.cpp sequences (Engine.stream's `samples`), and with
them written one after another (banned_strings set to a phrase never written forces that path), on
the embedded model in this process. The end of turn is banned so every reply writes --tokens tokens.

    python benchmarks/sweep_batching.py [--n 4] [--tokens 32] [--grid temperature=0.5,1.5] [--batch-threads 0]

--batch-threads: llama.cpp's threads for a batch (0: as the app). On a machine whose cores are all
busy, ggml's batch threads wait on each other at every barrier and a batch can cost more than its
tokens one by one (measured on a shared 2-core machine at load 7: 0.37x with 2 threads, 2.41x with 1; 2 cells x
4 replies x 24 tokens).
"""

from __future__ import annotations

import argparse
import time

from andon.app.engine.engine import Engine, ModelOptions
from andon.app.models.files import embedded_model_path
from andon.app.study.sweep import Sweep, cells_for, parse_grid, run_sweep
from andon.presets.parameters import Parameters

PROMPT = "Tell me a long story about a lighthouse keeper."
NEVER = "zq-never-written-zq"  # a banned phrase no reply writes: only the path changes


def seconds(engine: Engine, grid: list[str], n: int, values: dict) -> float:
    """Wall time of one sweep of the grid, n replies a cell."""
    axes = parse_grid(grid)
    sweep = Sweep(PROMPT, axes, n, cells_for(axes, n, 1))
    start = time.perf_counter()
    run_sweep(engine, sweep, Parameters.of(values), "")
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4, help="replies a cell")
    ap.add_argument("--tokens", type=int, default=32, help="tokens a reply")
    ap.add_argument("--grid", action="append", default=None, help="as compare --grid (default temperature=0.5,1.5)")
    ap.add_argument("--batch-threads", type=int, default=0, help="llama.cpp's threads for a batch (0: as the app)")
    args = ap.parse_args()
    grid = args.grid or ["temperature=0.5,1.5"]
    engine = Engine(ModelOptions(embedded_model_path(), num_ctx=4096))
    if args.batch_threads > 0:  # Sequences copies the loaded model's context parameters
        engine.llm.context_params.n_threads_batch = args.batch_threads
    end = {str(t): False for t in range(engine.n_vocab) if engine.is_end_of_turn(t)}
    values = {"num_predict": args.tokens, "logit_bias": end}
    seconds(engine, grid, 2, values)  # warm up: threads started, the prompt's path read once
    batched = seconds(engine, grid, args.n, values)
    alone = seconds(engine, grid, args.n, {**values, "banned_strings": [NEVER]})
    cells = len(cells_for(parse_grid(grid), 1, 0))
    threads = engine.llm.context_params.n_threads_batch
    print(f"model {engine.model_name}; {cells} cells x {args.n} replies x {args.tokens} tokens; "
          f"{threads} batch threads")  # fmt: skip
    print(f"one by one: {alone:6.2f} s   batched: {batched:6.2f} s   {alone / batched:.2f}x faster")
    engine.close()


if __name__ == "__main__":
    main()
