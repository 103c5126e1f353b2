"""The Boundary panel, the wide layout's view cell, per-panel help and the warning badge under
the Pilot (issue 10, items 1, 5, 6); SVG snapshots from a fixed-seed spirals run."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import DATASETS, classification_run, config, log_text, pilot_test, press
from rich.color import Color
from textual.widgets import Tabs
from views_helpers import pinned, spirals_run

from nnlib import events
from nntui.app import NNTui
from nntui.commands import screen_keys
from nntui.plot import format_number
from nntui.replay import open_run
from nntui.screens.dashboard import DashboardScreen
from nntui.screens.panel_help import PanelHelpScreen
from nntui.widgets.boundary import CLASS_COLORS, TILE_COLUMNS, TILE_ROWS, BoundaryPanel
from nntui.widgets.layers import LayersPanel


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[list, Path]:
    return spirals_run(tmp_path_factory.mktemp("boundary"), arch="2-8-8-3", epochs=4)


def app() -> NNTui:
    return NNTui(config(dataset="spirals", arch="2-8-8-3"), datasets=DATASETS)


async def dashboard(pilot, snapshots) -> DashboardScreen:
    screen = DashboardScreen(pilot.app.config, replay=snapshots)
    await pilot.app.push_screen(screen)
    await pilot.pause()
    return screen


def text(panel: BoundaryPanel) -> str:
    return panel.render().plain


@pilot_test
async def test_an_image_run_offers_no_boundary_tab(run):
    async with app().run_test(size=(80, 24)) as pilot:
        screen = await dashboard(pilot, classification_run())
        assert not screen.query_one("#tab-boundary").display
        await press(pilot, "5")
        assert screen.query_one(Tabs).active == "tab-curves"
        assert any("no Boundary view" in str(n.message) for n in pilot.app._notifications)


@pilot_test
async def test_the_panel_at_80x24_and_its_keys(run):
    snapshots, _ = run
    async with app().run_test(size=(80, 24)) as pilot:
        screen = await dashboard(pilot, snapshots)
        assert screen.query_one("#tab-boundary").display
        await press(pilot, "5")
        panel = screen.query_one(BoundaryPanel)
        assert panel.has_class("-active") and panel.has_focus
        assert panel.size.width == 78 and "predicted class · epoch 4" in text(panel)
        before = text(panel)
        await press(pilot, "v", "d")
        assert panel.validation and panel.discrete and "val points ✓" in text(panel)
        assert panel.render() is not None and text(panel) != before
        await press(pilot, "u")
        assert panel.neurons and "dense_1" in text(panel) and "dense_2 unit 1" not in text(panel)
        await press(pilot, "down", "right", "right")
        assert panel.selected == (1, 2) and "dense_2 unit 3" in text(panel)
        await press(pilot, "right", *["right"] * 10)
        assert panel.selected == (1, 7)  # 8 units: stops at the last


@pilot_test
async def test_the_wide_view_cell_shows_one_view_at_a_time(run):
    snapshots, _ = run
    async with app().run_test(size=(120, 40)) as pilot:
        screen = await dashboard(pilot, snapshots)
        boundary, matrix = screen.query_one("#boundary"), screen.query_one("#confusion")
        assert matrix.display and not boundary.display
        assert screen.screen_state.view_key == "confusion"
        await press(pilot, "5")
        await pilot.pause()
        assert boundary.display and not matrix.display
        assert boundary.region.x == matrix.region.x or boundary.region.x > 60  # right column
        assert boundary.region.height > 20  # two thirds of the right column
        await press(pilot, "3")
        await pilot.pause()
        assert matrix.display and not boundary.display


@pilot_test
async def test_i_explains_the_active_panel(run):
    snapshots, _ = run
    async with app().run_test(size=(80, 24)) as pilot:
        screen = await dashboard(pilot, snapshots)
        assert "What am I looking at?" in [d for _, d, _, _ in screen_keys(screen)]
        await press(pilot, "2", "i")
        await pilot.pause()
        help_screen = pilot.app.screen
        assert isinstance(help_screen, PanelHelpScreen)
        assert help_screen.text == LayersPanel.HELP and "1e-3 is healthy" in help_screen.text
        await press(pilot, "escape")
        await pilot.pause()
        await press(pilot, "5", "i")
        await pilot.pause()
        assert pilot.app.screen.text == BoundaryPanel.HELP


@pilot_test
async def test_a_warning_is_a_log_line_and_a_status_badge(run):
    snapshots, _ = run
    warning = events.make(
        "warning",
        40,
        {"kind": "dead_relu", "message": "relu_1: 80% [dead]", "suggestion": "use leakyrelu"},
    )
    async with app().run_test(size=(80, 24)) as pilot:
        screen = await dashboard(pilot, [*snapshots, warning])
        status = screen.query_one("StatusPanel").render().plain
        assert "⚠ 1 warning" in status
        assert "warning: relu_1: 80% [dead] — use leakyrelu" in await log_text(pilot, screen)


@pilot_test
async def test_a_recorded_run_shows_the_same_boundary_as_live(run):
    snapshots, run_dir = run
    pictures = []
    for replay in (snapshots, open_run(run_dir).updates):
        async with app().run_test(size=(80, 24)) as pilot:
            screen = await dashboard(pilot, replay)
            await press(pilot, "5", "v")
            panel = screen.query_one(BoundaryPanel)
            pictures.append((panel.render(), panel.render().plain))
            await press(pilot, "u")
            pictures.append(panel.render().plain)
    live, recorded = pictures[:2], pictures[2:]
    assert live[0][1] == recorded[0][1] and live[0][0].spans == recorded[0][0].spans
    assert live[1] == recorded[1]


@pytest.fixture(scope="module")
def wide_run(tmp_path_factory) -> tuple[list, Path]:
    """The README's 2-32-32-3 on spirals: two hidden layers wider than a page of tiles."""
    return spirals_run(tmp_path_factory.mktemp("boundary-wide"), arch="2-32-32-3", epochs=2)


