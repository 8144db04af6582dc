"""`andon serve` under several clients: what each waits for and what the server writes in all.

1. Aggregate tokens per second for 1, 2 and 4 concurrent streams (each `/api/generate`, streamed,
   its own prompt and seed), and each stream's time to first token as its client saw it. Up to 4
   requests on one model are decoded together (app/engine/scheduler.py's slots: one llama_decode
   for one token of each; target at 4 streams: >= 1.5x one stream).
2. One stream through the server against `andon ask` (a fresh process, --json): tokens per second
   of the reply (target: the server >= 0.97 of `andon ask`).

    python benchmarks/serve_speed.py [--tokens 128] [--rounds 3]

Run it on a quiet machine: the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import ollama

sys.path.insert(0, str(Path(__file__).parent))

from andon.app.serve.run import close, make_server
from engine_vs_native import load_average

MODEL = "SmolLM2-135M-Instruct.Q4_1"
PROMPTS = ["Write a story about a lighthouse.", "Explain how bread rises.", "Describe a walk in the rain.",
           "Tell me about the history of maps."]  # fmt: skip


@dataclass
class Stream:
    ttft_s: float = 0.0
    tokens: int = 0
    last_s: float = 0.0  # seconds from the request to its last line


def one_stream(url: str, i: int, tokens: int, start: float) -> Stream:
    out = Stream()
    options = {"num_predict": tokens, "seed": 100 + i, "temperature": 1.0}
    for part in ollama.Client(host=url).generate(model=MODEL, prompt=PROMPTS[i % 4], options=options, stream=True):
        now = time.perf_counter() - start
        if part.response and not out.ttft_s:
            out.ttft_s = now
        if part.done:
            out.tokens, out.last_s = part.eval_count or 0, now
    return out


def concurrent(url: str, n: int, tokens: int) -> tuple[float, list[Stream]]:
    """Aggregate tokens per second of n streams started together, and each stream."""
    results: list[Stream] = [Stream() for _ in range(n)]
    start = time.perf_counter()

    def run(i: int) -> None:
        results[i] = one_stream(url, i, tokens, start)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = max(r.last_s for r in results)
    return sum(r.tokens for r in results) / wall, results


def server_rate(url: str, tokens: int) -> float:
    """One stream's tokens per second as the client received them (first token to last)."""
    s = one_stream(url, 0, tokens, time.perf_counter())
    return (s.tokens - 1) / (s.last_s - s.ttft_s)


def ask_rate(tokens: int, env: dict[str, str]) -> float:
    command = [sys.executable, "-m", "andon", "ask", PROMPTS[0], "--json", "--set", f"num_predict={tokens}",
               "--set", "seed=100", "--set", "temperature=1.0"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, check=True)
    return float(json.loads(done.stdout)["usage"]["tokens_per_second"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    print(f"load average before: {load_average()}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
            os.environ[name] = f"{tmp}/{name.lower()}"
        server = make_server("127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            one_stream(server.url, 0, 4, time.perf_counter())  # the model loads
            base = 0.0
            for n in (1, 2, 4):
                rates, runs = [], []
                for _ in range(args.rounds):
                    rate, streams = concurrent(server.url, n, args.tokens)
                    rates.append(rate)
                    runs.append(streams)
                rate = statistics.median(rates)
                base = base or rate
                ttfts = [statistics.median(r[i].ttft_s for r in runs) for i in range(n)]
                print(f"{n} stream(s): {rate:7.1f} tokens/s in all ({rate / base:.2f}x one stream); "
                      f"time to first token: {', '.join(f'{t:.3f} s' for t in ttfts)}")  # fmt: skip
            served, asked = [], []
            for _ in range(args.rounds):  # alternating
                served.append(server_rate(server.url, args.tokens))
                asked.append(ask_rate(args.tokens, dict(os.environ)))
            s, a = statistics.median(served), statistics.median(asked)
            print(f"one stream: server {s:.1f} tokens/s, andon ask {a:.1f} tokens/s: {s / a:.2f} (target >= 0.97)")
        finally:
            server.shutdown()
            close(server)
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
