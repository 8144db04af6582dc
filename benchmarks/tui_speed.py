"""The app against headless generation, on the embedded model with the same settings.

1. In one process, through one engine process (as the app and `andon ask` use it): tokens per
   second of a reply in the app (Textual headless, Markdown rendering in the app's process) against
   the same reply read as `andon ask` reads it; the rate each side received the tokens at, and the
   rate the engine measured. Target: the app >= 0.95 of headless.
2. Key presses while a reply streams: time from the key to the message box showing it.
   Target: <= 50 ms.
3. The user's path: `andon` itself in a terminal (a pty; keys typed, the reply read back from the
   history) against a fresh `andon ask` process, alternating, the same preset; and the time from
   starting `andon` to its message box on the screen (target <= 0.5 s).

    python benchmarks/tui_speed.py [--tokens 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pty
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from andon.app.chat.history import History

sys.path.insert(0, str(Path(__file__).parent))  # for engine_vs_native

from andon.app.engine.client import EngineProcess
from andon.app.engine.engine import Delta, Done, Engine, ModelOptions
from andon.app.models.files import embedded_model_path
from andon.app.tui.app import AndonApp
from andon.app.tui.widgets.message_box import ChatInput
from andon.presets.commands import apply
from andon.presets.store import PresetStore
from engine_vs_native import load_average
from textual import events

ANSI = re.compile(rb"\x1b\[[0-9;?]*[ -/]*[@-~]")  # a terminal's control sequences

PROMPT = "Write a long story about a dragon who learns to bake bread."


def settings(engine: Engine | EngineProcess, tokens: int) -> dict:
    eog = {"<|im_end|>": False, "<|endoftext|>": False}  # the embedded model's ends of turn
    # num_ctx as the engine was loaded, so the app uses it as it is
    return {"num_predict": tokens, "seed": 7, "logit_bias": eog, "num_ctx": engine.options.num_ctx}


class Received:
    """Wraps an engine's stream: when the first and the last token's text arrived (the rate a
    consumer received them at) and the engine's own rate."""

    def __init__(self, engine: EngineProcess) -> None:
        self.engine, self.rates, self.engine_rates = engine, [], []

    def stream(self, *args, **kwargs):
        first = last = 0.0
        for event in self.engine.stream(*args, **kwargs):
            if isinstance(event, Delta) and event.text:
                last = time.perf_counter()
                first = first or last
            elif isinstance(event, Done):
                self.rates.append((event.usage.completion_tokens - 1) / (last - first))
                self.engine_rates.append(event.usage.tokens_per_second)
            yield event

    def __getattr__(self, name):
        return getattr(self.engine, name)


def headless_rate(engine: Received, changes: dict) -> None:
    preset = PresetStore().load("balanced")
    params = apply(preset.parameters, changes)
    messages = [{"role": "system", "content": preset.system}, {"role": "user", "content": PROMPT}]
    for _ in engine.stream(messages, params):
        pass


async def tui_round(engine: Received, changes: dict, folder: Path) -> list[float]:
    app = AndonApp(lambda o: engine, engine.options.path, history=History(folder / "h.db"),
                   store=PresetStore(folder / "p"))  # fmt: skip
    latencies: list[float] = []
    async with app.run_test(size=(120, 40)) as pilot:
        while not app.host.loaded.is_set():  # the chat screen is up and the model loaded
            await asyncio.sleep(0.05)
        await pilot.pause()
        app.session.set_parameters(changes)
        box = app.query_one(ChatInput)
        box.text = PROMPT
        await pilot.press("enter")
        await asyncio.sleep(0.3)
        for i in range(15):
            if not app.chat_screen.view.replying:
                break
            before = box.text
            t0 = time.perf_counter()
            # the key enters the app's queue as a terminal's would (pilot.press would also wait
            # for the whole screen to go idle, which never happens while a reply streams)
            app.post_message(events.Key("x", "x"))
            while box.text == before:
                await asyncio.sleep(0.0005)
            latencies.append((time.perf_counter() - t0) * 1e3)
            await asyncio.sleep(0.1 + 0.01 * i)
        await app.workers.wait_for_complete()
        await pilot.pause()
    return latencies


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    print(f"load average: {load_average()}")
    process = EngineProcess(ModelOptions(embedded_model_path(), num_ctx=2048))
    process.close = lambda: None  # the app may close it; the benchmark reuses it
    headless, app = Received(process), Received(process)
    changes = settings(process, args.tokens)
    headless_rate(headless, changes)  # warm up
    headless.rates.clear(), headless.engine_rates.clear()
    keys: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            headless_rate(headless, changes)
            keys += asyncio.run(tui_round(app, changes, Path(tmp) / str(r)))
            print(f"round {r + 1}: headless {headless.rates[-1]:.1f} tok/s received ({headless.engine_rates[-1]:.1f} "
                  f"by the engine), the app {app.rates[-1]:.1f} ({app.engine_rates[-1]:.1f})")  # fmt: skip
    h, t = statistics.median(headless.rates), statistics.median(app.rates)
    he, te = statistics.median(headless.engine_rates), statistics.median(app.engine_rates)
    print(f"1. median: headless {h:.1f} tok/s, the app {t:.1f} tok/s received: ratio {t / h:.3f} (target >= 0.95); "
          f"as the engine measured: {he:.1f} and {te:.1f}, ratio {te / he:.3f}")  # fmt: skip
    p95 = sorted(keys)[int(0.95 * (len(keys) - 1))]
    print(f"2. key press while streaming: median {statistics.median(keys):.1f} ms, "
          f"95th percentile {p95:.1f} ms, max {max(keys):.1f} ms (target <= 50)")  # fmt: skip
    EngineProcess.close(process)
    user_path(args.tokens, args.rounds)
    print(f"load average: {load_average()}")


