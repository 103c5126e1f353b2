"""The Samples and Features panels and the matrix's cursor, drill-down and test switch, on a
real (tiny) glyphs run opened from its directory as `nntui --open` does; the live bridge and
the replay give the same state for every new panel; SVG snapshots of a fixed run."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import pilot_test, until
from textual.widgets import Tab, Tabs

from nnlib.config import ExperimentConfig
from nnlib.experiment import setup
from nntui import bridge as b
from nntui.app import NNTui
from nntui.replay import open_run
from nntui.runstate import RunState
from nntui.screens.dashboard import DashboardScreen

TINY = "conv(2,3) relu maxpool(2) dense(10)"


def train(run_dir: Path) -> list[b.Snapshot]:
    live: list[b.Snapshot] = []
    config = ExperimentConfig(
        dataset="glyphs", arch=TINY, epochs=2, subset=400, batch_size=50, run_dir=str(run_dir)
    )
    setup(config, callbacks=[b.Bridge(live.append, interval=0.0)]).fit()
    return live


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tui-views") / "run"
    train(path)
    return path


def state_of(snapshots: list[b.Snapshot]) -> RunState:
    state = RunState()
    for snapshot in snapshots:
        state.apply(snapshot)
    return state


def test_live_and_recorded_runs_hold_the_same_views(tmp_path):
    live = state_of(train(tmp_path / "run"))
    recorded = state_of(open_run(tmp_path / "run").snapshots)
    for kind in ("samples", "feature_maps", "test"):
        assert live.latest(kind) is not None and live.latest(kind) == recorded.latest(kind)
    assert live.started.input_shape == recorded.started.input_shape == (28, 28, 1)


def opened(run_dir: Path) -> tuple[NNTui, DashboardScreen]:
    app = NNTui(ExperimentConfig(dataset="glyphs"))
    return app, DashboardScreen(app.config, recorded=open_run(run_dir))


def text(screen: DashboardScreen, key: str) -> str:
    panel = screen.panels[key]
    return str(panel.render())


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
        await pilot.press("right")
        await pilot.pause()
        assert "(2 of 4)" in text(screen, "features")
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
