"""`andon serve` under several clients: what each waits for and what the server writes in all.

1. Aggregate tokens per second for 1, 2 and 4 concurrent streams (each `/api/generate`, streamed,
   its own prompt and seed), and each stream's time to first token as its client saw it. Up to 4
   requests on one model are decoded together (app/engine/scheduler.py's slots: one llama_decode
   for one token of each; target at 4 streams: >= 1.5x one stream).
2. One stream through the server against `andon ask` (a fresh process, --json): tokens per second
   of the reply as each engine counts it (the server's eval_count / eval_duration, ask's
   usage.tokens_per_second: the same Usage), and the server's as its client received the lines
   (target: the server >= 0.97 of `andon ask`).

The server runs as a user runs it: `andon serve` in a process of its own (its engines in theirs),
the clients in this one.

    python benchmarks/serve_speed.py [--tokens 128] [--rounds 3]

Run it on a quiet machine: the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
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


def server_rate(url: str, tokens: int) -> tuple[float, float]:
    """One stream's tokens per second as the server's engine counted them (eval_count /
    eval_duration, as `andon ask` reports its own) and as the client received them (first token to last)."""
    start, ttft, last, counted, n = time.perf_counter(), 0.0, 0.0, 0.0, 0
    options = {"num_predict": tokens, "seed": 100, "temperature": 1.0}
    for part in ollama.Client(host=url).generate(model=MODEL, prompt=PROMPTS[0], options=options, stream=True):
        now = time.perf_counter() - start
        ttft = ttft or (now if part.response else 0.0)
        if part.done:
            last, n = now, part.eval_count or 0
            counted = n / ((part.eval_duration or 1) / 1e9)
    return counted, (n - 1) / (last - ttft)


def start_server(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """`andon serve` on a free port, in a process of its own; its URL once it answers."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "andon", "serve", "--port", str(port)], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            ollama.Client(host=url).ps()
            return proc, url
        except Exception:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("andon serve did not answer in 30 s")


def ask_rate(tokens: int, env: dict[str, str], streamed: bool = False) -> float:
    """`andon ask`'s tokens per second as its engine counts them: with --json (the client prints
    at the end) or streamed (the reply written to stdout as it comes, --verbose's eval rate)."""
    command = [sys.executable, "-m", "andon", "ask", PROMPTS[0], "--verbose" if streamed else "--json",
               "--set", f"num_predict={tokens}", "--set", "seed=100", "--set", "temperature=1.0"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, check=True)
    if not streamed:
        return float(json.loads(done.stdout)["usage"]["tokens_per_second"])
    line = next(x for x in done.stderr.splitlines() if x.startswith("eval rate:"))
    return float(line.split()[2])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    print(f"load average before: {load_average()}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
            os.environ[name] = f"{tmp}/{name.lower()}"
        proc, url = start_server(dict(os.environ))
        try:
            one_stream(url, 0, 4, time.perf_counter())  # the model loads
            base = 0.0
            for n in (1, 2, 4):
                rates, runs = [], []
                for _ in range(args.rounds):
                    rate, streams = concurrent(url, n, args.tokens)
                    rates.append(rate)
                    runs.append(streams)
                rate = statistics.median(rates)
                base = base or rate
                ttfts = [statistics.median(r[i].ttft_s for r in runs) for i in range(n)]
                print(f"{n} stream(s): {rate:7.1f} tokens/s in all ({rate / base:.2f}x one stream); "
                      f"time to first token: {', '.join(f'{t:.3f} s' for t in ttfts)}")  # fmt: skip
            served, received, asked, streamed = [], [], [], []
            for r in range(args.rounds):  # alternating
                counted, seen = server_rate(url, args.tokens)
                served.append(counted)
                received.append(seen)
                asked.append(ask_rate(args.tokens, dict(os.environ)))
                streamed.append(ask_rate(args.tokens, dict(os.environ), streamed=True))
                print(f"   round {r + 1}: server {counted:.1f} tokens/s (its client received {seen:.1f}), "
                      f"andon ask --json {asked[-1]:.1f}, andon ask streamed {streamed[-1]:.1f}")  # fmt: skip
            s, c = statistics.median(served), statistics.median(received)
            a, t = statistics.median(asked), statistics.median(streamed)
            print(f"one stream (medians of {args.rounds}): server {s:.1f} tokens/s (its client received {c:.1f}); "
                  f"andon ask --json {a:.1f}, streamed {t:.1f}: the server {s / a:.2f} of ask --json, "
                  f"{s / t:.2f} of ask streamed (target >= 0.97)")  # fmt: skip
        finally:
            proc.terminate()
            proc.wait(10)
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