def user_path(tokens: int, rounds: int) -> None:
    """`andon` in a pty against fresh `andon ask` processes, the same saved preset."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, **{f"XDG_{k}_HOME": f"{tmp}/{k.lower()}" for k in ("CONFIG", "DATA", "STATE", "CACHE")}}
        andon = [sys.executable, "-m", "andon"]
        sets = [a for k, v in settings_for_cli(tokens).items() for a in ("--set", f"{k}={json.dumps(v)}")]
        subprocess.run([*andon, "presets", "save", "bench", "--from", "balanced", *sets], env=env, check=True,
                       capture_output=True)  # fmt: skip
        launches, app_rates, ask_rates = [], [], []
        for r in range(rounds):
            usage = json.loads(subprocess.run([*andon, "ask", PROMPT, "--preset", "bench", "--json"], env=env,
                                              check=True, capture_output=True, text=True).stdout)["usage"]  # fmt: skip
            ask_rates.append(usage["tokens_per_second"])
            launch, rate = app_in_a_terminal([*andon, "--preset", "bench"], env, Path(tmp) / "data/andon")
            launches.append(launch)
            app_rates.append(rate)
            print(f"   round {r + 1}: andon ask {ask_rates[-1]:.1f} tok/s, the app in a terminal {rate:.1f} tok/s; "
                  f"message box shown {launch:.2f} s after start")  # fmt: skip
    a, t = statistics.median(ask_rates), statistics.median(app_rates)
    print(f"3. the user's path (medians): the app in a terminal {t:.1f} tok/s, a fresh andon ask {a:.1f} tok/s: "
          f"ratio {t / a:.3f}; start to message box {statistics.median(launches):.2f} s (target <= 0.5)")  # fmt: skip


def settings_for_cli(tokens: int) -> dict:
    return {"num_predict": tokens, "seed": 7, "logit_bias": {"<|im_end|>": False, "<|endoftext|>": False}}


def last_reply_id(data: Path) -> int:
    """The id of the history's last assistant message (0: none yet)."""
    try:
        with sqlite3.connect(f"file:{data / 'history.sqlite3'}?mode=ro", uri=True) as db:
            row = db.execute("SELECT MAX(id) FROM messages WHERE role = 'assistant'").fetchone()
    except sqlite3.Error:
        return 0
    return int(row[0] or 0)


def app_in_a_terminal(command: list[str], env: dict, data: Path) -> tuple[float, float]:
    """Start the app in a pty, wait for its message box, send PROMPT, wait for the reply in the
    history: (seconds to the message box, the reply's tokens per second)."""
    before = last_reply_id(data)  # the app reopens the last chat: wait for a reply newer than its last
    master, slave = pty.openpty()
    os.set_blocking(master, True)
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, env={**env, "TERM": "xterm-256color",
                            "COLUMNS": "100", "LINES": "30"}, start_new_session=True)  # fmt: skip
    os.close(slave)
    screen = bytearray()
    shown = threading.Event()
    launch = [0.0]

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return
            if not chunk:
                return
            screen.extend(chunk)
            # the placeholder's first letter is drawn under the cursor: its styles cut the words
            if not shown.is_set() and b"Type a message" in ANSI.sub(b"", bytes(screen)):
                launch[0] = time.perf_counter() - started
                shown.set()

    threading.Thread(target=drain, daemon=True).start()
    shown.wait(60)
    os.write(master, PROMPT.encode() + b"\r")
    rate = 0.0
    for _ in range(1200):
        time.sleep(0.1)
        try:
            with sqlite3.connect(f"file:{data / 'history.sqlite3'}?mode=ro", uri=True) as db:
                row = db.execute("SELECT id, status, stats FROM messages WHERE role = 'assistant' "
                                 "ORDER BY id DESC LIMIT 1").fetchone()  # fmt: skip
        except sqlite3.Error:
            continue
        if row and row[0] > before and row[1] == "complete":
            rate = json.loads(row[2]).get("tokens_per_second", 0.0)
            break
    os.write(master, b"\x11")  # Ctrl+Q
    proc.wait(timeout=30)
    os.close(master)
    return launch[0], rate

    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