def tile(panel: BoundaryPanel, line: int, index: int) -> list[tuple[str, object]]:
    """The cells of the index-th tile on a line of the panel's picture: (text, style) each."""
    start = 1 + index * (TILE_COLUMNS + 1)  # a gap (or the ▶ marker) left of every tile
    row = panel.render().split("\n")[line][start : start + TILE_COLUMNS]
    return [(s.text, s.style) for s in row.render(panel.app.console)]


def drawn(panel: BoundaryPanel, unit_map: list[str], line: int) -> list[tuple[str, object]]:
    """What a tile of this activation map looks like on its line (0-2)."""
    picture = panel._draw_map(unit_map, TILE_COLUMNS, TILE_ROWS, color=True)
    return [(s.text, s.style) for s in picture[line].render(panel.app.console)]


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
@pilot_test
async def test_neurons_of_2_32_32_3_page_by_page(wide_run, size):
    snapshots, _ = wide_run
    neurons = [s for s in snapshots if isinstance(s, events.Boundary)][-1].neurons
    async with app().run_test(size=size) as pilot:
        screen = await dashboard(pilot, snapshots)
        await press(pilot, "5", "u")
        panel = screen.query_one(BoundaryPanel)
        page = panel.page_size
        assert 8 <= page < 32  # 32 units do not fit: pages
        lines = text(panel).split("\n")
        assert f"dense_1 (layer 1 of 2) · units 1-{page} of 32" in lines[0]
        assert "dense_1 unit 1" in lines[1]
        # Tiles are one cell apart (▶ marks the chosen one) with a blank line between rows.
        per_row = -(-page // ((len(lines) - 2 + 1) // (TILE_ROWS + 1)))
        assert lines[2][0] == "▶" and lines[1][TILE_COLUMNS + 1] == " "
        assert lines[1 + TILE_ROWS][: per_row * (TILE_COLUMNS + 1)].strip() == ""
        assert tile(panel, 1, 0) == drawn(panel, neurons[0]["units"][0]["map"], 0)
        # The legend says what the colours mean.
        assert "orange −" in lines[-1] and "grey 0" in lines[-1] and "blue +" in lines[-1]
        await press(pilot, "pagedown")
        assert panel.selected == (0, page)
        lines = text(panel).split("\n")
        assert f"units {page + 1}-{min(2 * page, 32)} of 32" in lines[0]
        assert f"dense_1 unit {page + 1}" in lines[1]
        for index in range(2):  # the second page's units are drawn, in order
            expected = drawn(panel, neurons[0]["units"][page + index]["map"], 1)
            assert tile(panel, 2, index) == expected
        await press(pilot, "pageup", *["right"] * page)  # the arrows go past the page's edge
        assert panel.selected == (0, page) and f"units {page + 1}-" in text(panel)
        await press(pilot, "down")  # the selected layer is the one shown
        lines = text(panel).split("\n")
        assert "dense_2 (layer 2 of 2)" in lines[0] and f"dense_2 unit {page + 1}" in lines[1]
        assert tile(panel, 1, 0) == drawn(panel, neurons[1]["units"][page]["map"], 0)
        await press(pilot, *["pagedown"] * 3)
        assert panel.selected == (1, 31) and "of 32" in text(panel).split("\n")[0]


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
@pilot_test
async def test_the_boundary_has_axes_and_a_class_legend(wide_run, size):
    snapshots, _ = wide_run
    event = [s for s in snapshots if isinstance(s, events.Boundary)][-1]
    async with app().run_test(size=size) as pilot:
        screen = await dashboard(pilot, snapshots)
        await press(pilot, "5")
        panel = screen.query_one(BoundaryPanel)
        lines = text(panel).split("\n")
        assert "u neurons" in lines[0]
        low, high = format_number(event.lo[1]), format_number(event.hi[1])
        assert lines[1].strip().startswith(f"{high}┤") and lines[-3].strip().startswith(f"{low}┤")
        assert "└" in lines[-2]
        x_axis = lines[-2].split("└")[1].split()
        assert x_axis[0] == format_number(event.lo[0]) and x_axis[-1] == format_number(event.hi[0])
        legend = panel.render().split("\n")[-1]
        assert legend.plain.startswith("■ 0  ■ 1  ■ 2") and "dark" in legend.plain
        swatches = [span.style.color.triplet for span in legend.spans[:3]]
        assert swatches == [Color.from_rgb(*c).triplet for c in CLASS_COLORS[:3]]


def snapshot_app(run, keys: list[str]):
    snapshots, _ = run
    application = app()

    async def show(pilot) -> None:
        await dashboard(pilot, pinned(snapshots))
        await press(pilot, *keys)
        await pilot.pause()

    return application, show


def test_boundary_80x24(snap_compare, run):
    application, show = snapshot_app(run, ["5"])
    assert snap_compare(application, terminal_size=(80, 24), run_before=show)


def test_boundary_120x40(snap_compare, run):
    application, show = snapshot_app(run, ["5", "v"])
    assert snap_compare(application, terminal_size=(120, 40), run_before=show)


def test_neurons_120x40(snap_compare, run):
    application, show = snapshot_app(run, ["5", "u", "down", "right"])
    assert snap_compare(application, terminal_size=(120, 40), run_before=show)


@pilot_test
async def test_the_titles_marks_stay_in_sight_in_the_wide_view_cell(run):
    """In the 120x40 view cell the title was cut at `d di`: `d` showed no mark when on."""
    snapshots, _ = run
    async with app().run_test(size=(120, 40)) as pilot:
        screen = await dashboard(pilot, snapshots)
        await press(pilot, "5")
        panel = screen.query_one(BoundaryPanel)
        await press(pilot, "v", "d")
        title = text(panel).splitlines()[0]
        assert len(title) <= panel.content_size.width
        assert "v val ✓" in title and "d discrete ✓" in title and "u neurons" in title
        await press(pilot, "v", "d")
        title = text(panel).splitlines()[0]
        assert "✓" not in title and "d discrete" in title


def test_boundary_back_in_time_80x24(snap_compare, run):
    """The time axis: the first step, then three steps on where a view changed."""
    application, show = snapshot_app(run, ["5", "home", "full_stop", "full_stop", "full_stop"])
    assert snap_compare(application, terminal_size=(80, 24), run_before=show)


@pilot_test
async def test_pgup_and_pgdn_move_time_on_the_map_and_page_the_neurons(wide_run):
    """One rule: PgUp/PgDn turn the pages of units in the Neurons view (and its title says
    so); on the map they move the time axis, as on the tabs that do not page."""
    snapshots, _ = wide_run
    async with app().run_test(size=(80, 24)) as pilot:
        screen = await dashboard(pilot, snapshots)
        await press(pilot, "5")
        panel = screen.query_one(BoundaryPanel)
        axis = screen.screen_state.axis
        await press(pilot, "pageup")
        assert axis.at is not None and not panel.neurons  # back in time, still the map
        held = axis.at
        await press(pilot, "pagedown")
        assert axis.at is None or axis.at > held
        await press(pilot, "end", "u")
        assert "PgUp/PgDn" in text(panel).split("\n")[0]
        await press(pilot, "pagedown")
        assert panel.selected == (0, panel.page_size) and axis.at is None
        await press(pilot, "u", "pageup")
        assert not panel.neurons and axis.at is not None
