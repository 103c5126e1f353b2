"""The Samples and Features panels and the matrix's cursor, drill-down and test switch, on a
real (tiny) glyphs run opened from its directory as `nntui --open` does; the live bridge and
the replay give the same state for every new panel; SVG snapshots of a fixed run."""

from __future__ import annotations

import base64
import io
import re
import sys
from pathlib import Path

import helpers
import numpy as np
import pytest
from helpers import IMAGES, pilot_test, until
from PIL import Image
from rich.text import Text
from textual.events import MouseScrollUp
from textual.widgets import Tab, Tabs

from nnlib.config import ExperimentConfig
from nnlib.experiment import setup
from nntui.app import NNTui
from nntui.replay import open_run
from nntui.runstate import RunState
from nntui.screens.dashboard import DashboardScreen
from nntui.stream import Update
from nntui.widgets import picture
from nntui.widgets.picture import Picture
from nntui.widgets.pixels import tile_row


def train(run_dir: Path) -> list[Update]:
    """Two epochs of the TINY_CNN (five rows of maps that do not fit the Features panel at
    80x24)."""
    return helpers.train(run_dir, epochs=2, **IMAGES)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tui-views") / "run"
    train(path)
    return path


def state_of(snapshots: list[Update]) -> RunState:
    state = RunState()
    for snapshot in snapshots:
        state.apply(snapshot)
    return state


def test_live_and_recorded_runs_hold_the_same_views(tmp_path):
    live = state_of(train(tmp_path / "run"))
    recorded = state_of(open_run(tmp_path / "run").updates)
    for kind in ("samples", "feature_maps", "test"):
        assert live.latest(kind) is not None and live.latest(kind) == recorded.latest(kind)
    assert live.started.input_shape == recorded.started.input_shape == (28, 28, 1)


def opened(run_dir: Path) -> tuple[NNTui, DashboardScreen]:
    app = NNTui(ExperimentConfig(dataset="glyphs"))
    return app, DashboardScreen(app.config, recorded=open_run(run_dir))


def text(screen: DashboardScreen, key: str) -> str:
    """All a panel drew (also what is scrolled out of view)."""
    panel = screen.panels[key]
    panel.render()
    return str(panel.picture)


def cells(panel) -> list[list[tuple[str, object]]]:
    """What the panel puts on the screen: a (character, style) for each cell of each line
    of its content (inside its border and padding)."""
    rows = []
    for y in range(panel.content_size.height):
        row = []
        for segment in panel.render_line(y):
            row.extend((char, segment.style) for char in segment.text)
        rows.append(row)
    return rows


def visible(panel) -> str:
    return "\n".join("".join(char for char, _ in row) for row in cells(panel))


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
@pilot_test
async def test_samples_filters_and_the_matrix_drill_down(run_dir, size):
    app, screen = opened(run_dir)
    async with app.run_test(size=size) as pilot:
        await app.push_screen(screen)
        await until(pilot, lambda: screen.state.latest("samples") is not None)
        await pilot.press("6")
        await pilot.pause()
        shown = text(screen, "samples")
        assert "validation, epoch 2" in shown and "all:" in shown and "→" in shown
        await pilot.press("x")
        await pilot.pause()
        assert "misclassified:" in text(screen, "samples")
        assert "✓" not in text(screen, "samples").split("\n", 1)[1]  # only wrong ones
        await pilot.press("c")
        await pilot.pause()
        assert "confidently wrong:" in text(screen, "samples")
        await pilot.press("k", "k")
        await pilot.pause()
        assert "true class 1:" in text(screen, "samples")
        await pilot.press("3", "down", "down", "right", "enter")  # the cell true 1, pred 1
        await pilot.pause()
        assert screen.panels["samples"].has_class("-active")
        assert "true 1, predicted 1:" in text(screen, "samples")
        matrix = state_matrix(screen)
        assert f"true 1, predicted 1: {matrix[1][1]} of" in text(screen, "samples")


