"""Tokens per second: andon's engine (Python chain) against llama-cpp-python's native sampling.

Same model, prompt, number of tokens and equivalent settings (the balanced preset), measured in
one run, alternating, several rounds. Prints both rates and their ratio (target >= 0.95).

    python benchmarks/engine_vs_native.py [--tokens 256] [--rounds 5] [--model PATH]

With --long-chat, the cost of a turn once a chat outgrows num_ctx instead: the same chat (same
messages, seed and reply length) with the oldest turns dropped only as needed (before: every turn
starts one turn later and evaluates its whole prompt again) and dropped half a context at a time
(after: andon's PromptFitter). Prints each turn's prompt tokens, tokens evaluated and seconds to
the first token, and the means after the first drop.

    python benchmarks/engine_vs_native.py --long-chat [--turns 30] [--num-ctx 512]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Iterator

from andon.app.engine.client import EngineLike
from andon.app.engine.engine import Done, Engine, ModelOptions
from andon.app.engine.prompt import PromptFitter
from andon.app.models.files import embedded_model_path
from andon.presets.parameters import Parameters
from andon.presets.store import PresetStore

PROMPT = [{"role": "user", "content": "Write a long story about a dragon who learns to bake bread."}]


def load_average() -> str:
    """The machine's load average (1, 5, 15 minutes): the benchmarks print it before and after."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def andon_rate(engine: Engine | EngineLike, params) -> float:
    done = None
    for event in engine.stream(PROMPT, params):
        if isinstance(event, Done):
            done = event
    assert done is not None and done.usage.completion_tokens == params.num_predict, done
    return done.usage.tokens_per_second


def native_rate(engine: Engine, p, n: int, messages=PROMPT) -> float:
    """llama-cpp-python's own sampling of n tokens after `messages`: tokens per second after the first."""
    llm = engine.llm
    tokens = engine.chat_tokens(messages)
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


def exactly_n_tokens(engine: Engine, params: Parameters, n: int) -> Parameters:
    """These parameters with num_predict n and end of turn banned (a logit_bias, which costs
    nothing): llama-cpp-python's generate() ignores end of turn, so both sides make exactly n."""
    eog = {str(t): False for t in range(engine.n_vocab) if engine.is_end_of_turn(t)}
    return Parameters.of({"logit_bias": eog}, base=params.model_copy(update={"num_predict": n, "seed": 1}))


def compare_rates(engine: Engine, params: Parameters, rounds: int, label: str = "") -> float:
    """Both sides in turns, after a warm-up of each; prints every round and the medians; the ratio."""
    andon_rate(engine, params)
    native_rate(engine, params, 16)
    ours, theirs = [], []
    for r in range(rounds):
        ours.append(andon_rate(engine, params))
        theirs.append(native_rate(engine, params, params.num_predict))
        print(f"{label}round {r + 1}: andon {ours[-1]:.1f} tok/s, native {theirs[-1]:.1f} tok/s")
    a, n = statistics.median(ours), statistics.median(theirs)
    chain_ms = (1 / a - 1 / n) * 1000
    print(f"{label}median: andon {a:.1f} tok/s, llama.cpp native sampling {n:.1f} tok/s, "
          f"ratio {a / n:.3f} ({chain_ms:+.2f} ms per token)")  # fmt: skip
    return a / n


def chat_turns(engine: Engine, keep_after_drop: float, turns: int) -> Iterator[tuple[int, int, float, int]]:
    """One long chat: per turn (prompt tokens, tokens evaluated, seconds to first token, dropped)."""
    engine.fitter = PromptFitter(engine.prompt, engine.n_ctx, keep_after_drop)
    params = Parameters.of({"temperature": 0.7, "seed": 1, "num_predict": 48})
    history = [{"role": "system", "content": "You are a helpful assistant."}]
    for i in range(turns):
        history.append({"role": "user", "content": f"Tell me one short fact about the number {i}, please."})
        done = next(e for e in engine.stream(history, params) if isinstance(e, Done))
        yield done.usage.prompt_tokens, done.usage.prompt_eval_tokens, done.usage.ttft_s, done.dropped_turns
        history.append({"role": "assistant", "content": done.text})


def long_chat(args: argparse.Namespace) -> None:
    options = ModelOptions(args.model or embedded_model_path(), num_ctx=args.num_ctx)
    engines = Engine(options), Engine(options)
    print(f"model: {engines[0].model_name}; num_ctx {options.num_ctx}; {args.turns} turns, replies of 48 tokens")
    # the two chats advance turn by turn in turns, so a busy machine slows both alike
    keep = PromptFitter(engines[1].prompt, options.num_ctx).keep_after_drop
    runs = zip(chat_turns(engines[0], 1.0, args.turns), chat_turns(engines[1], keep, args.turns), strict=True)
    before, after = (list(run) for run in zip(*runs, strict=True))
    print("turn | before: prompt, evaluated, s | after: prompt, evaluated, s")
    for i, (b, a) in enumerate(zip(before, after, strict=True)):
        dropped_now = a[3] and (i == 0 or after[i - 1][3] != a[3])
        print(f"{i + 1:4d} | {b[0]:5d} {b[1]:5d} {b[2]:6.3f} | {a[0]:5d} {a[1]:5d} {a[2]:6.3f}", "(drop)" * dropped_now)
    start = min(next(i for i, t in enumerate(run) if t[3]) for run in (before, after))
    means = {}
    for name, run in (("before", before), ("after", after)):
        rest = run[start + 1 :]
        tokens, seconds = statistics.mean(t[1] for t in rest), statistics.mean(t[2] for t in rest)
        means[name] = seconds
        print(f"{name}: after the first drop, a turn evaluates {tokens:.0f} prompt tokens "
              f"and takes {seconds:.3f} s to its first token (mean of {len(rest)} turns)")  # fmt: skip
    print(f"prompt seconds per turn, after / before: {means['after'] / means['before']:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--model", default=None)
    ap.add_argument("--long-chat", action="store_true", help="per-turn prompt cost of a chat past num_ctx")
    ap.add_argument("--turns", type=int, default=30)
    ap.add_argument("--num-ctx", type=int, default=512)
    args = ap.parse_args()
    if args.long_chat:
        return long_chat(args)
    preset = PresetStore().load("balanced")
    engine = Engine(ModelOptions(args.model or embedded_model_path(), num_ctx=2048))
    params = exactly_n_tokens(engine, preset.parameters, args.tokens)
    print(f"model: {engine.model_name}; {args.tokens} tokens; balanced preset: top_k {params.top_k}, "
          f"top_p {params.top_p}, min_p {params.min_p}, temperature {params.temperature}, "
          f"repeat_penalty {params.repeat_penalty}")  # fmt: skip
    compare_rates(engine, params, args.rounds)


if __name__ == "__main__":
    main()
