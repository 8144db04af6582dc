"""A long chat in the app: memory and streaming speed as the chat grows.

Drives the app headless (Textual's Pilot: text into the message box, Enter) for N turns in one
chat and prints, at turn 1, N/2 and N (medians of the last few turns): the process's resident
memory (RSS), the app's tokens per second while it streamed, the engine's rate alone on the same
conversation (so the app's own cost shows as the ratio), and the UI thread's CPU time per token
(the app's cost, steadier than rates on a shared machine). Target: memory, ratio and UI cost flat
as the chat grows.

    python benchmarks/tui_soak.py                      # a fake engine: 200 turns of 80 tokens
    python benchmarks/tui_soak.py --model --tokens 48  # the embedded model (minutes)

The fake engine costs what a small model's token does: 5 ms outside the GIL (llama.cpp's decode)
and about 0.3 ms of Python (andon's sampler chain), so the app's rendering competes as it would.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from andon.app.chat.history import History
from andon.app.engine.engine import Delta, Done, Engine, ModelOptions, Usage
from andon.app.models.files import embedded_model_path
from andon.app.tui.app import AndonApp
from andon.app.tui.widgets.message_box import ChatInput, MessageBox
from andon.presets.commands import apply
from andon.presets.store import PresetStore

SPAN = 5  # figures are medians over the turns up to a report (the machine may be shared)
WORDS = ["the", "sea", "is", "wide", "and", "the", "night", "is", "long", "so", "we", "sail", "on", "under", "stars"]


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return kb / 1024


@dataclass
class PacedEngine:
    """Yields `tokens` words per reply at a small model's pace; reports the rate it achieved."""

    options: ModelOptions
    tokens: int = 80
    model_name: str = "paced-fake"
    n_ctx: int = 4096
    n_vocab: int = len(WORDS)
    calls: list = field(default_factory=list)

    def stream(self, messages, params, cancelled=None, chain=None):
        text, start = [], time.perf_counter()
        for i in range(self.tokens):
            if cancelled is not None and cancelled():
                break
            time.sleep(0.005)  # the decode, outside the GIL
            sum(j * j for j in range(1500))  # the sampler chain, in Python
            piece = (" " if i else "") + WORDS[i % len(WORDS)] + ("\n\n" if i % 20 == 19 else "")
            text.append(piece)
            yield Delta(piece, i + 1, time.perf_counter() - start)
        seconds = time.perf_counter() - start
        rate = (len(text) - 1) / seconds if len(text) > 1 else 0.0
        yield Done("".join(text), "length", Usage(len(messages) * 20, 0, len(text), 0.0, rate, seconds), 1)

    def chat_tokens(self, messages):
        return [0] * (len(messages) * 20)

    def tokenize(self, text, *, special=True, add_bos=False):
        return [0]

    def piece(self, token, *, special=False):
        return WORDS[token].encode()

    def token_text(self, token):
        return WORDS[token]

    def vocab_for(self, params):
        return None

    def prefill(self, tokens):
        return len(tokens)

    def logits(self):
        raise NotImplementedError

    def close(self):
        pass


async def soak(app: AndonApp, turns: int, report: set[int], changes: dict) -> None:
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        while not app.host.loaded.is_set():
            await asyncio.sleep(0.05)
        app.session.set_parameters(changes)
        rates: list[float] = []
        costs: list[float] = []
        for turn in range(1, turns + 1):
            app.query_one(ChatInput).text = f"Tell me more about the sea, part {turn}."
            ui_before = time.thread_time()  # the UI's own work runs on this thread
            await pilot.press("enter")
            await app.workers.wait_for_complete()
            await pilot.pause()
            stats = app.session.messages[-1].stats
            rates.append(stats.get("tokens_per_second", 0.0))
            costs.append((time.thread_time() - ui_before) * 1e3 / max(1, stats.get("completion_tokens", 1)))
            if turn in report:
                gc.collect()
                rate, cost = statistics.median(rates[-SPAN:]), statistics.median(costs[-SPAN:])
                engine_rate = engine_alone(app)
                mounted = len(app.query(MessageBox))
                print(f"turn {turn:4d}: RSS {rss_mb():6.1f} MB, app {rate:6.1f} tok/s, engine alone "
                      f"{engine_rate:6.1f} tok/s, ratio {rate / engine_rate:.2f}, UI {cost:5.2f} ms CPU a token; "
                      f"{len(app.session.messages)} messages, {mounted} mounted", flush=True)  # fmt: skip


def engine_alone(app: AndonApp) -> float:
    """The engine's rate on the same conversation, with no UI in the process's way."""
    session = app.session
    with app.host.lock:
        engine = app.host.engine_for(session.params)
        for event in engine.stream(session.engine_messages()[:-1], apply(session.params, {"seed": 1})):
            if isinstance(event, Done):
                return event.usage.tokens_per_second
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--turns", type=int, default=200)
    ap.add_argument("--tokens", type=int, default=80, help="tokens per reply")
    ap.add_argument("--model", action="store_true", help="the embedded model instead of the paced fake")
    ap.add_argument("--window", type=int, help="messages the app keeps mounted (default: the app's)")
    args = ap.parse_args()
    if args.window:
        from andon.app.tui.widgets import conversation

        conversation.WINDOW = args.window
    report = {1, max(1, args.turns // 2), args.turns}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store = PresetStore(folder / "presets")
        history = History(folder / "h.db")
        if args.model:
            app = AndonApp(lambda o: Engine(o), embedded_model_path(), history=history, store=store)
            changes = {"num_predict": args.tokens}
        else:
            app = AndonApp(lambda o: PacedEngine(o, args.tokens), Path("paced.gguf"), history=history, store=store)
            changes = {}
        started = time.perf_counter()
        asyncio.run(soak(app, args.turns, report, changes))
        print(f"{args.turns} turns in {time.perf_counter() - started:.0f} s "
              f"({'embedded model' if args.model else 'paced fake engine'}, {args.tokens} tokens a reply)")  # fmt: skip


if __name__ == "__main__":
    main()
