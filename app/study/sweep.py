"""A parameter sweep: N seeded replies for every cell of a grid (top_p x temperature, any
parameters), each cell scored by Self-BLEU, distinct-1/2 and, where asked, factual accuracy; shown
as a table and a colour heat map (rich), and given as JSON or CSV."""

from __future__ import annotations

import csv
import io
import itertools
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from andon.app.engine.engine import Done, messages_for
from andon.app.engine.mbr import draws_as_replies
from andon.app.study.evaluation import Question, distinct_n, self_bleu, tokenizer_for
from andon.presets.commands import apply, spec_for
from andon.presets.parameters import ParameterError, Parameters
from rich.console import Console
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from andon.app.engine.client import EngineLike

MAX_AXES = 2  # a heat map has two axes


@dataclass(frozen=True)
class Axis:
    name: str
    values: tuple[Any, ...]


def parse_grid(items: Sequence[str]) -> list[Axis]:
    """`--grid NAME=V1,V2,...` options, each value checked as `--set NAME=V` checks it.
    ParameterError (one line) for a bad one."""
    axes: list[Axis] = []
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        values = [v.strip() for v in text.split(",") if v.strip()]
        if not sep or not name or not values:
            raise ParameterError(f"--grid {item!r}: expected NAME=V1,V2,..., e.g. --grid top_p=0.1,0.5,0.9")
        spec = spec_for(name)
        try:
            parsed = tuple(spec.parse(v) for v in values)
        except ParameterError as exc:
            raise ParameterError(f"--grid {name}: {exc}") from None
        if any(a.name == name for a in axes):
            raise ParameterError(f"--grid {name}: given twice (one --grid per parameter)")
        axes.append(Axis(name, parsed))
    if len(axes) > MAX_AXES:
        raise ParameterError(f"--grid: at most {MAX_AXES} parameters (the heat map's two axes), got {len(axes)}")
    return axes


@dataclass
class Cell:
    values: dict[str, Any]
    seeds: list[int]
    replies: list[str] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    correct: list[bool] = field(default_factory=list)

    def figures(self, tokenize: str | None = None) -> dict[str, float | None]:
        return {
            "self_bleu": round(self_bleu(self.replies, tokenize), 2) if len(self.replies) > 1 else None,
            "distinct_1": round(distinct_n(self.replies, 1), 4),
            "distinct_2": round(distinct_n(self.replies, 2), 4),
            "mean_tokens": round(statistics.fmean(self.tokens), 1) if self.tokens else 0.0,
            "accuracy": round(sum(self.correct) / len(self.correct), 4) if self.correct else None,
        }


@dataclass
class Sweep:
    prompt: str
    axes: list[Axis]
    n: int
    cells: list[Cell]
    tokenize: str | None = None  # sacrebleu's tokenizer; None: by the replies' script
    complete: bool = True

    def done(self) -> list[Cell]:
        """The cells whose replies were all written (an interrupted sweep keeps these)."""
        return [c for c in self.cells if len(c.replies) == self.n]

    def tokenizer(self) -> str:
        return self.tokenize or tokenizer_for([r for c in self.done() for r in c.replies])

    def to_json(self) -> dict[str, Any]:
        tok = self.tokenizer()
        return {
            "prompt": self.prompt, "n": self.n, "grid": {a.name: list(a.values) for a in self.axes},
            "tokenize": tok, "complete": self.complete,
            "cells": [{**c.values, **c.figures(tok), "seeds": c.seeds, "replies": c.replies} for c in self.done()],
        }  # fmt: skip

    def to_csv(self) -> str:
        out = io.StringIO()
        tok = self.tokenizer()
        names = [a.name for a in self.axes]
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([*names, "self_bleu", "distinct_1", "distinct_2", "mean_tokens", "accuracy"])
        for c in self.done():
            f = c.figures(tok)
            writer.writerow([*(c.values[n] for n in names), *("" if v is None else v for v in f.values())])
        return out.getvalue()


def cells_for(axes: Sequence[Axis], n: int, base_seed: int) -> list[Cell]:
    """Every combination of the axes' values; reply i of every cell uses seed base_seed + i."""
    combos = itertools.product(*(a.values for a in axes))
    return [Cell(dict(zip((a.name for a in axes), combo, strict=True)), [base_seed + i for i in range(n)])
            for combo in combos]  # fmt: skip


