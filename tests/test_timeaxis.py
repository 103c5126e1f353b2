"""The time axis's positions (nntui.timeaxis), without an app: where `,` `.` PgUp PgDn Home and
End take it on a run's history, what it shows there and says of it, and how a run that has
ended plays. The keys themselves are tested on the dashboard (tests/test_time_axis.py)."""

from __future__ import annotations

import pytest
from helpers import train
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nntui.history import PLAY_SPEEDS, History
from nntui.replay import open_run
from nntui.runstate import RunState
from nntui.stream import Notice, Update
from nntui.timeaxis import SCRUB_PAGE, TimeAxis


@pytest.fixture(scope="module")
def updates(tmp_path_factory) -> list[Update]:
    """A short spirals run as its log reads."""
    run_dir = tmp_path_factory.mktemp("timeaxis") / "run"
    train(run_dir, epochs=4)
    return open_run(run_dir).updates


def axis_of(updates: list[Update]) -> tuple[TimeAxis, RunState]:
    """A time axis over `updates`, and the live state they fold to."""
    history, live = History(RunState, every=16), RunState()
    for update in updates:
        history.record(update)
        live.apply(update)
    return TimeAxis(history), live


def test_with_nothing_recorded_every_move_says_so_and_the_axis_stays_at_now():
    axis = TimeAxis(History(RunState))
    assert axis.moved(-1) is None and axis.moved(1) is None
    assert axis.paged(-SCRUB_PAGE) is None and axis.first() is None
    axis.seek(0)
    assert axis.at is None and axis.step is None and axis.tick(0.1) is None
    assert axis.label(RunState(), playing=False) is None


def test_comma_steps_back_through_every_stop_and_full_stop_forward_to_now(updates):
    axis, _ = axis_of(updates)
    stops = axis.history.stops
    assert len(stops) > 10
    back = []
    while (position := axis.moved(-1)) != axis.at and len(back) <= len(stops):
        axis.seek(position)
        back.append(axis.at)
    assert back == stops[-2::-1]  # the last stop is now itself
    assert axis.moved(-1) == axis.first() == stops[0]  # held at the first
    forward = []
    while axis.at is not None and len(forward) <= len(stops):
        axis.seek(axis.moved(1))
        forward.append(axis.at)
    assert forward == [*stops[1:-1], None]  # on past the last stop but one: now


def test_a_page_is_a_tenth_of_the_stops_and_at_least_one(updates):
    axis, _ = axis_of(updates)
    stops = axis.history.stops
    page = max(round(len(stops) * SCRUB_PAGE), 1)
    axis.seek(axis.paged(-SCRUB_PAGE))
    assert axis.at == stops[-1 - page]
    axis.seek(axis.first())
    axis.seek(axis.paged(SCRUB_PAGE))
    assert axis.at == stops[page]
    short, _ = axis_of([Notice("note", step, "a line") for step in (1, 2, 3)])
    assert short.history.stops == [1, 2, 3]
    assert short.paged(-SCRUB_PAGE) == short.moved(-1) == 2


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(moves=st.lists(st.sampled_from(["comma", "full_stop", "pageup", "pagedown", "home"])))
def test_wherever_the_keys_take_it_the_axis_is_at_a_stop_or_now(updates, moves):
    axis, live = axis_of(updates)
    keys = {
        "comma": lambda: axis.moved(-1),
        "full_stop": lambda: axis.moved(1),
        "pageup": lambda: axis.paged(-SCRUB_PAGE),
        "pagedown": lambda: axis.paged(SCRUB_PAGE),
        "home": axis.first,
    }
    for move in moves:
        axis.seek(keys[move]())
        assert axis.at is None or axis.at in axis.history.stops[:-1]
        assert (axis.shown(live) is live) == (axis.at is None)


def test_what_it_shows_and_says_at_a_step(updates):
    axis, live = axis_of(updates)
    assert axis.shown(live) is live and axis.step is None
    position = axis.history.stops[len(axis.history.stops) // 2]
    axis.seek(position)
    shown = axis.shown(live)
    assert shown is not live and axis.step == axis.history.step_at(position)
    assert shown.progress is not None
    epoch = f"epoch {shown.progress.epoch + 1}"
    assert axis.label(shown, playing=False) == f"at step {axis.step} ({epoch})"
    assert axis.label(shown, playing=True) == f"at step {axis.step} ({epoch}) ▶ ×1"


def test_a_play_moves_on_by_its_speed_until_now_and_keeps_the_speed_for_the_next(updates):
    axis, _ = axis_of(updates)
    assert axis.change_speed(1).startswith("play speed ×2: the whole run in")
    axis.seek(axis.first())
    axis.play()  # a new play at the last one's speed, over the stops there are now
    assert axis.player.speed == 2.0 and axis.player.stops == len(axis.history.stops)
    ticks = 0
    while (count := axis.tick(0.1)) is not None and ticks <= len(axis.history.stops):
        axis.seek(axis.moved(count) if count else axis.at)
        ticks += 1
    assert axis.at is None and 0 < ticks < len(axis.history.stops)
    while axis.player.speed != PLAY_SPEEDS[-1]:
        axis.change_speed(1)
    assert axis.change_speed(1).startswith("already the fastest: ×8")
    axis.player.speed = PLAY_SPEEDS[0]
    assert axis.change_speed(-1).startswith("already the slowest: ×0.25")


def test_a_position_past_the_history_is_now():
    axis, _ = axis_of([Notice("note", step, "a line") for step in (1, 1, 2)])
    axis.seek(1)
    assert axis.at == 1 and axis.step == 1
    axis.seek(len(axis.history))
    assert axis.at is None
    axis.seek(1)
    axis.seek(len(axis.history) + 1)
    assert axis.at is None
