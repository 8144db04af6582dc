"""The app against headless generation, on the embedded model with the same settings.

1. Tokens per second shown in the TUI while it streams (measured by the engine inside the app,
   with Markdown rendering competing for the process) against headless `andon ask` (the engine
   alone). Target: ratio >= 0.9.
2. Key presses while a reply streams: time from the key to the message box showing it.
   Target: <= 50 ms.

    python benchmarks/tui_speed.py [--tokens 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from andon.app.chat.history import History
from andon.app.engine.engine import Done, Engine, ModelOptions
from andon.app.models.files import embedded_model_path
from andon.app.tui.app import AndonApp
from andon.app.tui.widgets.message_box import ChatInput
from andon.presets.commands import apply
from andon.presets.store import PresetStore
from textual import events

PROMPT = "Write a long story about a dragon who learns to bake bread."


def settings(engine: Engine, tokens: int) -> dict:
    eog = {str(t): False for t in range(engine.n_vocab) if engine.is_end_of_turn(t)}
    # num_ctx as the engine was loaded, so the app uses it as it is
    return {"num_predict": tokens, "seed": 7, "logit_bias": eog, "num_ctx": engine.options.num_ctx}


def headless_rate(engine: Engine, changes: dict) -> float:
    preset = PresetStore().load("balanced")
    params = apply(preset.parameters, changes)
    messages = [{"role": "system", "content": preset.system}, {"role": "user", "content": PROMPT}]
    for event in engine.stream(messages, params):
        if isinstance(event, Done):
            return event.usage.tokens_per_second
    raise RuntimeError("no reply")


async def tui_round(engine: Engine, changes: dict, folder: Path) -> tuple[float, list[float]]:
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
        rate = app.session.messages[-1].stats.get("tokens_per_second", 0.0)
    return rate, latencies


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    engine = Engine(ModelOptions(embedded_model_path(), num_ctx=2048))
    engine.close = lambda: None  # the app may close it; the benchmark reuses it
    changes = settings(engine, args.tokens)
    headless_rate(engine, changes)  # warm up
    ours, tui, keys = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            ours.append(headless_rate(engine, changes))
            rate, lat = asyncio.run(tui_round(engine, changes, Path(tmp) / str(r)))
            tui.append(rate)
            keys.extend(lat)
            print(f"round {r + 1}: headless {ours[-1]:.1f} tok/s, TUI {rate:.1f} tok/s, "
                  f"key presses {len(lat)}: median {statistics.median(lat):.1f} ms, max {max(lat):.1f} ms")  # fmt: skip
    h, t = statistics.median(ours), statistics.median(tui)
    print(f"median: headless {h:.1f} tok/s, TUI {t:.1f} tok/s, ratio {t / h:.3f} (target >= 0.9)")
    p95 = sorted(keys)[int(0.95 * (len(keys) - 1))]
    print(f"key press while streaming: median {statistics.median(keys):.1f} ms, "
          f"95th percentile {p95:.1f} ms, max {max(keys):.1f} ms (target <= 50)")  # fmt: skip


if __name__ == "__main__":
    main()
