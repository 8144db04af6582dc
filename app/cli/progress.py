"""Progress of a long command (`compare`, `eval`) on standard error.

On a terminal: rich's progress bar with the count, the time taken and the time left. Elsewhere (a
log file, a pipe, CI): a plain line every few seconds, and one at the end, so a long run is never
silent.
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

PLAIN_EVERY_S = 5.0


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))


class ProgressReport:
    """`with ProgressReport("eval", 183, "replies") as p: ... p.advance("factual")` once per step."""

    def __init__(
        self,
        what: str,
        total: int,
        unit: str,
        stream: TextIO | None = None,
        terminal: bool | None = None,
        every_s: float = PLAIN_EVERY_S,
    ) -> None:
        self.what, self.total, self.unit = what, total, unit
        self.stream = stream if stream is not None else sys.stderr
        self.terminal = self.stream.isatty() if terminal is None else terminal
        self.every_s = every_s
        console = Console(file=self.stream, force_terminal=self.terminal or None, stderr=self.stream is sys.stderr)
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(unit),
            TimeElapsedColumn(),
            TextColumn("taken,"),
            TimeRemainingColumn(),
            TextColumn("left"),
            console=console,
            disable=not self.terminal,  # still keeps count and speed for the plain lines
        )
        self.task: TaskID = self.bar.add_task(what, total=total)
        self.started = self.last_line = time.monotonic()

    def __enter__(self) -> ProgressReport:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()
        if not self.terminal and exc[0] is None:
            took = _clock(time.monotonic() - self.started)
            print(f"{self.what}: {self.done}/{self.total} {self.unit} in {took}", file=self.stream, flush=True)

    @property
    def done(self) -> int:
        return int(self.bar.tasks[0].completed)

    def advance(self, label: str, _step: int = 0) -> None:
        """One more step done, for `label` (the preset); fits compare()'s and evaluate()'s progress."""
        self.bar.update(self.task, advance=1, description=f"{self.what} {label}")
        now = time.monotonic()
        if not self.terminal and now - self.last_line >= self.every_s and self.done < self.total:
            self.last_line = now
            left = self.bar.tasks[0].time_remaining
            print(
                f"{self.what}: {self.done}/{self.total} {self.unit} ({label}), {_clock(now - self.started)} taken"
                + (f", about {_clock(left)} left" if left is not None else ""),
                file=self.stream,
                flush=True,
            )
