"""The dashboard's time axis (`,` `.` PgUp PgDn Home End): scrubbed to a step, every panel
shows what a run stopped at that step shows, for a recorded run and a live one, and End
returns to now."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import IMAGES, long_run, pilot_test, press, started, train, until

from nnlib import events, runs
from nnlib.events import End
from nntui.app import NNTui
from nntui.history import PLAY_SPAN
from nntui.replay import open_run
from nntui.screens.dashboard import PLAY_SECONDS, DashboardScreen
from nntui.widgets.eventlog import EventLog
from nntui.widgets.panel import StatePanel

#: Per kind of run: its changes to helpers.train's spirals run, and the panels it has besides
#: the curves and the status (which say where it is), by their keys.
RUNS = {
    "spirals": ({}, {"2": "layers", "3": "confusion", "5": "boundary"}),
    "images": (IMAGES, {"2": "layers", "3": "confusion", "6": "samples", "7": "features"}),
}


def cut(run_dir: Path, step: int, into: Path) -> Path:
    """A copy of the run whose log ends after `step`, as if it had stopped there (its other
    files, the samples and the feature maps' side file, as they are)."""
    into.mkdir()
    for path in run_dir.iterdir():
        if path.is_file() and path.name != runs.EVENTS_FILE:
            (into / path.name).write_bytes(path.read_bytes())
    lines = (run_dir / runs.EVENTS_FILE).read_text().splitlines(keepends=True)
    decoder = events.Decoder()  # a compact batch line's step follows from the line before
    kept = [line for line in lines if decoder.decode(line).step <= step]
    (into / runs.EVENTS_FILE).write_text("".join(kept))
    return into


async def pictures(pilot, dashboard: DashboardScreen, compared: dict[str, str]) -> dict[str, str]:
    """What each compared panel (its text and colours) and the log show now."""
    shown = {}
    for key, name in compared.items():
        await press(pilot, key)
        panel = dashboard.panels[name]
        assert isinstance(panel, StatePanel)
        await until(pilot, lambda panel=panel: panel.content_size.width > 0, f"{name} shown")
        shown[name] = panel.render().markup
    await press(pilot, "4")
    log = dashboard.query_one(EventLog)
    await until(pilot, lambda: log.lines, "the log's lines")
    # (The app's note that it follows a run still being written is not the run's history.)
    lines = [str(line) for line in log.shown]
    shown["log"] = "\n".join(line for line in lines if "following the run log" not in line)
    return shown


async def opened(pilot, app) -> DashboardScreen:
    await until(pilot, lambda: isinstance(app.screen, DashboardScreen), "the dashboard")
    dashboard = app.screen
    await until(pilot, lambda: dashboard.state.end is not None or dashboard.state.epochs, "data")
    return dashboard


@pytest.mark.parametrize("kind", RUNS)
@pilot_test
async def test_a_recorded_run_scrubbed_to_a_step_shows_that_run_cut_there(tmp_path, kind):
    """Every panel at a step of the time axis, Samples and Features (their pictures and
    captions) included, is what the run cut there shows."""
    changes, compared = RUNS[kind]
    run_dir = tmp_path / "run"
    train(run_dir, epochs=6, **changes)
    epochs = [e for e in runs.read(run_dir) if e.type == "epoch"]
    step = epochs[2].step  # the end of the third epoch
    # The copy's folder name is as long as the run's: the log wraps its path alike.
    recorded = open_run(cut(run_dir, step, tmp_path / "cop"))
    # The copy has no end line: a run that stopped there, not one that crashed.
    recorded.updates = [s for s in recorded.updates if not isinstance(s, End)]
    app = NNTui(recorded.experiment(), recorded=recorded)
    async with app.run_test(size=(120, 40)) as pilot:
        expected = await pictures(pilot, await opened(pilot, app), compared)
    expected["log"] = expected["log"].replace(str(tmp_path / "cop"), str(run_dir))

    full = open_run(run_dir)
    app = NNTui(full.experiment(), recorded=full)
    async with app.run_test(size=(120, 40)) as pilot:
        dashboard = await opened(pilot, app)
        now = await pictures(pilot, dashboard, compared)
        assert all(now[name] != expected[name] for name in compared.values())
        await press(pilot, "home")
        axis = dashboard.screen_state.axis
        assert axis.at is not None
        while axis.step < step:
            await press(pilot, "full_stop")
        assert axis.step == step
        got = await pictures(pilot, dashboard, compared)
        assert got == expected
        status = str(dashboard._status.render())
        assert f"at step {step} (epoch 3)" in status and "End: live" in status
        # The curves draw the whole run with a cursor at the step.
        assert dashboard._curves.cursor == step
        await press(pilot, "end")
        assert axis.at is None and dashboard._curves.cursor is None
        assert await pictures(pilot, dashboard, compared) == now


@pilot_test
async def test_space_plays_an_ended_runs_history_to_its_end(tmp_path):
    run_dir = tmp_path / "run"
    train(run_dir, epochs=3)
    recorded = open_run(run_dir)
    app = NNTui(recorded.experiment(), recorded=recorded)
    async with app.run_test(size=(80, 24)) as pilot:
        dashboard = await opened(pilot, app)
        await press(pilot, "space")
        axis = dashboard.screen_state.axis
        assert axis.at == axis.history.stops[0]
        seen = set()
        await until(
            pilot,
            lambda: seen.add(axis.at) or axis.at is None,
            "the history played to its end",
        )
        assert len(seen) > 3  # it went through the steps, not straight to the end


async def played(pilot, dashboard: DashboardScreen) -> int:
    """Space, then the play timer's ticks one by one (the test moves it on, not the clock):
    how many it takes to reach the end."""
    await press(pilot, "space")
    own = dashboard.screen_state
    assert own.playing is not None
    own.playing.pause()
    ticks = 0
    while own.playing is not None:
        dashboard._play_step()
        ticks += 1
        assert ticks < 1000, "the history did not play to its end"
    assert own.axis.at is None
    return ticks


@pilot_test
async def test_a_long_history_plays_in_about_20_seconds_and_lt_gt_change_its_speed(tmp_path):
    """Space on a 40-epoch run (250 steps where a view changed): about 20 s of play at ×1 (a
    step a tick, as before, took 25 s; a 1,000-epoch run minutes), 10 s after `>`, 40 s
    after `<` `<`; the status line says the speed while it plays."""
    run_dir = tmp_path / "run"
    train(run_dir, epochs=40)
    recorded = open_run(run_dir)
    app = NNTui(recorded.experiment(), recorded=recorded)
    async with app.run_test(size=(80, 24)) as pilot:
        dashboard = await opened(pilot, app)
        own = dashboard.screen_state
        assert len(own.axis.history.stops) >= 2 * PLAY_SPAN / PLAY_SECONDS * 0.5
        assert 19 <= await played(pilot, dashboard) * PLAY_SECONDS <= 21
        await press(pilot, "greater_than_sign")
        assert 9.5 <= await played(pilot, dashboard) * PLAY_SECONDS <= 10.5
        await press(pilot, "less_than_sign", "less_than_sign", "space")
        own.playing.pause()
        dashboard._play_step()
        assert "▶ ×0.5" in str(dashboard._status.render())
        await press(pilot, "space")  # stops where it is
        assert own.playing is None and own.axis.at is not None
        await press(pilot, "end")
        assert 38 <= await played(pilot, dashboard) * PLAY_SECONDS <= 42


@pilot_test
async def test_a_live_run_scrubbed_back_trains_on_and_end_returns_to_it(tmp_path):
    app = NNTui(long_run(tmp_path), start=True)
    async with app.run_test(size=(80, 24)) as pilot:
        dashboard = await started(pilot)
        trainer = dashboard.experiment.trainer
        await until(pilot, lambda: len(dashboard.state.epochs) >= 2, "two epochs")
        await press(pilot, "home")
        axis = dashboard.screen_state.axis
        assert axis.at is not None
        held = axis.at
        shown = dashboard._status.state
        assert shown is not dashboard.state
        step = trainer.global_step
        await until(pilot, lambda: trainer.global_step > step + 20, "training going on")
        dashboard._tick()
        assert axis.at == held and dashboard._status.state is shown
        assert len(axis.history) > held
        await press(pilot, "end")
        assert axis.at is None and dashboard._status.state is dashboard.state
        assert dashboard.state.status == "running"
