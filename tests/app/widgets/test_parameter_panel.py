"""The parameter panel's groups come from the sampler registry (each stage, the parameters it reads)
and the presets' tables (the rest): every parameter once, the chain's stages in the registry's terms."""

from __future__ import annotations

from pathlib import Path

import pytest
from andon.app.chat.history import History
from andon.app.chat.session import ChatSession
from andon.app.tui.widgets.panels import LEFT_OUT, ParameterPanel, parameter_groups
from andon.presets.parameters import ALL_SPECS
from andon.presets.store import PresetStore
from andon.samplers.registry import BY_NAME, FIRST, REPLACING, SAMPLER_NAMES
from textual.app import App, ComposeResult

ORDERS = [
    SAMPLER_NAMES,  # the default
    tuple(reversed(SAMPLER_NAMES)),
    ("temperature", "min_p", "top_k"),
    (),
]


def names_in(groups: list[tuple[str, str, list[str]]]) -> list[str]:
    return [name for _, _, names in groups for name in names]


@pytest.mark.parametrize("samplers", ORDERS)
def test_every_parameter_is_in_the_panel_exactly_once(samplers):
    shown = names_in(parameter_groups(samplers))
    assert sorted(shown) == sorted(ALL_SPECS) and len(shown) == len(set(shown))


@pytest.mark.parametrize("samplers", ORDERS)
def test_the_stages_are_the_registrys_in_the_chains_order_then_those_left_out_in_the_registrys(samplers):
    groups = parameter_groups(samplers)
    chain = groups[: len(samplers)]
    assert [(key, title) for key, title, _ in chain] == [(s, f"{i}. {s}") for i, s in enumerate(samplers, 1)]
    assert [tuple(names) for _, _, names in chain] == [BY_NAME[s].parameters for s in samplers]
    left_out = [s for s in SAMPLER_NAMES if s not in samplers]
    tail = [names for key, _, names in groups if key == LEFT_OUT]
    assert tail == ([[n for s in left_out for n in BY_NAME[s].parameters]] if left_out else [])
    shown = names_in(groups)  # the stage that runs first and the one that replaces the chain's end
    assert all(n in shown for n in (*FIRST.parameters, *REPLACING.parameters))


class _Host(App[None]):
    """The panel alone, open, showing one chat's values."""

    def __init__(self, session: ChatSession) -> None:
        super().__init__()
        self.session = session

    def compose(self) -> ComposeResult:
        yield ParameterPanel(id="parameters")

    def on_mount(self) -> None:
        self.query_one(ParameterPanel).show(self.session)


async def test_the_panels_rows_are_every_parameter_once_in_its_groups_order(tmp_path: Path):
    history = History(tmp_path / "h.sqlite3")
    session = ChatSession(history, history.create_chat("chat", "default"), PresetStore(tmp_path / "presets"))
    async with _Host(session).run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        rows = [row.id.removeprefix("row-") for row in pilot.app.query(".param-row") if row.id]
        expected = names_in(parameter_groups(session.params.samplers))
        generation = expected.index("num_predict")  # the system prompt's row comes before its group
        assert rows == [*expected[:generation], "system", *expected[generation:]]