def run_sweep(
    engine: EngineLike,
    sweep: Sweep,
    params: Parameters,
    system: str,
    *,
    prompt_tokens: Sequence[int] | None = None,
    questions: Sequence[Question] = (),
    progress: Callable[[str, int], None] | None = None,
    stopped: Callable[[], bool] | None = None,
) -> Sweep:
    """Fill the sweep's cells in order: n seeded replies each, drawn together as llama.cpp sequences
    where the cell's settings allow (else one by one), and the questions' answers under the cell's
    settings. KeyboardInterrupt or `stopped()` ends it (the engine stops the reply under way), keeping
    the cells done (sweep.complete False)."""
    messages = messages_for(system, (), sweep.prompt)
    try:
        for cell in sweep.cells:
            p = apply(params, cell.values)
            fill = _together if draws_as_replies(p) else _one_by_one
            if not fill(engine, cell, messages, p, prompt_tokens, progress, stopped):
                sweep.complete = False
                return sweep
            for q in questions[len(cell.correct) :]:
                done = _reply(engine, messages_for(system, (), q.question), apply(p, {"seed": cell.seeds[0]}), stopped)
                if done.finish_reason == "cancelled":
                    sweep.complete = False
                    return sweep
                cell.correct.append(q.accepts(done.text))
                if progress:
                    progress(_label(cell), 1)
    except KeyboardInterrupt:
        sweep.complete = False
    return sweep


def _together(engine: EngineLike, cell: Cell, messages: Any, params: Parameters, prompt: Sequence[int] | None,
              progress: Callable[[str, int], None] | None, stopped: Callable[[], bool] | None) -> bool:  # fmt: skip
    """The cell's replies as sequences of one batch (Engine.stream's `samples`), seeds in order."""
    left = cell.seeds[len(cell.replies) :]
    if not left:
        return True
    done = _reply(engine, messages, apply(params, {"seed": left[0]}), stopped, prompt, len(left))
    if done.finish_reason == "cancelled":
        return False
    cell.replies.extend(c["text"] for c in done.candidates)
    cell.tokens.extend(len(c["tokens"]) for c in done.candidates)
    for _ in left:  # one step a reply, as ProgressReport counts them
        if progress:
            progress(_label(cell), 1)
    return True


def _one_by_one(engine: EngineLike, cell: Cell, messages: Any, params: Parameters, prompt: Sequence[int] | None,
                progress: Callable[[str, int], None] | None, stopped: Callable[[], bool] | None) -> bool:  # fmt: skip
    """The cell's replies one after another (banned_strings, think_budget, beams or MBR in the cell)."""
    for seed in cell.seeds[len(cell.replies) :]:
        done = _reply(engine, messages, apply(params, {"seed": seed}), stopped, prompt)
        if done.finish_reason == "cancelled":
            return False
        cell.replies.append(done.text)
        cell.tokens.append(done.usage.completion_tokens)
        if progress:
            progress(_label(cell), 1)
    return True


def _reply(engine: EngineLike, messages: Any, params: Parameters, stopped: Callable[[], bool] | None = None,
           prompt: Sequence[int] | None = None, samples: int | None = None) -> Done:  # fmt: skip
    for event in engine.stream(messages, params, stopped, prompt=prompt, samples=samples):
        if isinstance(event, Done):
            return event
    raise RuntimeError("the engine ended without a reply")


def _label(cell: Cell) -> str:
    return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in cell.values.items())


# --- pictures ----------------------------------------------------------------------------------

METRICS = ("self_bleu", "distinct_2", "accuracy")


def heat_map(sweep: Sweep, metric: str = "self_bleu") -> Table:
    """The metric per cell: rows the first axis's values, columns the second's; red for high, blue
    for low (Self-BLEU 100: identical replies; lower: more diverse)."""
    tok = sweep.tokenizer()
    figures = {tuple(c.values.values()): c.figures(tok).get(metric) for c in sweep.done()}
    values = [v for v in figures.values() if v is not None]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    rows_axis = sweep.axes[0]
    cols_axis = sweep.axes[1] if len(sweep.axes) > 1 else None
    title = f"{metric}, {sweep.n} replies a cell" + (f" ({tok})" if metric == "self_bleu" else "")
    table = Table(title=title, show_lines=False)
    table.add_column(f"{rows_axis.name} \\ {cols_axis.name}" if cols_axis else rows_axis.name)
    for col in cols_axis.values if cols_axis else ("",):
        table.add_column(f"{col:g}" if isinstance(col, float) else str(col), justify="right")
    for row in rows_axis.values:
        cells = []
        for col in cols_axis.values if cols_axis else (None,):
            key = (row, col) if cols_axis else (row,)
            v = figures.get(key)
            cells.append(Text("—") if v is None else Text(f" {v:.2f} ", style=_colour(v, low, high)))
        table.add_row(f"{row:g}" if isinstance(row, float) else str(row), *cells)
    return table


def _colour(v: float, low: float, high: float) -> str:
    """A blue (low) to red (high) background, white text."""
    t = 0.5 if high <= low else (v - low) / (high - low)
    r, b = int(40 + 180 * t), int(220 - 180 * t)
    return f"white on rgb({r},40,{b})"


def render(sweep: Sweep, metrics: Sequence[str] = ("self_bleu", "distinct_2"), width: int = 80,
           record: bool = False) -> Console:  # fmt: skip
    """A console (recording where asked: its export_svg / export_text) with the heat maps printed."""
    # recorded for a file: drawn off screen (standard output keeps --json or --csv alone)
    console = Console(width=width, record=record, highlight=False, file=io.StringIO() if record else None)
    for metric in metrics:
        console.print(heat_map(sweep, metric))
    return console
