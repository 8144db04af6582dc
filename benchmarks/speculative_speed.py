"""Tokens per second with speculative decoding (draft = "ngram") against andon without a draft and
against llama-cpp-python's native sampling: same model, prompt, settings and number of tokens,
measured in one run, alternating, several rounds.

Three prompts: a code rewrite, whose reply copies much of its input (where prompt lookup pays; target
>= 1.5x of both), the same code explained, whose reply quotes it here and there, and an open-ended
story, where drafts rarely match (target for both >= 0.95 of no draft).
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

The user's path (--user-path, on by default; --no-user-path skips it): the same replies as fresh
`andon ask --json` processes, one per reply, alternating with and without `--set draft=ngram`, in a
cache folder of their own. The first process with a draft measures the batch costs and keeps them
(app/engine/draft_cache.py: printed apart); every later process starts from what it kept. Printed: the
medians of the replies' tokens per second (as `--json` reports them) and of each process's whole time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.sample_code
sys.path.insert(0, str(Path(__file__).parent))  # for engine_vs_native

from andon.app.engine.engine import Delta, Done, Engine, ModelOptions
from andon.app.models.files import embedded_model_path
from andon.presets import Parameters
from andon.presets.store import PresetStore
from engine_vs_native import load_average, native_rate

from tests.sample_code import CODE, rewrite

REWRITE = rewrite(CODE)
STORY = [{"role": "user", "content": "Write a long story about a dragon who learns to bake bread."}]
# A reply that quotes its input only here and there: drafts right about half the time at best.
EXPLAIN = [{"role": "user", "content": f"Explain what each function in this code does:\n\n```python\n{CODE}```"}]


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


def ask(prompt: str, options: list[str], settings: dict[str, object], env: dict[str, str]) -> tuple[dict, float]:
    """One fresh `andon ask --json` process: its usage and its whole time in seconds."""
    sets = [arg for name, value in settings.items() for arg in ("--set", f"{name}={json.dumps(value)}")]
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "andon", "ask", prompt, "--json", *options, *sets],
                          capture_output=True, text=True, env=env, check=True)  # fmt: skip
    seconds = time.perf_counter() - started
    usage = json.loads(proc.stdout)["usage"]
    assert usage["completion_tokens"] == settings["num_predict"], usage
    return usage, seconds


def user_path(name: str, prompt: str, options: list[str], settings: dict[str, object], rounds: int) -> None:
    """Fresh `andon ask` processes with and without an n-gram draft, alternating (see the docstring)."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "XDG_CACHE_HOME": cache}
        drafting = {**settings, "draft": "ngram"}
        usage, seconds = ask(prompt, options, drafting, env)
        print(f"  first process with a draft (measures the costs): {usage['tokens_per_second']:.1f} tok/s, "
              f"{seconds:.2f} s")  # fmt: skip
        rates: dict[str, list[float]] = {"ngram": [], "no draft": []}
        times: dict[str, list[float]] = {"ngram": [], "no draft": []}
        for r in range(rounds):
            for side in ("ngram", "no draft")[:: 1 if r % 2 == 0 else -1]:
                usage, seconds = ask(prompt, options, drafting if side == "ngram" else settings, env)
                rates[side].append(usage["tokens_per_second"])
                times[side].append(seconds)
            print(f"  round {r + 1}: ngram {rates['ngram'][-1]:.1f} tok/s in {times['ngram'][-1]:.2f} s, "
                  f"no draft {rates['no draft'][-1]:.1f} tok/s in {times['no draft'][-1]:.2f} s")  # fmt: skip
    a, p = statistics.median(rates["ngram"]), statistics.median(rates["no draft"])
    ta, tp = statistics.median(times["ngram"]), statistics.median(times["no draft"])
    print(f"{name}, fresh andon ask: ngram {a:.1f} tok/s, no draft {p:.1f} (medians): {a / p:.2f}x; "
          f"whole process {ta:.2f} s vs {tp:.2f} s: {tp / ta:.2f}x")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--model", default=None)
    ap.add_argument("--user-path", action=argparse.BooleanOptionalAction, default=True)
    args = ap.parse_args()
    engine = Engine(ModelOptions(args.model or embedded_model_path(), num_ctx=4096, num_thread=args.threads))
    eog = {str(t): False for t in range(engine.n_vocab) if engine.is_end_of_turn(t)}
    store = PresetStore()
    threads = (
        f"{engine.llm.context_params.n_threads} (single tokens) / {engine.llm.context_params.n_threads_batch} (batches)"
    )
    print(f"model: {engine.model_name}; {args.tokens} tokens per reply; threads {threads}; load {load_average()}")
    cases = (("code rewrite", REWRITE, "code"), ("code explained", EXPLAIN, "code"), ("story", STORY, "balanced"))
    for name, messages, preset in cases:
        base = store.load(preset).parameters
        params = Parameters.of({"num_predict": args.tokens, "seed": 1, "logit_bias": eog}, base=base)
        print(f"{name} ({preset} preset: temperature {params.temperature}, top_k {params.top_k}, top_p "
              f"{params.top_p}, min_p {params.min_p}, repeat_penalty {params.repeat_penalty})")  # fmt: skip
        compare(engine, name, messages, params, args.rounds)
        if args.user_path:
            settings = {"num_predict": args.tokens, "seed": 1, "logit_bias": eog, "num_thread": args.threads}
            options = ["--preset", preset, *(["--model", args.model] if args.model else [])]
            user_path(name, messages[-1]["content"], options, settings, args.rounds)
    print(f"load average: {load_average()}")
    engine.close()


if __name__ == "__main__":
    main()
