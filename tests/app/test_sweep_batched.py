"""A sweep's N replies a cell drawn together as llama.cpp sequences (Engine.stream's `samples`, MBR's
draw): seeded, reproducible run to run, greedy ones equal to the greedy reply, served through the
engine's protocol; a stop (Esc in the app, Ctrl+C in the CLI) keeps the cells done."""

from __future__ import annotations

import pytest
from andon.app.engine.client import EngineProcess
from andon.app.engine.engine import Done, ModelOptions, Usage
from andon.app.study.sweep import Sweep, cells_for, parse_grid, run_sweep
from andon.presets.parameters import ParameterError, Parameters

ASK = [{"role": "user", "content": "Name a colour."}]


def done_of(engine, params, **kw) -> Done:
    (done,) = [e for e in engine.stream(ASK, Parameters.of(params), **kw) if isinstance(e, Done)]
    return done


@pytest.fixture(scope="module")
def process(model_path):
    engine = EngineProcess(ModelOptions(model_path, num_ctx=2048))
    yield engine
    engine.close()


@pytest.mark.model
def test_samples_are_seeded_in_order_and_the_same_run_to_run(process):
    params = {"seed": 5, "temperature": 1.2, "num_predict": 12}
    first, again = done_of(process, params, samples=3), done_of(process, params, samples=3)
    assert [c["seed"] for c in first.candidates] == [5, 6, 7]
    assert [c["text"] for c in first.candidates] == [c["text"] for c in again.candidates]
    assert len({c["text"] for c in first.candidates}) > 1  # three seeds, not one reply three times
    assert first.text == first.candidates[0]["text"]


@pytest.mark.model
def test_greedy_samples_are_the_greedy_reply(process):
    params = {"seed": 1, "temperature": 0, "num_predict": 16}
    alone = done_of(process, params)
    together = done_of(process, params, samples=3)
    assert [c["text"] for c in together.candidates] == [alone.text] * 3


@pytest.mark.model
def test_samples_with_beams_are_one_line(process):
    with pytest.raises(ParameterError, match="samples 3: expected 1 to 64 replies, without num_beams") as err:
        done_of(process, {"num_beams": 2, "num_predict": 4}, samples=3)
    assert "\n" not in str(err.value)


@pytest.mark.model
def test_stopped_samples_end_cancelled(process):
    done = done_of(process, {"seed": 1, "num_predict": 200}, samples=4, cancelled=lambda: True)
    assert done.finish_reason == "cancelled"


class Counting:
    """An engine that answers `samples` with one reply per seed (its text names the seed and the
    temperature) and records each call; `interrupt_at` raises Ctrl+C's KeyboardInterrupt on that call."""

    def __init__(self, interrupt_at: int = -1) -> None:
        self.calls: list[tuple[int, int | None]] = []
        self.interrupt_at = interrupt_at

    def stream(self, messages, params, cancelled=None, *, prompt=None, logprobs=None, samples=None):
        self.calls.append((params.seed, samples))
        if len(self.calls) - 1 == self.interrupt_at:
            raise KeyboardInterrupt
        seeds = range(params.seed, params.seed + (samples or 1))
        rows = [{"text": f"reply {s} at {params.temperature}", "seed": s, "tokens": [1, 2, 3]} for s in seeds]
        yield Done(rows[0]["text"], "stop", Usage(3, 3, 3), params.seed, candidates=rows if samples else [])


def sweep_of(n: int = 3) -> Sweep:
    axes = parse_grid(["temperature=0.5,1.5"])
    return Sweep("hi", axes, n, cells_for(axes, n, 10))


def test_a_cell_is_one_batched_request_and_one_by_one_where_banned_strings_are_set():
    together, alone, steps = Counting(), Counting(), []
    run_sweep(together, sweep_of(), Parameters(), "", progress=lambda label, step: steps.append(label))
    run_sweep(alone, sweep_of(), Parameters.of({"banned_strings": ["x"]}), "")
    assert together.calls == [(10, 3), (10, 3)]  # two cells, each one batch of 3 seeds from 10
    assert alone.calls == [(10, None), (11, None), (12, None)] * 2
    assert steps == ["temperature=0.5"] * 3 + ["temperature=1.5"] * 3  # the progress bar counts every reply


def test_ctrl_c_keeps_the_cells_done():
    sweep = run_sweep(Counting(interrupt_at=1), sweep_of(), Parameters(), "")
    assert not sweep.complete
    assert [c.values for c in sweep.done()] == [{"temperature": 0.5}]
    assert sweep.done()[0].replies == ["reply 10 at 0.5", "reply 11 at 0.5", "reply 12 at 0.5"]
