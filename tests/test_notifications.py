"""What the dashboard pops up for an update and how soon it draws it (nntui.widgets.
notifications), without an app; the dashboard passes these on as they are
(tests/test_tui_app.py, tests/test_tui_recorded.py see them on screen)."""

from __future__ import annotations

import pytest

from nnlib import events
from nnlib.states import RunStatus
from nntui.runstate import RunState
from nntui.stream import Batches, Notice, Rewound, RunStarted
from nntui.widgets.notifications import Notification, notification, redraw_for

STARTED = RunStarted(
    run_dir="runs/[bold]x",
    task="classification",
    arch="2-16-3",
    params=99,
    epochs=3,
    class_names=("a", "b", "c"),
    layers=("dense_1",),
    hyperparameters=(("lr", 0.1),),
    input_shape=(2,),
)


def started() -> RunState:
    state = RunState()
    state.apply(STARTED)
    return state


@pytest.mark.parametrize(
    ("update", "recorded", "expected"),
    [
        (
            events.End(step=9, reason="error", error="boom [red]"),
            False,
            Notification("boom [red]", "Training failed", "error", 10),
        ),
        (
            events.End(step=9, reason="finished"),
            False,
            Notification("finished; run written to runs/[bold]x", "Run ended"),
        ),
        (
            events.End(step=9, reason="finished"),
            True,
            Notification("finished at step 9; read from runs/[bold]x", "Recorded run"),
        ),
        (
            Rewound(4),
            True,
            Notification("resumed from step 4: shown again as its log now reads", "Recorded run"),
        ),
        (
            events.Diverged(step=5, loss=None),
            False,
            Notification(events.Diverged(step=5, loss=None).describe(), severity="error"),
        ),
        (Notice("error", 3, "no [b]file"), False, Notification("no [b]file", severity="error")),
        (
            Notice("note", 0, "read 5 rows"),
            False,
            Notification("read 5 rows", "Dataset", "warning", 10),
        ),
        (Notice("waiting", 0, "waiting for the run"), True, None),
        (events.Epoch(step=43, epoch=0, loss=1.0), False, None),
        (STARTED, False, None),
    ],
)
def test_each_update_pops_up_its_own_notification_or_none(update, recorded, expected):
    """The text comes as written (the screen shows it without markup)."""
    assert notification(update, started(), recorded) == expected


def test_an_end_before_the_start_names_no_folder():
    said = notification(events.End(step=0, reason="stopped"), RunState(), recorded=False)
    assert said == Notification("stopped", "Run ended")


def test_the_start_end_and_anything_while_paused_redraw_every_panel_at_once():
    state = started()
    batches = Batches(())
    hparam = events.Hparam(step=3, name="lr", old=0.1, new=0.2)
    assert redraw_for(STARTED, state) == "all"
    assert redraw_for(Rewound(3), state) == "all"
    assert redraw_for(events.End(step=9, reason="stopped"), state) == "all"
    assert redraw_for(batches, state) == "timer"
    assert redraw_for(events.Epoch(step=43, epoch=0, loss=1.0), state) == "timer"
    assert redraw_for(hparam, state) == "status"
    assert redraw_for(Notice("note", 0, "a note"), state) == "status"
    state.mark_status(RunStatus.PAUSED)
    assert redraw_for(batches, state) == "all"
