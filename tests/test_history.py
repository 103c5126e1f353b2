"""The time axis (nntui.history): the state it gives at any position is the fold of the run's
records up to there, whichever saved state it starts from, and its stops are the steps a
run stopped there would have shown."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import train
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nntui.history import PLAY_SPEEDS, History, Player
from nntui.replay import open_run
from nntui.runstate import RunState
from nntui.stream import Batches, Rewound, Update


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory) -> list[Update]:
    """A short spirals run as its log reads, with histograms, boundaries and a checkpoint."""
    run_dir = tmp_path_factory.mktemp("history") / "run"
    train(run_dir, epochs=4)
    return open_run(run_dir).updates


def fold(snapshots: list[Update]) -> RunState:
    state = RunState()
    for snapshot in snapshots:
        state.apply(snapshot)
    return state


def content(state: RunState) -> dict:
    """Everything a panel draws from (the version counter aside)."""
    return {
        "status": state.status,
        "started": state.started,
        "progress": state.progress,
        "in_force": state.in_force,
        "epochs": state.epochs,
        "marks": state.marks,
        "confusion": state.confusion,
        "events": state.events,
        "counts": state.counts,
        "end": state.end,
        "pace": state.pace,
        "histograms": state.histograms,
        "layers": {
            name: (h.latest, h.weights.columns, h.grads.columns) for name, h in state.layers.items()
        },
    }


def same(first: RunState, second: RunState) -> bool:
    batches = zip(first.batches.columns, second.batches.columns, strict=True)
    return content(first) == content(second) and all(
        np.array_equal(a, b, equal_nan=True) for a, b in batches
    )


def history_of(snapshots: list[Update], every: int) -> History:
    history = History(RunState, every=every)
    for snapshot in snapshots:
        history.record(snapshot)
    return history


def test_the_run_has_what_a_scrub_shows(snapshots):
    kinds = {type(s).__name__ for s in snapshots}
    assert {"Histograms", "Epoch", "Batches"} <= kinds
    assert any(getattr(s, "type", "") == "boundary" for s in snapshots)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), every=st.integers(1, 9))
def test_the_state_at_a_position_is_the_fold_of_the_records_before_it(snapshots, data, every):
    cut = data.draw(st.integers(0, len(snapshots)), label="snapshots recorded")
    history = history_of(snapshots[:cut], every)
    # Joining consecutive Batches folds as the updates did.
    assert same(history.state_at(len(history)), fold(snapshots[:cut]))
    n = data.draw(st.integers(0, len(history)), label="position")
    assert same(history.state_at(n), fold(history.records[:n]))


def test_a_state_given_is_its_own(snapshots):
    history = history_of(snapshots, every=4)
    middle = len(history) // 2
    shown = history.state_at(middle)
    shown.apply(snapshots[-1])
    assert same(history.state_at(middle), fold(history.records[:middle]))
    assert same(history.state_at(len(history)), fold(snapshots))


def test_a_stop_shows_every_snapshot_up_to_its_step(snapshots):
    """What a run cut at step N shows: the fold of every snapshot of steps <= N."""
    history = history_of(snapshots, every=5)
    steps = sorted({getattr(s, "step", 0) for s in snapshots})
    for step in steps[:: max(len(steps) // 12, 1)]:
        position = history.position_of(step)
        assert position in history.stops
        upto = [s for s in snapshots if getattr(s, "step", 0) <= step]
        assert same(history.state_at(position), fold(upto))


def test_moving_between_stops(snapshots):
    history = history_of(snapshots, every=5)
    stops = history.stops
    assert stops == sorted(set(stops)) and stops[-1] == len(history)
    assert history.stop_after(stops[3]) == stops[4]
    assert history.stop_after(stops[3], -1) == stops[2]
    assert history.stop_after(stops[3] + 0, -10) == stops[0]  # clamped to the first
    assert history.stop_after(len(history), 5) == len(history)
    assert history.stop_after(0) == stops[0]


def test_a_rewind_starts_the_history_again(snapshots):
    history = history_of(snapshots, every=3)
    history.record(Rewound(0))
    assert len(history) == 0 and same(history.state_at(0), RunState())


def test_past_its_bound_the_points_are_thinned_not_the_records(snapshots):
    points = sum(len(s.records) for s in snapshots if isinstance(s, Batches))
    history = History(RunState, every=4, max_points=points // 3)
    for snapshot in snapshots:
        history.record(snapshot)
    kept = sum(len(s.records) for s in history.records if isinstance(s, Batches))
    assert kept <= points // 3
    full = history_of(snapshots, every=4)
    assert len(history) == len(full) and history.steps == full.steps
    # What the views draw from other than the batch curve is untouched.
    n = len(history) // 2
    thinned, exact = history.state_at(n), full.state_at(n)
    assert content(thinned) == content(exact)


def test_position_out_of_range_is_refused(snapshots):
    history = history_of(snapshots[:10], every=3)
    with pytest.raises(IndexError, match="outside 0"):
        history.state_at(len(history) + 1)


def test_a_player_covers_any_history_in_about_20_seconds_and_a_short_one_step_by_step():
    """A 1,000-epoch run's 20,000 stops in 200 ticks of 0.1 s (one a tick took 33 minutes);
    50 stops still one a tick; the speeds halve and double it."""
    for stops, ticks in ((20_000, 200), (50, 50)):
        player = Player(stops)
        moved = [player.advance(0.1) for _ in range(ticks)]
        assert sum(moved) == stops
        assert max(moved) - min(moved) <= 1  # evenly
    player = Player(20_000)
    assert player.change(1) and player.speed == 2.0
    assert sum(player.advance(0.1) for _ in range(100)) == 20_000
    while player.change(1):
        pass
    assert player.speed == PLAY_SPEEDS[-1] and not player.change(1)
    assert player.describe() == "×8: the whole run in 2.5 s"
