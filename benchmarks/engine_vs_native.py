"""Tokens per second: andon's engine (Python chain) against llama-cpp-python's native sampling.

Same model, prompt, number of tokens and equivalent settings (the balanced preset), measured in
one run, alternating, several rounds. Prints both rates and their ratio (target >= 0.95).

    python benchmarks/engine_vs_native.py [--tokens 256] [--rounds 5] [--model PATH]
"""

from __future__ import annotations

import argparse
import statistics
import time

from andon.app.engine import Done, Engine, ModelOptions
from andon.app.model_files import embedded_model_path
from andon.presets.store import PresetStore

PROMPT = [{"role": "user", "content": "Write a long story about a dragon who learns to bake bread."}]


def andon_rate(engine: Engine, params) -> float:
    done = None
    for event in engine.stream(PROMPT, params):
        if isinstance(event, Done):
            done = event
    assert done is not None and done.usage.completion_tokens == params.num_predict, done
    return done.usage.tokens_per_second


def native_rate(engine: Engine, p, n: int) -> float:
    llm = engine.llm
    tokens = engine.chat_tokens(PROMPT)
    llm.reset()
    t_first = 0.0
    tokens_out = llm.generate(
        tokens, top_k=p.top_k, top_p=p.top_p, min_p=p.min_p, temp=p.temperature, repeat_penalty=p.repeat_penalty
    )
    for count, _ in enumerate(tokens_out, start=1):
        if count == 1:
            t_first = time.perf_counter()
        if count == n:
            break
    return (n - 1) / (time.perf_counter() - t_first)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--model", default=None)
    args = ap.parse_args()
    preset = PresetStore().load("balanced")
    engine = Engine(ModelOptions(args.model or embedded_model_path(), num_ctx=2048))
    eog = {str(t): False for t in range(engine.n_vocab) if engine.is_end_of_turn(t)}
    # both sides generate exactly N tokens: llama-cpp-python's generate() ignores end of turn,
    # andon is told to by banning the end-of-turn tokens (a logit_bias, which costs nothing)
    params = preset.parameters.model_copy(update={"num_predict": args.tokens, "seed": 1})
    params = type(params).of({"logit_bias": eog}, base=params)
    print(f"model: {engine.model_name}; {args.tokens} tokens; balanced preset: top_k {params.top_k}, "
          f"top_p {params.top_p}, min_p {params.min_p}, temperature {params.temperature}, "
          f"repeat_penalty {params.repeat_penalty}")  # fmt: skip
    andon_rate(engine, params)  # warm up both paths
    native_rate(engine, params, 16)
    ours, theirs = [], []
    for r in range(args.rounds):
        ours.append(andon_rate(engine, params))
        theirs.append(native_rate(engine, params, args.tokens))
        print(f"round {r + 1}: andon {ours[-1]:.1f} tok/s, native {theirs[-1]:.1f} tok/s")
    a, n = statistics.median(ours), statistics.median(theirs)
    print(f"median: andon {a:.1f} tok/s, llama.cpp native sampling {n:.1f} tok/s, ratio {a / n:.3f}")


if __name__ == "__main__":
    main()
