"""Watching a run learn in the app (issue 19 item 1): a 2-D run starts at a pace a person can
follow, `<` and `>` step it between one epoch a second and full speed (shown in the status
line at once, recorded in the run log), and a run can start parked at step 0 (`nntui
--start-paused`, or the setup screen's switch) so that its first batch is stepped with `n`."""

from __future__ import annotations

from helpers import SIZE, long_run, pilot_test, press, until
from textual.widgets import Checkbox

from nnlib import runs
from nntui import cli
from nntui.app import NNTui
from nntui.pace import PACE_STEPS, next_pace
from nntui.screens.dashboard import DashboardScreen
from nntui.screens.setup import SetupScreen
from nntui.sources import WATCH_PACE
from nntui.widgets.arch_editor import ArchEditor
from nntui.widgets.status import StatusPanel


def test_lt_and_gt_step_between_the_paces_from_any_pace_and_stop_at_either_end():
    """From a pace on the ladder its neighbour; from one between two (`nnlib control` can
    set any), the nearest on the side asked for; full speed (None) is the fastest."""
    assert [next_pace(pace, 1) for pace in PACE_STEPS] == [1, 2, 3, 4, 5, None]
    assert [next_pace(pace, -1) for pace in PACE_STEPS] == [None, 0, 1, 2, 3, 4]
    assert next_pace(3.0, 1) == PACE_STEPS.index(5.0)
    assert next_pace(3.0, -1) == PACE_STEPS.index(2.0)
    assert next_pace(0.5, 1) == 0 and next_pace(100.0, -1) == PACE_STEPS.index(30.0)


def _status(dashboard: DashboardScreen) -> str:
    return str(dashboard.query_one(StatusPanel).render())


async def _dashboard(pilot) -> DashboardScreen:
    """The dashboard once its run has begun (RunStarted shown; it may be parked at step 0)."""
    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, DashboardScreen), "the dashboard")
    dashboard = app.screen
    await until(pilot, lambda: dashboard.state.started is not None, "the run's start")
    return dashboard


@pilot_test
async def test_less_and_greater_step_the_pace_and_the_status_line_shows_it(tmp_path):
    app = NNTui(long_run(tmp_path), start=True)
    async with app.run_test(size=SIZE) as pilot:
        dashboard = await _dashboard(pilot)
        control = dashboard.experiment.trainer.control
        # spirals: the app's watching pace, from the first batch
        await until(pilot, lambda: f"pace {WATCH_PACE:g} ep/s" in _status(dashboard))
        assert control.pace == WATCH_PACE
        for expected in (5.0, 10.0, 30.0):
            await press(pilot, "greater_than_sign")
            assert control.pace == expected  # asked of the run at once...
            assert f"pace {expected:g} ep/s" in _status(dashboard)  # ...and shown at once
        await press(pilot, "greater_than_sign")
        assert control.pace is None and "full speed" in _status(dashboard)
        await press(pilot, "greater_than_sign")  # the fastest already: nothing changes
        assert control.pace is None
        await press(pilot, "less_than_sign", "less_than_sign", "less_than_sign")
        assert control.pace == 5.0 and "pace 5 ep/s" in _status(dashboard)
        await press(pilot, "less_than_sign", "less_than_sign", "less_than_sign")
        assert control.pace == PACE_STEPS[0] == 1.0  # the slowest, however often pressed
        await until(pilot, lambda: dashboard.state.latest("pace").new == 1.0, "the pace event")
        assert "pace 1 ep/s" in _status(dashboard)
        await press(pilot, "s")
        await until(pilot, lambda: dashboard.state.end is not None)
    paces = [e for e in runs.read(tmp_path / "run") if e.type == "pace"]
    assert paces[0]["old"] is None and paces[0]["new"] == WATCH_PACE and paces[0].step == 0
    assert paces[-1]["new"] == 1.0 and {e["source"] for e in paces} == {"app"}


@pilot_test
async def test_start_paused_parks_at_step_0_and_n_steps_the_first_batch(tmp_path):
    app = NNTui(long_run(tmp_path), start=True, start_paused=True)
    async with app.run_test(size=SIZE) as pilot:
        dashboard = await _dashboard(pilot)
        trainer = dashboard.experiment.trainer
        await until(pilot, lambda: dashboard.state.status == "paused", "the park at step 0")
        assert trainer.wait_until_parked(timeout=0) and trainer.global_step == 0
        await until(pilot, lambda: f"pace {WATCH_PACE:g} ep/s" in _status(dashboard))
        assert "PAUSED" in _status(dashboard)
        await press(pilot, "n")
        await until(pilot, lambda: trainer.global_step == 1 and trainer.wait_until_parked(0))

        def step_one_shown() -> bool:  # the park can come before the app folds the step's record
            return getattr(dashboard.state.progress, "step", None) == 1

        await until(pilot, step_one_shown, "step 1 shown")
        assert dashboard.state.status == "paused"
        await press(pilot, "space")
        await until(pilot, lambda: trainer.global_step > 3, "the run going on")
        await press(pilot, "s")
        await until(pilot, lambda: dashboard.state.end is not None)
    pause = next(e for e in runs.read(tmp_path / "run") if e.type == "pause")
    assert pause.step == 0 and pause["source"] == "app"


@pilot_test
async def test_the_setup_screens_switch_starts_the_run_paused(tmp_path):
    app = NNTui(long_run(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, SetupScreen))
        setup = app.screen
        await until(pilot, lambda: setup.query_one(ArchEditor).valid)
        switch = setup.query_one("#start-paused", Checkbox)
        assert switch.value is False
        switch.focus()
        await press(pilot, "enter")
        assert switch.value is True
        await press(pilot, "t")
        dashboard = await _dashboard(pilot)
        trainer = dashboard.experiment.trainer
        await until(pilot, lambda: trainer.wait_until_parked(timeout=0), "the park")
        assert trainer.global_step == 0
        await press(pilot, "s")
        await until(pilot, lambda: dashboard.state.end is not None)


def test_nntui_start_paused_starts_the_run_paused(monkeypatch):
    made: list[NNTui] = []
    monkeypatch.setattr(NNTui, "run", lambda self, *args, **kwargs: made.append(self))
    assert cli.main(["--dataset", "spirals", "--start-paused"]) == 0
    (app,) = made
    assert app.start and app.start_paused
    assert cli.main(["--dataset", "spirals"]) == 0
    assert not made[1].start_paused
