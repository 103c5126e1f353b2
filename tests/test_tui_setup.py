"""The setup screen shows the experiment the user asked for (flags, a config file, a load),
reads at 80x24, and every way to quit asks first while a run is in progress."""

from __future__ import annotations

from test_tui_app import SIZE, end_event, long_run, pilot_test, press, started, until

from nntui.app import NNTui
from nntui.screens.modals import ConfirmScreen


@pilot_test
async def test_the_palettes_quit_asks_during_a_run(tmp_path):
    app = NNTui(long_run(tmp_path), start=True)
    async with app.run_test(size=SIZE) as pilot:
        dashboard = await started(pilot)
        quit_command = next(c for c in app.get_system_commands(app.screen) if c.title == "Quit")
        app.call_next(quit_command.callback)
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await press(pilot, "n")
        await until(pilot, lambda: app.screen is dashboard)
        assert dashboard.running and not app._exit
        app.call_next(quit_command.callback)
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await press(pilot, "y")
        await until(pilot, lambda: app._exit)
    assert end_event(tmp_path)["reason"] == "stopped"
