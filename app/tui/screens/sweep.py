"""The palette's "Sweep parameters…": `andon compare --grid` in the app. A dialog takes the prompt,
one or two parameters with their values (checked as /set checks them) and N; Enter runs the sweep
on the loaded model with the chat's preset and parameters (each cell's N replies drawn together,
app/study/sweep.py), a progress bar counts the replies; Esc stops it and shows the cells done, then
closes. The result is the heat maps `andon compare --grid` prints."""

from __future__ import annotations

import secrets
import threading
from typing import TYPE_CHECKING, ClassVar

from andon.app.tui.failures import guarded
from rich.console import Group
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Label, ProgressBar, Static

if TYPE_CHECKING:
    from andon.app.chat.session import ChatSession
    from andon.app.study.sweep import Sweep
    from andon.app.tui.engine_host import EngineHost

FIELDS = (  # (id, label, default)
    ("sweep-prompt", "prompt", "Write one sentence about the sea."),
    ("sweep-grid-1", "grid", "top_p=0.1,0.5,0.9"),
    ("sweep-grid-2", "grid", "temperature=0.1,0.8,1.5"),
    ("sweep-n", "replies a cell", "3"),
)
HINT = "Enter runs · Esc stops a run, then closes · a grid: NAME=V1,V2,..."


class SweepScreen(ModalScreen[None]):
    """A sweep's fields, its progress and its heat maps."""

    AUTO_FOCUS = "#sweep-prompt"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "stop_or_close", "Stop / close")]

    def __init__(self, host: EngineHost, session: ChatSession, prompt: str = "") -> None:
        super().__init__()
        self.host, self.session, self.prompt = host, session, prompt.strip()
        self.stop = threading.Event()
        self.running = False

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Sweep parameters of preset {self.session.preset.name}: N replies a combination")
            for field_id, label, default in FIELDS:
                value = self.prompt if field_id == "sweep-prompt" and self.prompt else default
                with Horizontal(classes="sweep-row"):
                    yield Label(label, classes="sweep-label")
                    yield Input(value, id=field_id, compact=True)
            yield Label(HINT, id="sweep-status", markup=False)
            yield ProgressBar(id="sweep-progress", show_eta=False).set_class(True, "hidden")
            with VerticalScroll(id="sweep-result"):
                yield Static("", id="sweep-maps")

    def _value(self, field_id: str) -> str:
        return self.query_one(f"#{field_id}", Input).value.strip()

    def _say(self, text: str) -> None:
        self.query_one("#sweep-status", Label).update(text)

    @on(Input.Submitted)
    @guarded
    def _start(self) -> None:
        """Check the fields (one line where one is wrong, nothing lost), then run."""
        if self.running:
            return
        try:
            sweep = self._sweep()
        except ValueError as exc:  # ParameterError and a bad N: the line says which and what is allowed
            self._say(str(exc))
            return
        self.running = True
        self.stop.clear()
        bar = self.query_one(ProgressBar)
        bar.update(total=len(sweep.cells) * sweep.n, progress=0)
        bar.remove_class("hidden")
        self._say(f"{len(sweep.cells)} cells x {sweep.n} replies · Esc stops, keeping the cells done")
        self._run(sweep)

    def _sweep(self) -> Sweep:
        """The sweep the fields describe; ValueError (one line) for a bad grid, a bad N, no prompt."""
        from andon.app.study.sweep import Sweep, cells_for, parse_grid
        from andon.presets.commands import apply

        prompt = self._value("sweep-prompt")
        if not prompt:
            raise ValueError("prompt: type the text every reply answers")
        axes = parse_grid([g for g in (self._value("sweep-grid-1"), self._value("sweep-grid-2")) if g])
        if not axes:
            raise ValueError("grid: give at least one, e.g. top_p=0.1,0.5,0.9")
        n_text = self._value("sweep-n")
        if not n_text.isdigit() or not 2 <= int(n_text) <= 64:
            raise ValueError(f"replies a cell {n_text!r}: a whole number from 2 to 64 (Self-BLEU compares replies)")
        for cell in cells_for(axes, 1, 0):  # every combination refused or taken before a reply is written
            apply(self.session.params, cell.values)
        seed = self.session.params.seed if self.session.params.seed >= 0 else secrets.randbits(30)
        return Sweep(prompt, axes, int(n_text), cells_for(axes, int(n_text), seed))

    @work(thread=True, exclusive=True, group="sweep", exit_on_error=False)
    @guarded
    def _run(self, sweep: Sweep) -> None:
        """The sweep on the loaded model (its lock held: no reply meanwhile), then its heat maps."""
        from andon.app.study.sweep import run_sweep

        def advance(_label: str, _step: int) -> None:  # one reply written
            self.app.call_from_thread(self.query_one(ProgressBar).advance, 1)

        params = self.session.params
        why = ""
        try:
            with self.host.lock:
                engine = self.host.engine_for(params)
                run_sweep(engine, sweep, params, self.session.system, progress=advance, stopped=self.stop.is_set)
        except Exception as exc:  # a model that cannot load, a cell the engine refuses: one line
            why, sweep.complete = str(exc).splitlines()[0] if str(exc) else type(exc).__name__, False
        self.app.call_from_thread(self._show, sweep, why)

    def _show(self, sweep: Sweep, why: str) -> None:
        """The heat maps of the cells done, and a line saying how the sweep ended."""
        from andon.app.study.sweep import heat_map

        self.running = False
        done = len(sweep.done())
        if why:
            self._say(f"stopped: {why} ({done} of {len(sweep.cells)} cells done)")
        elif not sweep.complete:
            self._say(f"stopped: {done} of {len(sweep.cells)} cells done · Esc closes · Enter runs again")
        else:
            first = sweep.cells[0].seeds[0]
            self._say(f"done · seeds {first}..{first + sweep.n - 1} · Esc closes · Enter runs again")
        if done:
            maps = Group(*(heat_map(sweep, metric) for metric in ("self_bleu", "distinct_2")))
            self.query_one("#sweep-maps", Static).update(maps)

    @guarded
    def action_stop_or_close(self) -> None:
        """Esc: a running sweep stops (the cells done are shown); otherwise the dialog closes."""
        if self.running:
            self.stop.set()
            self._say("stopping…")
        else:
            self.dismiss(None)
