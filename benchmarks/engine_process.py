"""The engine in a process of its own: what the boundary costs, and what a user waits for.

1. The cost per token of the boundary alone: an engine that writes tokens instantly, read in this
   process as a generator against read through the engine server (a process of its own, HTTP on a
   Unix socket, NDJSON lines): microseconds per token added (target <= 200).
2. Tokens per second on the embedded model (balanced preset, the end of turn banned so every side
   writes exactly N tokens): the engine process (as `andon ask` and the app use it) against the
   engine in this process and against llama-cpp-python's native sampling, alternating, medians
   (target: the engine process >= 1.0 of native).
3. Stop during the prompt evaluation of a 3,000-token chat: seconds from the stop asked to the
   reply's end (target <= 0.5), and that the next message evaluates only what was not kept.
4. The engine killed (SIGKILL): seconds until a new engine process has the model loaded (target <= 3).
5. Memory after a switch: the engine's resident memory after loading a model with a large context
   and switching to the embedded model, against a fresh start on it (target: within 10%).

    python benchmarks/engine_process.py [--tokens 256] [--rounds 5]

Run it on a quiet machine: the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # for engine_vs_native

from andon.app.engine.client import EngineConnection, EngineProcess
from andon.app.engine.engine import Delta, Done, Engine, ModelOptions, Usage
from andon.app.engine.server import EngineHTTPServer, EngineService
from andon.app.models.files import embedded_model_path
from andon.presets.parameters import Parameters
from andon.presets.store import PresetStore
from engine_vs_native import PROMPT, andon_rate, exactly_n_tokens, load_average, native_rate


@dataclass
class InstantEngine:
    """Writes `n` one-character tokens as fast as Python can: what is left is the boundary's cost."""

    n: int
    model_name: str = "instant"
    n_ctx: int = 4096
    n_vocab: int = 1

    def stream(self, messages, params, cancelled=None, **_options):  # as Engine.stream (prompt=, samples=, ...)
        for i in range(self.n):
            if cancelled is not None and cancelled():
                break
            yield Delta("x", i + 1, 0.0)
        yield Done("x" * self.n, "length", Usage(completion_tokens=self.n), 1)


def _serve(path: str, n: int) -> None:
    EngineHTTPServer(path, EngineService(InstantEngine(n))).serve_forever()  # type: ignore[arg-type]


def boundary_cost(n: int, rounds: int) -> None:
    params = Parameters()
    folder = tempfile.mkdtemp(prefix="andon-bench-")
    path = os.path.join(folder, "engine.sock")
    server = multiprocessing.get_context("fork").Process(target=_serve, args=(path, n), daemon=True)
    server.start()
    while not os.path.exists(path):
        time.sleep(0.01)
    connection = EngineConnection(path, {})
    direct, crossed = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        assert sum(1 for _ in InstantEngine(n).stream(PROMPT, params)) == n + 1
        direct.append(time.perf_counter() - started)
        started = time.perf_counter()
        assert sum(1 for _ in connection.stream(PROMPT, params)) == n + 1
        crossed.append(time.perf_counter() - started)
    server.terminate()
    d, c = statistics.median(direct), statistics.median(crossed)
    print(f"1. boundary: {n} tokens in {d * 1e3:.1f} ms in this process, {c * 1e3:.1f} ms through the engine "
          f"server (medians of {rounds}): {(c - d) / n * 1e6:.1f} µs per token added (target <= 200)")  # fmt: skip


