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


def _session(tmp_path: Path) -> ChatSession:
    history = History(tmp_path / "h.sqlite3")
    return ChatSession(history, history.create_chat("chat", "default"), PresetStore(tmp_path / "presets"))


def shown_rows(app: App) -> list[str]:
    return [row.id.removeprefix("row-") for row in app.query(".param-row") if row.id and row.display]


async def test_typing_in_the_filter_shows_only_those_parameters_and_down_goes_to_the_first(tmp_path: Path):
    async with _Host(_session(tmp_path)).run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        pilot.app.query_one(ParameterPanel).focus_first()
        await pilot.press(*"mirostat t")  # a space finds the underscore
        assert shown_rows(pilot.app) == ["mirostat_tau"]
        titles = [str(t.render()) for t in pilot.app.query(".param-group") if t.display]
        assert len(titles) == 1 and "mirostat" in titles[0]  # its group's title alone
        await pilot.press("down")
        assert pilot.app.focused.id == "param-mirostat_tau"
        await pilot.press("escape")  # every parameter again, the field kept and in view
        await pilot.pause()
        assert len(shown_rows(pilot.app)) == len(ALL_SPECS) + 1 and pilot.app.focused.id == "param-mirostat_tau"
        rows = pilot.app.query_one("#param-rows").region
        assert rows.y <= pilot.app.focused.region.y < rows.bottom


async def test_a_filter_that_matches_nothing_says_so_and_enter_in_the_filter_goes_to_the_first_match(tmp_path):
    async with _Host(_session(tmp_path)).run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        pilot.app.query_one(ParameterPanel).focus_first()
        await pilot.press(*"zzz")
        assert shown_rows(pilot.app) == []
        assert "No parameter's name has 'zzz'" in str(pilot.app.query_one("#param-help").render())
        await pilot.press("backspace", "backspace", "backspace", *"mirostat_e", "enter")
        assert pilot.app.focused.id == "param-mirostat_eta"


async def test_up_and_down_go_from_field_to_field_in_the_panels_order(tmp_path: Path):
    session = _session(tmp_path)
    async with _Host(session).run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        order = [row.id.removeprefix("row-") for row in pilot.app.query(".param-row") if row.id]
        start = order.index("temperature")
        pilot.app.query_one("#param-temperature").focus()
        await pilot.press("down")
        assert pilot.app.focused.id == f"param-{order[start + 1]}"
        await pilot.press("up", "up")
        assert pilot.app.focused.id == f"param-{order[start - 1]}"
        pilot.app.query_one("#param-" + order[0]).focus()
        await pilot.press("up")  # above the first field: the filter box
        assert pilot.app.focused.id == "parameter-filter"


async def test_a_field_of_several_lines_and_the_chains_order_are_left_at_their_edges(tmp_path: Path):
    async with _Host(_session(tmp_path)).run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        order = [row.id.removeprefix("row-") for row in pilot.app.query(".param-row") if row.id]
        system = pilot.app.query_one("#param-system")
        system.focus()
        await pilot.press(*"one", "enter", *"two", "up")  # inside the text the arrows move in it
        assert pilot.app.focused is system and system.cursor_location[0] == 0
        await pilot.press("up")  # on its first line: the field above
        assert pilot.app.focused.id == f"param-{order[order.index('system') - 1]}"
        await pilot.press("down")  # entered from above: at its first line
        assert pilot.app.focused is system and system.cursor_location == (0, 0)
        stages = pilot.app.query_one("#param-samplers")
        stages.focus()
        stages.highlighted = 0
        await pilot.press("down")
        assert pilot.app.focused is stages and stages.highlighted == 1  # inside the list: the next stage
        await pilot.press("up", "up")
        assert pilot.app.focused.id == f"param-{order[order.index('samplers') - 1]}"


async def test_focus_field_clears_a_filter_that_hides_it(tmp_path: Path):
    async with _Host(_session(tmp_path)).run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        panel = pilot.app.query_one(ParameterPanel)
        panel.focus_first()
        await pilot.press(*"top_k")
        panel.focus_field("min_p")
        await pilot.pause()
        assert pilot.app.focused.id == "param-min_p" and "min_p" in shown_rows(pilot.app)
