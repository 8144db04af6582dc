"""Tokens per second with speculative decoding (draft = "ngram") against andon without a draft and
against llama-cpp-python's native sampling: same model, prompt, settings and number of tokens,
measured in one run, alternating, several rounds.

Two prompts: a code rewrite, whose reply copies much of its input (where prompt lookup pays; target
>= 1.5x of both), and an open-ended story, where drafts rarely match (target >= 0.95 of no draft).
With the same seed, andon's reply is the same with and without a draft (speculative decoding never
changes what is sampled), so both sides do the same work; the end of turn is banned (a logit_bias)
so that every side writes exactly N tokens, as llama-cpp-python's generate() does. Each side
takes each place in the order of a round in turn; the summary gives the medians.

    python benchmarks/speculative_speed.py [--tokens 256] [--rounds 9] [--threads 0] [--model PATH]

--threads 0 (the default) is the app's setting: llama-cpp-python's threads, on a 2-core machine one
for single tokens and two for batches (verifications and prompts). --threads N runs both on N: on 2
cores, 1 makes a batch of 17 tokens cost 11 single passes instead of 6 (benchmarks/batch_cost.py),
which caps what drafts can gain near 1.4x; 2 makes single tokens slower than 1 (the worker threads
spin while the Python chain runs). The first reply with a draft (the warm-up, printed apart) also
measures the batch costs and picks the threads verifications run on (draft_costs.py: calibrate).
Other work on the machine moves the figures a lot: the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.sample_code
sys.path.insert(0, str(Path(__file__).parent))  # for engine_vs_native

from andon.app.engine import Delta, Done, Engine, ModelOptions
from andon.app.model_files import embedded_model_path
from andon.presets import Parameters
from andon.presets.store import PresetStore
from engine_vs_native import native_rate

from tests.sample_code import CODE, rewrite

REWRITE = rewrite(CODE)
STORY = [{"role": "user", "content": "Write a long story about a dragon who learns to bake bread."}]


def andon_run(engine: Engine, messages, params: Parameters) -> tuple[Done, float]:
    done, first = None, 0.0
    for event in engine.stream(messages, params):
        if isinstance(event, Delta) and not first:
            first = time.perf_counter()
        elif isinstance(event, Done):
            done = event
    assert done is not None and done.usage.completion_tokens == params.num_predict, done
    return done, (params.num_predict - 1) / (time.perf_counter() - first)


def compare(engine: Engine, name: str, messages, params: Parameters, rounds: int) -> None:
    drafting = Parameters.of({"draft": "ngram"}, base=params)
    done, rate = andon_run(engine, messages, drafting)  # warm up: the prompt cached, the costs measured
    u = done.usage
    print(f"  first reply with a draft: {rate:.1f} tok/s ({u.accepted_tokens} of {u.drafted_tokens} drafts kept)")
    rates: dict[str, list[float]] = {"ngram": [], "no draft": [], "native": []}
    accepted = verified = 0
    for r in range(rounds):
        sides = ("no draft", "ngram", "native")
        for side in sides[r % 3 :] + sides[: r % 3]:  # each side takes each place in turn
            if side == "native":
                rates[side].append(native_rate(engine, params, params.num_predict, messages))
            elif side == "ngram":
                done, rate = andon_run(engine, messages, drafting)
                rates[side].append(rate)
                accepted, verified = accepted + done.usage.accepted_tokens, verified + done.usage.drafted_tokens
            else:
                rates[side].append(andon_run(engine, messages, params)[1])
        shown = ", ".join(f"{k} {v[-1]:.1f}" for k, v in rates.items())
        print(
            f"  round {r + 1}: {shown} tok/s ({done.usage.accepted_tokens} of {done.usage.drafted_tokens} drafts kept)"
        )
    a, p, n = (statistics.median(rates[k]) for k in ("ngram", "no draft", "native"))
    share = accepted / verified if verified else 0.0
    print(f"{name}: ngram {a:.1f} tok/s, no draft {p:.1f}, llama.cpp native sampling {n:.1f} (medians): "
          f"{a / p:.2f}x of no draft, {a / n:.2f}x of native; acceptance {share:.0%} ({accepted} of "
          f"{verified} drafted tokens, {verified / rounds:.0f} drafted per reply of {params.num_predict})")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--model", default=None)
    args = ap.parse_args()
    engine = Engine(ModelOptions(args.model or embedded_model_path(), num_ctx=4096, num_thread=args.threads))
    eog = {str(t): False for t in range(engine.n_vocab) if engine.is_end_of_turn(t)}
    store = PresetStore()
    threads = (
        f"{engine.llm.context_params.n_threads} (single tokens) / {engine.llm.context_params.n_threads_batch} (batches)"
    )
    print(f"model: {engine.model_name}; {args.tokens} tokens per reply; threads {threads}; load {_load()}")
    for name, messages, preset in (("code rewrite", REWRITE, "code"), ("story", STORY, "balanced")):
        base = store.load(preset).parameters
        params = Parameters.of({"num_predict": args.tokens, "seed": 1, "logit_bias": eog}, base=base)
        print(f"{name} ({preset} preset: temperature {params.temperature}, top_k {params.top_k}, top_p "
              f"{params.top_p}, min_p {params.min_p}, repeat_penalty {params.repeat_penalty})")  # fmt: skip
        compare(engine, name, messages, params, args.rounds)
    print(f"load average: {_load()}")
    engine.close()


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