def state_matrix(screen: DashboardScreen) -> list[list[int]]:
    return [list(row) for row in screen.state.confusion.matrix]


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
@pilot_test
async def test_features_cycle_images_and_the_matrix_switches_to_test(run_dir, size):
    app, screen = opened(run_dir)
    async with app.run_test(size=size) as pilot:
        await app.push_screen(screen)
        await until(pilot, lambda: screen.state.latest("feature_maps") is not None)
        await pilot.press("7")
        await pilot.pause()
        shown = text(screen, "features")
        first = screen.state.latest("feature_maps").images[0]["layers"]
        assert "(1 of 4)" in shown and all(layer["name"] in shown for layer in first)
        assert f"{first[0]['name']} filter" in shown
        await pilot.press("pagedown")
        await pilot.pause()
        assert "(2 of 4)" in text(screen, "features")
        await pilot.press("pagedown", "pageup", "pageup")
        await pilot.pause()
        assert "(1 of 4)" in text(screen, "features")
        await pilot.press("3")
        await pilot.pause()
        assert text(screen, "confusion").startswith("validation, epoch 2")
        await pilot.press("t")
        await pilot.pause()
        test = screen.state.latest("test")
        assert text(screen, "confusion").startswith("test, epoch 2")
        assert f"of {test.samples:,}" in text(screen, "confusion")
        assert "test loss" in str(screen._status.render()).replace("│ test", "test")


@pilot_test
async def test_views_that_do_not_apply_offer_no_tab(tmp_path):
    config = ExperimentConfig(
        dataset="spirals", arch="2-8-3", epochs=1, run_dir=str(tmp_path / "r")
    )
    setup(config).fit()
    app = NNTui(ExperimentConfig(dataset="spirals"))
    screen = DashboardScreen(app.config, recorded=open_run(tmp_path / "r"))
    async with app.run_test(size=(80, 24)) as pilot:
        await app.push_screen(screen)
        await pilot.pause()
        tabs = screen.query_one(Tabs)
        hidden = {tab.id for tab in tabs.query(Tab) if not tab.display}
        assert {"tab-samples", "tab-features"} <= hidden
        await pilot.press("6")
        await pilot.pause()
        assert not screen.panels["samples"].has_class("-active")


def pixel(style) -> tuple[int, int]:
    """The grey levels of a half-block cell: (upper pixel, lower pixel)."""
    return style.color.triplet.red, style.bgcolor.triplet.red


