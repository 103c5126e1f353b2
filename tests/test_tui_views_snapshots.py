"""SVG snapshots of the Samples, Features and Trace panels: the synthetic run of the other
dashboard snapshots plus the samples, feature_maps, test and trace events of a real, seeded
LeNet-5 run on glyphs, its samples file placed where the synthetic run's directory says."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import LENET, classification_run, config

from nnlib import runs
from nnlib.callbacks.base import Callback
from nnlib.callbacks.samples import FILE
from nnlib.callbacks.tracer import Tracer
from nnlib.config import ExperimentConfig
from nnlib.experiment import setup
from nntui.app import NNTui
from nntui.screens.dashboard import DashboardScreen
from nntui.stream import RunStarted

VIEWS = ("samples", "feature_maps", "test", "trace")


class StepTraced(Callback):
    """After the first epoch, ask for a trace of validation sample 2 after the next step."""

    def on_epoch_end(self, trainer, epoch, logs) -> None:
        if epoch == 0:
            next(c for c in trainer.callbacks if isinstance(c, Tracer)).request(2, update=True)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> tuple[Path, list]:
    run_dir = tmp_path_factory.mktemp("views-snap") / "run"
    setup(
        ExperimentConfig(dataset="glyphs", epochs=2, subset=1000, seed=0, run_dir=str(run_dir)),
        callbacks=[StepTraced()],
    ).fit()
    return run_dir, [e for e in runs.read(run_dir) if e.type in VIEWS]


@pytest.fixture
def app(recorded, tmp_path, monkeypatch):
    run_dir, views = recorded
    snapshots = classification_run()
    started = snapshots[0]
    assert isinstance(started, RunStarted)
    snapshots[0] = RunStarted(**{**started.__dict__, "input_shape": (28, 28, 1)})
    monkeypatch.chdir(tmp_path)  # the synthetic run's directory is relative
    (tmp_path / started.run_dir).mkdir(parents=True)
    shutil.copy(run_dir / FILE, tmp_path / started.run_dir / FILE)
    nntui = NNTui(config(dataset="glyphs", arch=LENET))

    async def show(pilot) -> None:
        await pilot.app.push_screen(DashboardScreen(nntui.config, replay=snapshots + views))
        await pilot.pause()

    return nntui, show


def test_samples_misclassified_80x24(app, snap_compare):
    nntui, show = app
    assert snap_compare(nntui, terminal_size=(80, 24), run_before=show, press=["6", "x"])


def test_samples_120x40(app, snap_compare):
    nntui, show = app
    assert snap_compare(nntui, terminal_size=(120, 40), run_before=show, press=["6", "c"])


def test_features_80x24(app, snap_compare):
    nntui, show = app
    assert snap_compare(nntui, terminal_size=(80, 24), run_before=show, press=["7", "pagedown"])


def test_matrix_on_the_test_split_120x40(app, snap_compare):
    nntui, show = app
    assert snap_compare(nntui, terminal_size=(120, 40), run_before=show, press=["3", "t", "down"])


def test_trace_after_a_step_80x24(app, snap_compare):
    """LeNet-5's conv layers summarised with heat strips; the step's update, scrolled to."""
    nntui, show = app
    assert snap_compare(nntui, terminal_size=(80, 24), run_before=show, press=["8"])


def test_a_large_feature_map_80x24(app, snap_compare):
    """conv_1's second channel opened large: 28x28 pixels as 28 columns by 14 lines."""
    nntui, show = app
    assert snap_compare(
        nntui, terminal_size=(80, 24), run_before=show, press=["7", "down", "right", "enter"]
    )
