"""The dashboard's run sources (nntui.sources): one door for requests. The edit dialog only
returns values; the dashboard sends them through the source's steer, so `e` steers a run
another process is writing (through its command file) as it steers a run trained here."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import SIZE, TIMEOUT, headless_train, pilot_test, press, until
from textual.widgets import Input

from nnlib import runs
from nntui.app import NNTui
from nntui.replay import open_run
from nntui.screens.dashboard import DashboardScreen
from nntui.screens.modals import HparamScreen
from nntui.sources import FollowedRun, LiveRun, Refused, RunSource


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
            # Pending until the change is logged (the log may bring it before the answer).
            await until(
                pilot,
                lambda: (
                    dashboard.state.pending.get("lr") == 0.2
                    or any(m.new == 0.2 for m in dashboard.state.marks)
                ),
                "the answer",
            )
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


# -- the door for everything else: views on demand, saving, forking (no Textual) -------------
def test_a_run_without_a_model_here_refuses_views_saving_and_forks_with_a_reason(tmp_path):
    from nnlib.callbacks.testset import TestEvaluator

    source = RunSource()
    for ask in (
        lambda: source.ask(TestEvaluator, "test results"),
        source.model_file,
        source.forkable,
        lambda: source.fork({"lr": 0.1}),
        lambda: source.fork_before({"before": 9, "name": "lr", "value": 0.1}),
    ):
        with pytest.raises(Refused) as refused:
            ask()
        assert str(refused.value) in (
            "a recorded run shows what was recorded",
            "there is no model yet",
            "there is no run to fork yet",
        )


def test_a_live_run_serves_views_saves_and_forks_through_its_source(tmp_path):
    """What the dashboard's keys ask (T, w, f, A) goes through the source: a run here asks
    its trainer's callbacks, saves and checkpoints only while its weights hold still."""
    from nnlib.callbacks.testset import TestEvaluator
    from nnlib.callbacks.tracer import Tracer
    from nnlib.config import ExperimentConfig

    source = LiveRun(
        ExperimentConfig(dataset="spirals", epochs=100, seed=0, run_dir=str(tmp_path / "r")),
        start_paused=True,
    )
    posted: list = []
    with pytest.raises(Refused, match="still loading the dataset"):
        source.ask(TestEvaluator, "test results")
    worker = threading.Thread(target=source.run, args=(posted.append,), daemon=True)
    worker.start()
    try:
        assert until_true(lambda: source.trainer is not None and source.trainer.paused)
        assert source.trainer.wait_until_parked(TIMEOUT)
        # parked before its first batch: a trace is made at once, a test at the next batch
        assert source.ask(Tracer, "a trace", index=0) is None
        assert source.ask(TestEvaluator, "test results") == (
            "test results at the next batch (paused: press n to run one batch)"
        )
        written = source.save_model(tmp_path / "m.npz")
        assert written == tmp_path / "m.npz" and written.is_file()
        assert source.model_file() == tmp_path / "r" / "model.npz"
        fork = source.fork({"lr": 0.01, "beta1": 0.5})  # (a field the config lacks is kept)
        assert fork.config.lr == 0.01 and fork.config.parent_run == str(tmp_path / "r")
        assert fork.config.parent_step == 0
        with pytest.raises(Refused, match="no checkpoint before step 0 to fork from"):
            source.fork_before({"before": 0, "name": "lr", "value": 0.01})
        source.steer("resume")
        assert until_true(lambda: not source.trainer.wait_until_parked(0))
        with pytest.raises(Refused, match="pause .* first"):
            source.save_model(tmp_path / "n.npz")
    finally:
        source.stop()
        worker.join(TIMEOUT)
    assert not (tmp_path / "n.npz").exists()


def test_a_recorded_runs_warning_fork_is_the_command_that_makes_it(tmp_path):
    """The model is in another process: A says the nnlib train --fork command instead."""
    from nnlib import checkpointing

    run_dir = tmp_path / "run"
    folder = run_dir / checkpointing.FOLDER
    folder.mkdir(parents=True)
    for step in (10, 20, 30):
        checkpointing.step_file(folder, step).write_bytes(b"")
    (run_dir / runs.EVENTS_FILE).write_text("")
    source = FollowedRun(open_run(run_dir))
    with pytest.raises(Refused) as refused:
        source.fork_before({"before": 25, "name": "weight_decay", "value": 0.001})
    assert str(refused.value).endswith(f"nnlib train --fork {run_dir}@20 --weight-decay 0.001")


def test_the_dashboard_keeps_no_business_of_its_own():
    """The screen shows and forwards: no checkpoint written, no callback looked up, no
    trainer waited on from it (each is the source's, behind one door)."""
    text = Path(__file__).parents[1].joinpath("nntui", "screens", "dashboard.py").read_text()
    for business in ("checkpointing", "trainer.callbacks", "wait_until_parked", ".model.save"):
        assert business not in text, business


def until_true(condition, seconds: float = TIMEOUT) -> bool:
    """Wait for `condition` (a training thread's progress), at most `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
