"""The dashboard's run sources (nntui.sources): one door for requests. The edit dialog only
returns values; the dashboard sends them through the source's steer, so `e` steers a run
another process is writing (through its command file) as it steers a run trained here."""

from __future__ import annotations

import subprocess
import sys

from helpers import SIZE, TIMEOUT, headless_train, pilot_test, press, until
from textual.widgets import Input

from nnlib import runs
from nntui.app import NNTui
from nntui.replay import open_run
from nntui.screens.dashboard import DashboardScreen
from nntui.screens.modals import HparamScreen
from nntui.sources import FollowedRun, LiveRun, RunSource


def test_sources_import_no_textual():
    code = "import sys, nntui.sources; print(any(m.startswith('textual') for m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr


def test_a_fixed_replay_cannot_be_steered_and_offers_the_reported_values():
    source = RunSource()
    assert source.steer("pause") is None and source.worker is None
    shown = {"lr": 0.025, "base_lr": 0.05, "momentum": 0.9, "decay": 0.0, "batch_size": 16}
    assert source.editable(shown) == {"lr": 0.05, "momentum": 0.9, "batch_size": 16}


@pilot_test
async def test_e_edits_a_recorded_live_run_through_its_command_file(tmp_path):
    run_dir = tmp_path / "run"
    with headless_train(run_dir) as process:
        recorded = open_run(run_dir)
        app = NNTui(recorded.experiment(), recorded=recorded)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: isinstance(app.screen, DashboardScreen), "the dashboard")
            dashboard = app.screen
            assert isinstance(dashboard.source, FollowedRun)
            await until(pilot, lambda: dashboard.state.started is not None, "the run start")
            await press(pilot, "e")
            await until(pilot, lambda: isinstance(app.screen, HparamScreen), "the dialog")
            dialog = app.screen
            assert dialog.current["lr"] == 0.05  # as the run reported it
            dialog.query_one("#lr", Input).value = "0.2"
            await press(pilot, "enter")
            await until(pilot, lambda: app.screen is dashboard, "the dialog to close")
            await until(pilot, lambda: dashboard.state.pending.get("lr") == 0.2, "the answer")
            # Checked now: a notification expires after a few seconds, and waiting for the log
            # below can take that long on a busy machine (it failed about 1 time in 4 so).
            sent = "Sent to the process writing this run"
            await until(
                pilot, lambda: sent in {n.title for n in app._notifications}, "the notification"
            )
            await until(
                pilot,
                lambda: any(e["new"] == 0.2 for e in runs.read(run_dir) if e.type == "hparam"),
                "the change in the log",
            )
            (change,) = [e for e in runs.read(run_dir) if e.type == "hparam"]
            assert change["name"] == "lr" and change["source"] == "remote"
            await press(pilot, "s")
            await until(pilot, lambda: dashboard.state.end is not None, "the end")
        assert process.wait(TIMEOUT) is not None  # the stop reached the writer


def test_a_live_run_refuses_requests_until_fit_has_begun(tmp_path):
    from nnlib.config import ExperimentConfig

    source = LiveRun(ExperimentConfig(dataset="spirals", run_dir=str(tmp_path / "r")))
    assert source.steer("pause") is None and source.paused() is None  # not set up yet
    assert source.worker == "training" and not source.recorded
