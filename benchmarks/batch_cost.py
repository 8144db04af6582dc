"""The cost of one forward pass (llama_decode) of n tokens, n = 1..17, each position's logits
asked for, as speculative decoding verifies [last token, d1..dk]: the curve that bounds what
drafting can gain on this machine (app/engine/speculative.py, CostModel).

The model is loaded as the app loads it (app/engine/loading.py); the cache holds the code rewrite prompt
of benchmarks/speculative_speed.py, and every batch is evaluated after it and then removed, so all
batch sizes see the same context. The sizes are measured in turn within each round (a busy machine
slows them alike); the summary gives medians, in milliseconds and in single-token passes, and the
speed-up ceiling: the most tokens per second a draft of k tokens could give if every draft were
right, (k + 1) / cost(k + 1).

    python benchmarks/batch_cost.py [--rounds 15] [--threads 0] [--batch-threads 0]
                                    [--no-flash-attn] [--model PATH]

--threads / --batch-threads set llama.cpp's threads for single tokens / batches (0: as the app).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.sample_code

import llama_cpp
from andon.app.engine.context import KVContext
from andon.app.engine.engine import Engine, ModelOptions
from andon.app.models.files import embedded_model_path

from tests.sample_code import CODE, rewrite

SIZES = range(1, 18)


def measure(context: KVContext, prompt: list[int], rounds: int) -> dict[int, float]:
    """The median seconds of one llama_decode of n tokens after the prompt, for each n."""
    context.prefill(prompt)
    base = context.n_tokens
    times: dict[int, list[float]] = {n: [] for n in SIZES}
    filler = prompt[-40:]  # real tokens, so the attention work is that of real text
    for r in range(rounds):
        order = list(SIZES)
        order = order[r % len(order) :] + order[: r % len(order)]
        for n in order:
            tokens = filler[:n]
            started = time.perf_counter()
            if n == 1:
                context.append(tokens)  # a plain step: llama-cpp-python's eval, last logits only
                context.logits()
            else:
                context.append_all_logits(tokens)
            times[n].append(time.perf_counter() - started)
            context.truncate(base)
    return {n: statistics.median(v) for n, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--batch-threads", type=int, default=0)
    ap.add_argument("--no-flash-attn", action="store_true")
    ap.add_argument("--model", default=None)
    args = ap.parse_args()
    options = ModelOptions(args.model or embedded_model_path(), num_ctx=4096)
    if args.no_flash_attn:
        options = replace(options, flash_attn=False)
    engine = Engine(options)
    params = engine.llm.context_params
    single = args.threads or params.n_threads
    batch = args.batch_threads or params.n_threads_batch
    llama_cpp.llama_set_n_threads(engine.llm.ctx, single, batch)
    prompt = engine.chat_tokens(rewrite(CODE))
    print(
        f"model {engine.model_name}; prompt {len(prompt)} tokens; threads {single} (single) / {batch} (batch); "
        f"flash attention {'off' if args.no_flash_attn else 'on'}; load average {os.getloadavg()[0]:.2f}"
    )
    engine.context.append_all_logits(prompt[-4:])  # warm up the batch path
    engine.context.truncate(0)
    cost = measure(engine.context, prompt, args.rounds)
    one = cost[1]
    print(" n   ms     passes  ceiling (k = n - 1 drafts all right)")
    for n in SIZES:
        ceiling = n / (cost[n] / one)
        print(f"{n:2d} {cost[n] * 1e3:6.2f}  {cost[n] / one:6.2f}  {ceiling:5.2f}x")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    engine.close()


if __name__ == "__main__":
    main()
