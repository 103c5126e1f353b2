"""Issue 17 item 17: an epoch's end shows in the status line at the redraw that shows it in the
Log and the matrix (the status line took a redraw at most once a second, so it ran up to a
second, several short epochs, behind them)."""

from __future__ import annotations

import dataclasses

from helpers import DATASETS, classification_run, config, pilot_test, screen_text

from nnlib import events
from nntui.app import NNTui
from nntui.screens.dashboard import REDRAW_SECONDS, DashboardScreen


@pilot_test
async def test_one_redraw_after_an_epoch_ends_the_status_log_and_matrix_agree():
    run = classification_run()
    ends = [i for i, s in enumerate(run) if isinstance(s, events.Epoch)]
    matrix = next(s for s in run if isinstance(s, events.Confusion))

    def matrix_of(end: events.Epoch) -> events.Confusion:
        return dataclasses.replace(matrix, epoch=end.epoch, step=end.step)

    shown = [*run[: ends[2] + 1], matrix_of(run[ends[2]])]  # epochs 1-3
    arriving = [*run[ends[2] + 1 : ends[3] + 1], matrix_of(run[ends[3]])]  # epoch 4, as live
    app = NNTui(config(), datasets=DATASETS)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = DashboardScreen(config(), replay=shown)
        await app.push_screen(screen)
        await pilot.pause()
        before = screen_text(app)
        assert "epoch 3: loss" in before and "validation, epoch 3" in before
        assert "│ epoch 3 loss" in before
        for snapshot in arriving:
            screen.apply(snapshot)
        # the redraw timer's next tick (a tick's worth after the latest redraw)
        tick = max(panel._last_redraw for panel in screen._state_panels) + REDRAW_SECONDS
        for panel in screen._state_panels:
            panel.offer_redraw(tick)
        await pilot.pause()
        after = screen_text(app)
        assert "epoch 4: loss" in after  # the Log
        assert "validation, epoch 4" in after  # the matrix
        assert "│ epoch 4 loss" in after and "epoch 4/20" in after  # the status line