def check_large(panel, image: np.ndarray) -> None:
    """The panel shows `image` (H, W uint8) at one pixel a half cell or more: every cell of
    the picture below the title line has its two pixels' grey levels (nearest neighbour)."""
    shown = cells(panel)
    height, width = image.shape
    picture = [row for row in shown[1:] if row and row[0][0] == "▀"]
    factor = sum(1 for char, _ in picture[0] if char == "▀") // width
    assert factor >= 1 and len(picture) * 2 >= height * factor
    assert len(picture) >= height // 2 and sum(c == "▀" for c, _ in picture[0]) >= width
    for y in range(len(picture)):
        for x in range(width * factor):
            upper = image[2 * y // factor, x // factor]
            shown_upper, shown_lower = pixel(picture[y][x][1])
            assert shown_upper == upper, (y, x)
            if (2 * y + 1) // factor < height:  # an odd count of half rows leaves one blank
                assert shown_lower == image[(2 * y + 1) // factor, x // factor], (y, x)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
@pilot_test
async def test_a_feature_map_opens_large_and_the_panel_scrolls(run_dir, size):
    """Enter on a map: the whole panel, each pixel a half cell (28x28: 28 columns by 14
    lines), its colours the map's values; Esc comes back (not to the setup screen); the
    overview scrolls to its last row, the first layer's filters."""
    app, screen = opened(run_dir)
    async with app.run_test(size=size) as pilot:
        await app.push_screen(screen)
        await until(pilot, lambda: screen.state.latest("feature_maps") is not None)
        await pilot.press("7", "down", "right", "enter")  # conv_1, its second channel
        await pilot.pause()
        panel = screen.panels["features"]
        record = screen.state.latest("feature_maps").images[0]["layers"][0]
        maps = np.asarray(record["data"], dtype=np.uint8).reshape(record["shape"])
        assert maps.shape[1:] == (28, 28)
        title = visible(panel).split("\n")[0]
        assert "conv_1 · channel 2 of 3" in title and "image 0 (label " in title
        assert f"black {record['lo'][1]:.3g}" in visible(panel)
        check_large(panel, maps[1])
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen and not panel.large
        assert "maxpool_1" in visible(panel)
        last = "conv_1 filter"
        if size == (80, 24):
            assert last not in visible(panel)  # it does not fit: the panel scrolls
        await pilot.press(*["down"] * 5)
        await pilot.pause()
        assert last in visible(panel)
        if size == (80, 24):  # at the bottom; the wheel scrolls up (three lines)
            assert "▼" not in visible(panel).split("\n")[-1]
            panel.post_message(MouseScrollUp(panel, 0, 0, 0, -1, 0, False, False, False))
            await pilot.pause()
            assert "▼" in visible(panel).split("\n")[-1]
        await pilot.press("enter")
        await pilot.pause()
        filters = screen.state.latest("feature_maps").filters
        kernel = np.asarray(filters["data"], dtype=np.uint8).reshape(filters["shape"])
        check_large(panel, kernel[1])


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
@pilot_test
async def test_a_sample_opens_large(run_dir, size):
    """Enter on an image of the gallery: the whole panel, its pixels, label and prediction;
    → goes on to the next image; Esc comes back."""
    app, screen = opened(run_dir)
    async with app.run_test(size=size) as pilot:
        await app.push_screen(screen)
        await until(pilot, lambda: screen.state.latest("samples") is not None)
        await pilot.press("6", "right", "down", "enter")
        await pilot.pause()
        panel = screen.panels["samples"]
        per_row = panel.grid[0]
        images = panel.file.images[..., 0]
        title = visible(panel).split("\n")[0]
        assert title.startswith((f"validation image {per_row + 1} ", f"image {per_row + 1} "))
        check_large(panel, images[per_row + 1])
        await pilot.press("right")
        await pilot.pause()
        check_large(panel, images[per_row + 2])
        await pilot.press("enter")
        await pilot.pause()
        assert not panel.large and "all: 40 of 40" in visible(panel)
        marked = [y for y, row in enumerate(cells(panel)) if any(s.reverse for _, s in row)]
        assert len(marked) == 1 and "→" in visible(panel).split("\n")[marked[0]]


# -- real pictures (`nntui --graphics`) ------------------------------------------------------------

#: A Kitty graphics protocol message: its keys and its payload.
APC = re.compile(r"\x1b_G([^;\x1b]*)(?:;([^\x1b]*))?\x1b\\")


def kitty_images(written: str) -> dict[tuple[int, int], Image.Image]:
    """The images sent with the Kitty graphics protocol, by the cells they were placed on
    (columns, rows): each is sent as PNG chunks under its id, then placed by that id."""
    payloads: dict[str, str] = {}
    placed: dict[tuple[int, int], str] = {}
    for keys, payload in APC.findall(written):
        fields = dict(field.split("=", 1) for field in keys.split(","))
        if fields.get("f") == "100":
            payloads[fields["i"]] = payloads.get(fields["i"], "") + payload
        elif fields.get("a") == "p":
            placed[int(fields["c"]), int(fields["r"])] = fields["i"]
    return {
        cells: Image.open(io.BytesIO(base64.b64decode(payloads[i]))) for cells, i in placed.items()
    }


@pytest.fixture
def graphics(monkeypatch):
    """Choose a graphics mode as `nntui --graphics` does (put back after the test), with
    what textual-image writes straight to the terminal (sys.__stdout__) kept."""
    written = io.StringIO()
    monkeypatch.setattr(sys, "__stdout__", written)
    monkeypatch.setattr(picture, "_chosen", picture.mode())

    def choose(mode: str) -> io.StringIO:
        assert picture.choose(mode, tty=False) == mode
        return written

    return choose


async def large_map(pilot, screen: DashboardScreen) -> np.ndarray:
    """Open conv_1's second channel large (as test_a_feature_map_opens_large does); the map."""
    await until(pilot, lambda: screen.state.latest("feature_maps") is not None)
    await pilot.press("7", "down", "right", "enter")
    record = screen.state.latest("feature_maps").images[0]["layers"][0]
    return np.asarray(record["data"], dtype=np.uint8).reshape(record["shape"])[1]


@pilot_test
async def test_kitty_mode_sends_a_maps_own_pixels_scaled_up(run_dir, graphics):
    """--graphics kitty: the large 28x28 map goes to the terminal as a Kitty graphics image
    of its cells' pixel size (28x14 cells of 10x20 pixels, the size assumed without a
    terminal to ask), each of its 28x28 pixels a 10x10 square; its cells hold the protocol's
    placeholders. The overview's tiles were sent and, when it closed, deleted."""
    written = graphics("kitty")
    app, screen = opened(run_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.push_screen(screen)
        image = await large_map(pilot, screen)
        panel = screen.panels["features"]
        await until(pilot, lambda: [p.placement.cols for p in panel.query(Picture)] == [28])
        await pilot.pause()
        placeholders = "".join(strip.text for strip in app.screen._compositor.render_strips())
        assert placeholders.count(chr(0x10EEEE)) == 28 * 14
    sent = kitty_images(written.getvalue())
    big = sent[28, 14]
    assert big.size == (280, 280)
    pixels = np.asarray(big.convert("RGB"))
    assert (pixels[5::10, 5::10, 0] == image).all()
    assert (pixels[..., 0] == np.repeat(np.repeat(image, 10, 0), 10, 1)).all()
    assert len(sent) > 1  # the overview's tiles came first
    assert "a=d" in written.getvalue()  # and went when the large view replaced them


@pilot_test
async def test_sixel_mode_draws_the_map_as_sixels_of_its_pixel_size(run_dir, graphics):
    graphics("sixel")
    app, screen = opened(run_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.push_screen(screen)
        await large_map(pilot, screen)
        panel = screen.panels["features"]
        await until(pilot, lambda: [p.placement.cols for p in panel.query(Picture)] == [28])
        await pilot.pause()
        strips = app.screen._compositor.render_strips()
        sixels = [seg.text for strip in strips for seg in strip if "\x1bP" in seg.text]
        assert len(sixels) == 1 and '"1;1;280;280' in sixels[0]  # its raster: 280x280 pixels


@pilot_test
async def test_cells_mode_draws_half_blocks_and_sends_no_image(run_dir, graphics):
    written = graphics("cells")
    app, screen = opened(run_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.push_screen(screen)
        image = await large_map(pilot, screen)
        await pilot.pause()
        panel = screen.panels["features"]
        check_large(panel, image)
        assert not panel.query(Picture)
    assert "\x1b_G" not in written.getvalue()


def test_a_picture_cut_by_the_panels_edge_keeps_its_half_blocks(monkeypatch):
    """Only a picture wholly in view gets an image over it: one the panel scrolls half out
    of view stays half blocks."""
    monkeypatch.setattr(picture, "_chosen", "kitty")
    pictures = picture.Pictures()
    one, two = np.zeros((4, 6), np.uint8), np.full((8, 4), 255, np.uint8)
    shown = tile_row([pictures.draw(one), pictures.draw(two)])
    lines = list(Text.assemble("title\n", shown).split("\n"))
    whole = pictures.placements(lines)
    assert [(p.x, p.y, p.cols, p.rows) for p in whole] == [(0, 1, 6, 2), (7, 1, 4, 4)]
    assert whole[1].image is two
    cut = pictures.placements(lines[:4])
    assert [(p.x, p.y, p.cols, p.rows) for p in cut] == [(0, 1, 6, 2)]
