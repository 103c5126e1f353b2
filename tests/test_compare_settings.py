"""Issue 20 item 4: compare the runs as they really ran. Real spirals runs whose settings are
changed mid-run (`RunControl.set` with a source, as the app and `nnlib control` do), one
setting per key however often config.json records it, and the compare screen at 80x24 and
120x40 with 6 runs: charts that keep their height, cells that fit, the changed lr with its
steps."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import DATASETS, pilot_test, press, screen_text, until
from hypothesis import given, settings
from hypothesis import strategies as st

from nnlib import runindex
from nnlib.callbacks import Callback
from nnlib.config import ExperimentConfig
from nnlib.experiment import setup
from nnlib.runindex import RUN_MARKERS, Change, Setting
from nntui.app import NNTui
from nntui.screens.compare import (
    MIN_CHART_ROWS,
    NUMBER_WIDTH,
    CompareCharts,
    CompareScreen,
    _with_delta,
)

LR_CHANGED = "0.05 → 0.1@20(app) → 0.025@50(remote)"
#: Run names as long as a sweep's: they leave the numbers little room at 80 columns.
LONG = "-spirals-2-16-3-seed-0"


class SetAt(Callback):
    """Changes settings at given steps, as a request from `source` does."""

    def __init__(self, changes: list[tuple[int, str, object, str]]) -> None:
        self.changes = changes

    def on_batch_end(self, trainer, batch, logs) -> None:
        for step, name, value, source in self.changes:
            if trainer.global_step == step:
                trainer.control.set(name, value, source=source)


def train(root: Path, name: str, changes=(), **config: object) -> Path:
    values = dict(
        dataset="spirals",
        arch="2-16-3",
        epochs=3,
        batch_size=64,
        lr=0.05,
        seed=0,
        checkpoint_every=22,
        run_dir=str(root / name),
    )
    setup(ExperimentConfig(**{**values, **config}), callbacks=[SetAt(list(changes))]).fit(threads=1)
    return root / name


@pytest.fixture(scope="module")
def six(tmp_path_factory) -> list[Path]:
    """6 runs: a baseline, lr changed twice, batch size changed, a fork of the baseline, a
    different momentum changed back, and one like the baseline."""
    root = tmp_path_factory.mktemp("six")
    base = train(root, f"baseline{LONG}")
    return [
        base,
        train(root, f"lr{LONG}", [(20, "lr", 0.1, "app"), (50, "lr", 0.025, "remote")]),
        train(root, f"batch{LONG}", [(10, "batch_size", 32, "app")]),
        train(root, f"fork{LONG}", parent_run=str(base), parent_step=22),
        train(root, f"momentum{LONG}", [(30, "momentum", 0.9, "script")], momentum=0.5),
        train(root, f"like-baseline{LONG}"),
    ]


def settings_of(path: Path) -> dict[str, Setting]:
    curves = runindex.read_curves(path)
    return runindex.effective_settings(runindex.config_of(path), curves.hparams)


def test_effective_settings_of_real_runs_give_each_setting_once_with_its_changes(six):
    base, lr, bs, fork, momentum, _ = map(settings_of, six)
    assert lr["lr"] == Setting(0.05, (Change(20, 0.1, "app"), Change(50, 0.025, "remote")))
    assert lr["lr"].text() == LR_CHANGED
    assert bs["batch_size"].start == 64
    assert [(c.value, c.source) for c in bs["batch_size"].changes] == [(32, "app")]
    assert momentum["momentum"] == Setting(0.5, (Change(30, 0.9, "script"),))
    assert base["lr"] == Setting(0.05) and base["optimizer"] == Setting("sgd")
    assert fork["parent_run"].start == str(six[0]) and fork["parent_step"].start == 22
    for settings_ in (base, lr, bs, fork, momentum):  # each setting once: no second record
        assert not [k for k in settings_ if k.startswith(("trainer.", "parent."))]
        assert "dataset_info.name" not in settings_ and "dataset_info.input_shape" not in settings_
    diff = runindex.settings_diff([base, lr, bs, fork, momentum])
    # lr starts at 0.05 everywhere: it differs by its changes, as batch_size and momentum do
    assert set(diff) == {"lr", "batch_size", "momentum", "parent_run", "parent_step"}
    assert runindex.settings_diff([base, settings_of(six[5])]) == {}


#: Numbers a metric takes (format_number writes a 3-digit exponent past its width).
METRIC = st.one_of(st.just(0.0), st.floats(1e-99, 1e6), st.floats(-1e6, -1e-99))


@given(METRIC, METRIC, st.sampled_from(["loss", "acc"]))
@settings(max_examples=200, deadline=None)
def test_a_metric_cell_is_never_longer_than_its_numbers_allow(value, base, short):
    """The cells that were cut to "+5.…": a difference is written to fit, as the value is."""
    if short == "acc":
        value, base = abs(value) % 1, abs(base) % 1
    cell = _with_delta(value, base, False, short).plain
    number, delta = cell.split(" ")
    assert len(number) <= NUMBER_WIDTH and len(delta) <= NUMBER_WIDTH + 3
    assert "…" not in cell and delta[0] in "+-±"
    if short == "loss" and value != base:
        assert delta[0] == ("+" if value > base else "-")


def app_with(paths: list[Path]) -> tuple[NNTui, CompareScreen]:
    return NNTui(ExperimentConfig(dataset="spirals"), datasets=DATASETS), CompareScreen(paths)


async def scroll_to(pilot, app, text: str) -> str:
    """Scroll the tables down (as a user does) until `text` shows; what the terminal shows."""
    app.screen.query_one("#tables").focus()
    for _ in range(40):
        if text in screen_text(app):
            break
        await press(pilot, "down")
    return screen_text(app)


def assert_numbers_whole(screen: CompareScreen, text: str) -> None:
    """Every cell of the metrics table shows whole (these were cut to "+5.…")."""
    lines = text.splitlines()
    for index, row in enumerate(screen.metric_cells()):
        marker = RUN_MARKERS[index]
        line = next(line for line in lines if line.startswith(f" {marker} "))
        at = 0
        for cell in row:  # each whole, in its column's order, none past the edge
            at = line.find(cell.plain, at)
            assert at >= 0, (cell.plain, line)
            at += len(cell.plain)


def test_the_settings_table_names_each_setting_once(six):
    from rich.console import Console

    console = Console(width=80, record=True, color_system=None)
    console.print(CompareScreen(six).diff_table())
    keys = [line.split()[0] for line in console.export_text().splitlines()[2:] if line[:1] != " "]
    assert keys == ["batch_size", "lr", "momentum", "parent_run", "parent_step"]


@pilot_test
async def test_compare_6_runs_at_80x24_pages_its_charts_and_fits_its_cells(six):
    app, screen = app_with(six)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.push_screen(screen)
        await until(pilot, lambda: app.screen is screen)
        charts = screen.query_one(CompareCharts)
        height = charts.content_size.height
        assert charts.shown(height) == ["loss"]  # two would get less than MIN_CHART_ROWS
        assert height >= MIN_CHART_ROWS + 1
        text = screen_text(app)
        assert "loss by step" in text and "accuracy by step" not in text
        assert_numbers_whole(screen, text)
        await press(pilot, "a")
        text = screen_text(app)
        assert "accuracy by step" in text and "loss by step" not in text
        shown = await scroll_to(pilot, app, LR_CHANGED)
        assert LR_CHANGED in shown


@pilot_test
async def test_compare_6_runs_at_120x40_shows_both_charts_and_every_change(six):
    app, screen = app_with(six)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.push_screen(screen)
        await until(pilot, lambda: app.screen is screen)
        charts = screen.query_one(CompareCharts)
        assert charts.shown(charts.content_size.height) == ["loss", "accuracy"]
        assert charts.content_size.height >= 2 * (MIN_CHART_ROWS + 1)
        text = screen_text(app)
        assert "loss by step" in text and "accuracy by step" in text
        assert_numbers_whole(screen, text)
        shown = await scroll_to(pilot, app, LR_CHANGED)
        assert LR_CHANGED in shown and "64 → 32@22(app)" in shown
