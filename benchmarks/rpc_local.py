"""The same model on this machine and on a llama.cpp RPC server on 127.0.0.1: replies and speed.

Starts a server (tests/rpc_server.py: ggml's own RPC server loop on the CPU, no binary to build),
loads the model twice in one process, once on this machine and once with all layers on the server,
then alternates greedy replies between the two for several rounds. Prints whether the replies are
equal, and the prompt and generation rates of both with their ratio. Everything but the logits
crosses the loopback, so the ratio is the price of the RPC protocol itself, not of a network.
On a busy machine, run it with OMP_WAIT_POLICY=passive: the local engine evaluates prompts with
llama-cpp-python's default of one thread per core, and OpenMP's spinning threads then fight for the
cores (the server evaluates with --threads).

    python benchmarks/rpc_local.py [--tokens 128] [--rounds 3] [--threads N] [--model PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.rpc_server

from andon.app.engine import rpc
from andon.app.engine.engine import Done, Engine, ModelOptions
from andon.app.models.files import embedded_model_path
from andon.presets.parameters import Parameters

from tests.rpc_server import serving

PROMPTS = [
    [{"role": "user", "content": "Write a long story about a dragon who learns to bake bread."}],
    [{"role": "user", "content": "Explain how a bicycle stays upright, step by step."}],
]


def reply(engine: Engine, prompt, params: Parameters) -> Done:
    done = None
    for event in engine.stream(prompt, params):
        if isinstance(event, Done):
            done = event
    assert done is not None
    return done


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    ap.add_argument("--model", type=Path)
    args = ap.parse_args()
    if not rpc.supported():
        print(f"skipped: {rpc.NO_RPC}")
        return 0
    path = args.model or embedded_model_path()
    params = Parameters.of({"temperature": 0, "num_predict": args.tokens, "seed": 1})
    with serving(threads=args.threads) as server:
        base = ModelOptions(path, num_ctx=2048, num_thread=args.threads)
        local = Engine(base)
        remote = Engine(ModelOptions(path, num_ctx=2048, num_thread=args.threads, rpc=(server.endpoint,)))
        print(f"model {path.name}, {args.tokens} tokens a reply, {args.rounds} rounds, {args.threads} thread(s)")
        print(f"server {server.endpoint} (ggml_backend_rpc_start_server, CPU device)")
        rates: dict[str, list[tuple[float, float]]] = {"local": [], "rpc": []}
        same = True
        for _ in range(args.rounds):
            for prompt in PROMPTS:
                results = {}
                for name, engine in (("local", local), ("rpc", remote)):
                    engine.context.truncate(0)  # a cold prompt each time: prompt evaluation is measured too
                    done = reply(engine, prompt, params)
                    prompt_rate = done.usage.prompt_eval_tokens / done.usage.ttft_s if done.usage.ttft_s else 0.0
                    rates[name].append((prompt_rate, done.usage.tokens_per_second))
                    results[name] = done.text
                same = same and results["local"] == results["rpc"]
        remote.close()
        local.close()
    for name in ("local", "rpc"):
        prompt_rate = statistics.median(r[0] for r in rates[name])
        gen_rate = statistics.median(r[1] for r in rates[name])
        print(f"{name:6} prompt {prompt_rate:8.1f} tok/s   generation {gen_rate:7.1f} tok/s")
    for i, what in enumerate(("prompt", "generation")):
        ratio = statistics.median(r[i] for r in rates["rpc"]) / statistics.median(r[i] for r in rates["local"])
        print(f"{what} rpc/local: {ratio:.2f}")
    print(f"greedy replies equal: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
