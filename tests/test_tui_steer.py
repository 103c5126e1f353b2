"""`nntui --open` on a run a headless `nnlib train` is writing: the dashboard's steering keys
pause it, step it one batch, change its learning rate, resume, pace and stop it through the run's
command file, and say so; each change is an event recorded with source "remote"."""

from __future__ import annotations

from helpers import SIZE, TIMEOUT, headless_train, pilot_test, press, until

from nnlib import runs
from nnlib.states import RunStatus
from nntui.app import NNTui
from nntui.replay import open_run
from nntui.screens.dashboard import DashboardScreen
from nntui.widgets.status import StatusPanel


def _events(run_dir, kind: str) -> list[runs.Event]:
    return [e for e in runs.read(run_dir) if e.type == kind]


@pilot_test
async def test_the_dashboard_steers_a_headless_run_it_opened(tmp_path):
    run_dir = tmp_path / "run"
    with headless_train(run_dir) as process:
        recorded = open_run(run_dir)
        app = NNTui(recorded.experiment(), recorded=recorded)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: isinstance(app.screen, DashboardScreen), "the dashboard")
            dashboard = app.screen
            await until(pilot, lambda: dashboard.state.progress is not None, "a batch")

            await press(pilot, "space")
            await until(pilot, lambda: dashboard.state.status == RunStatus.PAUSED, "paused")
            (pause,) = _events(run_dir, "pause")
            assert pause["source"] == "remote"
            titles = {n.title for n in app._notifications}
            assert "Sent to the process writing this run" in titles  # and says so

            await press(pilot, "n")
            await until(
                pilot,
                lambda: _events(run_dir, "batch")[-1].step == pause.step + 1,
                "the stepped batch",
            )
            await press(pilot, "plus")  # lr 0.05 -> 0.1, applied before the next batch
            await until(pilot, lambda: dashboard.state.pending.get("lr") == 0.1, "the request")
            assert _events(run_dir, "batch")[-1].step == pause.step + 1  # one batch, parked

            await press(pilot, "space")
            await until(pilot, lambda: _events(run_dir, "hparam"), "the lr change")
            (hparam,) = _events(run_dir, "hparam")
            assert (hparam.step, hparam["new"], hparam["source"]) == (pause.step + 1, 0.1, "remote")
            assert _events(run_dir, "resume")[0]["source"] == "remote"

            assert "full speed" in str(dashboard.query_one(StatusPanel).render())  # headless
            await press(pilot, "less_than_sign")  # full speed -> 30 epochs a second
            await until(pilot, lambda: _events(run_dir, "pace"), "the pace event")
            (pace,) = _events(run_dir, "pace")
            assert (pace["old"], pace["new"], pace["source"]) == (None, 30.0, "remote")
            await until(pilot, lambda: dashboard.state.latest("pace") is not None, "it shown")
            assert "pace 30 ep/s" in str(dashboard.query_one(StatusPanel).render())

            await press(pilot, "s")
            assert process.wait(TIMEOUT) == 0
            await until(pilot, lambda: dashboard.state.end is not None, "the end event")
            assert dashboard.state.end.reason == "stopped"
            assert _events(run_dir, "stop")[0]["source"] == "remote"

            await press(pilot, "plus")  # the run has ended: the key says so (space plays it)
            messages = [n.message for n in app._notifications]
            assert messages[-1] == "the run has ended (stopped); it cannot be steered"
