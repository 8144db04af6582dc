"""The palette's "Sweep parameters…" at 80x24 through Pilot, on a fake engine that serves a sweep's
batched replies: the heat map shown (Self-BLEU as sacrebleu computes it), a bad grid refused in one
line with the fields kept, Esc stopping a run with the cells done shown, then closing."""

from __future__ import annotations

import re
import statistics
import time
from pathlib import Path

import sacrebleu
from andon.app.chat.history import History
from andon.app.engine.engine import Done, Usage
from andon.app.tui.app import AndonApp
from andon.app.tui.screens.sweep import SweepScreen
from andon.presets.store import PresetStore
from textual.widgets import Input, Label, ProgressBar

from tests.app.fakes import FakeEngine

SIZE = (80, 24)


def reply(seed: int, temperature: float) -> str:
    """The fake's reply: the same at a low temperature, different words per seed at a high one."""
    return "The sea is calm." if temperature < 0.5 else f"Waves {seed} roll past stone {seed * 7} tonight."


class SweepingEngine(FakeEngine):
    """A fake engine that answers `samples` as the engine does (one candidate per seed, in order);
    each request takes `pause` seconds unless cancelled first."""

    pause: float = 0.0

    def stream(self, messages, params, cancelled=None, chain=None, *, prompt=None, logprobs=None, samples=None):
        self.calls.append((params.temperature, samples))
        end = time.monotonic() + self.pause
        while time.monotonic() < end:
            if cancelled is not None and cancelled():
                yield Done("", "cancelled", Usage(), params.seed)
                return
            time.sleep(0.01)
        seeds = range(params.seed, params.seed + (samples or 1))
        rows = [{"text": reply(s, params.temperature), "seed": s, "tokens": [0, 1, 2]} for s in seeds]
        yield Done(rows[0]["text"], "stop", Usage(3, 3, 3), params.seed, candidates=rows)


def make_app(tmp_path: Path, pause: float = 0.0) -> tuple[AndonApp, list[SweepingEngine]]:
    engines: list[SweepingEngine] = []

    def factory(options):
        engines.append(SweepingEngine(options))
        engines[-1].pause = pause
        return engines[-1]

    app = AndonApp(factory, Path("/models/fake.gguf"), history=History(tmp_path / "h.sqlite3"),
                   store=PresetStore(tmp_path / "presets"))  # fmt: skip
    return app, engines


async def open_sweep(pilot) -> SweepScreen:
    await pilot.app.workers.wait_for_complete()
    await pilot.press("ctrl+p")
    await pilot.pause()
    await pilot.press(*"Sweep param")
    await pilot.pause(0.3)
    await pilot.press("enter")
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, SweepScreen)
    return screen


def fill(screen: SweepScreen, grid_1: str, grid_2: str, n: str) -> None:
    for field_id, value in (("sweep-grid-1", grid_1), ("sweep-grid-2", grid_2), ("sweep-n", n)):
        screen.query_one(f"#{field_id}", Input).value = value


def status(screen: SweepScreen) -> str:
    return str(screen.query_one("#sweep-status", Label).render())


def shown(app: AndonApp) -> str:
    """The screen's text as a user reads it (the SVG screenshot's text, spaces restored)."""
    svg = app.export_screenshot()
    return re.sub(r"<[^>]+>", "", svg).replace("&#160;", " ")


async def test_the_palette_runs_a_sweep_and_shows_its_heat_map(tmp_path):
    app, engines = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_sweep(pilot)
        fill(screen, "top_p=0.5,0.9", "temperature=0.1,1.5", "3")
        screen.query_one("#sweep-n", Input).focus()
        await pilot.press("enter")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        seeds = re.match(r"done · seeds (\d+)\.\.(\d+)", status(screen))
        assert seeds and screen.query_one(ProgressBar).percentage == 1.0
        text = shown(app)
    assert [c for c in engines[0].calls if c[1]] == [(0.1, 3), (1.5, 3)] * 2  # each cell one batched request
    varied = [reply(s, 1.5) for s in range(int(seeds[1]), int(seeds[2]) + 1)]
    others = [varied[:i] + varied[i + 1 :] for i in range(3)]
    expected = statistics.fmean(sacrebleu.sentence_bleu(varied[i], others[i]).score for i in range(3))
    assert "self_bleu, 3 replies a cell" in text and "100.00" in text and f"{expected:.2f}" in text
    assert f"{expected:.2f}" != "100.00"


async def test_a_bad_grid_is_one_line_and_the_fields_stay(tmp_path):
    app, engines = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_sweep(pilot)
        fill(screen, "toppp=0.1,0.5", "temperature=0.1", "3")
        screen.query_one("#sweep-grid-1", Input).focus()
        await pilot.press("enter")
        await pilot.pause()
        assert "toppp" in status(screen) and "\n" not in status(screen)
        assert screen.query_one("#sweep-grid-1", Input).value == "toppp=0.1,0.5"
        fill(screen, "top_p=0.5", "temperature=0.1", "1")
        await pilot.press("enter")
        await pilot.pause()
        assert "from 2 to 64" in status(screen)
    assert not [c for c in engines[0].calls if c[1]]  # nothing was generated


async def test_esc_stops_the_sweep_keeping_the_cells_done_then_closes(tmp_path):
    app, _ = make_app(tmp_path, pause=0.4)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_sweep(pilot)
        fill(screen, "top_p=0.5,0.9", "temperature=0.1,1.5", "2")
        await pilot.press("enter")
        bar = screen.query_one(ProgressBar)
        for _ in range(300):  # the first cell's two replies
            await pilot.pause(0.02)
            if bar.progress >= 2:
                break
        await pilot.press("escape")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        assert status(screen).startswith("stopped: 1 of 4 cells done")
        assert app.screen is screen and "100.00" in shown(app)  # the cell done, on its heat map
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, SweepScreen)