def speeds(tokens: int, rounds: int) -> None:
    options = ModelOptions(embedded_model_path(), num_ctx=2048)
    here, there = Engine(options), EngineProcess(options)
    params = exactly_n_tokens(here, PresetStore().load("balanced").parameters, tokens)
    andon_rate(here, params), andon_rate(there, params), native_rate(here, params, 16)  # warm-up of each
    rates: dict[str, list[float]] = {"engine process": [], "in this process": [], "native": []}
    sides = list(rates)
    for r in range(rounds):
        for side in sides[r % 3 :] + sides[: r % 3]:
            if side == "native":
                rates[side].append(native_rate(here, params, tokens))
            else:
                rates[side].append(andon_rate(there if side == "engine process" else here, params))
        print(f"   round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in rates.items()) + " tok/s")
    p, i, n = (statistics.median(v) for v in rates.values())
    print(f"2. {tokens} tokens, balanced preset (medians): engine process {p:.1f} tok/s, in this process {i:.1f}, "
          f"llama.cpp native sampling {n:.1f}: {p / n:.3f}x of native, {p / i:.3f}x of in-process "
          f"({(1 / p - 1 / i) * 1e3:+.2f} ms per token)")  # fmt: skip
    here.close()
    there.close()


def stop_latency() -> None:
    engine = EngineProcess(ModelOptions(embedded_model_path(), num_ctx=4096))
    chat = [{"role": "user", "content": "word " * 2990}]
    latencies, kept = [], 0
    for delay in (0.3, 0.6, 0.9):
        asked: list[float] = []
        started = time.perf_counter()

        def cancelled(delay: float = delay, asked: list[float] = asked, started: float = started) -> bool:
            if time.perf_counter() - started < delay:
                return False
            asked.append(asked[0] if asked else time.perf_counter())
            return True

        done = next(e for e in engine.stream(chat, Parameters.of({"num_predict": 4}), cancelled) if isinstance(e, Done))
        latencies.append(time.perf_counter() - asked[0])
        kept = done.usage.prompt_eval_tokens
        again = next(e for e in engine.stream(chat, Parameters.of({"num_predict": 1})) if isinstance(e, Done))
        assert done.finish_reason == "cancelled" and again.usage.prompt_eval_tokens == again.usage.prompt_tokens - kept
        engine.close()  # the next round starts from an empty cache
        engine = EngineProcess(ModelOptions(embedded_model_path(), num_ctx=4096))
    engine.close()
    print(f"3. stop during a {done.usage.prompt_tokens}-token prompt: reply ended "
          + ", ".join(f"{s:.3f}" for s in latencies) + " s after the stop was asked (target <= 0.5); "
          "the next message evaluated only the tokens not kept")  # fmt: skip


def restart_time(rounds: int) -> None:
    times = []
    for _ in range(rounds):
        engine = EngineProcess(ModelOptions(embedded_model_path(), num_ctx=4096))
        os.kill(engine.pid, signal.SIGKILL)
        engine.proc.wait()
        engine.close()
        started = time.perf_counter()
        engine = EngineProcess(ModelOptions(embedded_model_path(), num_ctx=4096))
        times.append(time.perf_counter() - started)
        engine.close()
    print("4. after the engine was killed, a new one had the model loaded in "
          + ", ".join(f"{t:.2f}" for t in times) + " s (target <= 3)")  # fmt: skip


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def rss_after_a_reply(num_ctx: int) -> float:
    """The engine process's resident memory (MB) with the embedded model at `num_ctx`, after a short
    reply; the process then ends (as the old one does when the app switches models)."""
    engine = EngineProcess(ModelOptions(embedded_model_path(), num_ctx=num_ctx))
    for _ in engine.stream(PROMPT, Parameters.of({"num_predict": 8})):
        pass
    mb = rss_mb(engine.pid)
    engine.close()
    return mb


def memory_after_switch() -> None:
    before = rss_after_a_reply(32768)
    after = rss_after_a_reply(2048)  # the switch: the old engine process has ended, a new one loads
    new = rss_after_a_reply(2048)  # a fresh start on the same model
    print(f"5. engine memory: {before:.0f} MB with num_ctx 32768; after switching to num_ctx 2048 {after:.0f} MB, "
          f"a fresh start {new:.0f} MB: {after / new:.2f}x (target <= 1.10)")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    print(f"load average: {load_average()}")
    boundary_cost(5000, args.rounds)
    speeds(args.tokens, args.rounds)
    stop_latency()
    restart_time(3)
    memory_after_switch()
    print(f"load average: {load_average()}")


if __name__ == "__main__":
    main()
