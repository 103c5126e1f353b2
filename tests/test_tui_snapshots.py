"""SVG snapshots of the setup screen and the dashboard at 80x24 and 120x40.

The dashboard is fed a fixed, synthetic sequence of bridge snapshots (no training, no clock:
ETA and samples/s come from the snapshots), and the dataset listing is pinned, so the images
are the same on every machine. Update with `pytest tests/test_tui_snapshots.py
--snapshot-update` and look at the SVGs before committing them.
"""

from __future__ import annotations

from helpers import DATASETS, LENET, classification_run, config
from textual.pilot import Pilot

from nntui.app import NNTui
from nntui.screens.dashboard import DashboardScreen
from nntui.widgets.arch_editor import ArchEditor


def setup_app() -> NNTui:
    return NNTui(config(), datasets=DATASETS)


async def summary_shown(pilot: Pilot) -> None:
    editor = pilot.app.screen.query_one(ArchEditor)
    for _ in range(100_000):
        if editor.valid:
            break
        await pilot.pause(0)
    await pilot.pause()


def dashboard_app(regression: bool = False) -> tuple[NNTui, object]:
    app = NNTui(
        config(
            dataset="sine" if regression else "glyphs",
            arch="1-32-32-1:tanh" if regression else LENET,
        ),
        datasets=DATASETS,
    )

    async def show(pilot: Pilot) -> None:
        await pilot.app.push_screen(
            DashboardScreen(app.config, replay=classification_run(regression))
        )
        await pilot.pause()

    return app, show


def test_setup_80x24(snap_compare):
    assert snap_compare(setup_app(), terminal_size=(80, 24), run_before=summary_shown)


def test_setup_120x40(snap_compare):
    assert snap_compare(setup_app(), terminal_size=(120, 40), run_before=summary_shown)


def test_dashboard_curves_80x24(snap_compare):
    app, show = dashboard_app()
    assert snap_compare(app, terminal_size=(80, 24), run_before=show)


def test_dashboard_layers_80x24(snap_compare):
    app, show = dashboard_app()
    assert snap_compare(app, terminal_size=(80, 24), run_before=show, press=["2", "]"])


def test_dashboard_matrix_80x24(snap_compare):
    app, show = dashboard_app()
    assert snap_compare(app, terminal_size=(80, 24), run_before=show, press=["3"])


def test_dashboard_120x40(snap_compare):
    app, show = dashboard_app()
    assert snap_compare(app, terminal_size=(120, 40), run_before=show, press=["l"])


def test_dashboard_regression_80x24(snap_compare):
    app, show = dashboard_app(regression=True)
    assert snap_compare(app, terminal_size=(80, 24), run_before=show, press=["3"])


def test_too_small(snap_compare):
    assert snap_compare(setup_app(), terminal_size=(40, 10))
