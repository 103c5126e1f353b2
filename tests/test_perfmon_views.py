"""The boundary view costs almost nothing (issue 13 item 4): its data points go once per run
in 'boundary_points', and epoch ends get a view only within its budget (always the first and
the last, and at least every REFRESH_SECONDS)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from views_helpers import spirals_run

from nnlib import events, runs
from nnlib.callbacks import boundary
from nnlib.callbacks.boundary import REFRESH_SECONDS, BoundaryView
from nnlib.losses import loss_for
from nnlib.optimizers import make_optimizer
from nnlib.spec import build
from nnlib.trainer import Trainer
from nntui.replay import open_run
from nntui.runstate import RunState
from nntui.widgets.boundary import BoundaryPanel

CORNERS = np.array([[-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0], [1.0, 1.0]], dtype=np.float32)


def test_data_points_go_once_per_run_and_the_recorded_panel_still_has_them(tmp_path):
    snapshots, run_dir = spirals_run(tmp_path, epochs=2)
    for record in (snapshots, runs.read(run_dir)):
        points = [e for e in record if isinstance(e, events.BoundaryPoints)]
        views = [e for e in record if isinstance(e, events.Boundary)]
        assert len(points) == 1 and views
        assert points[0].val and len(points[0].train) == len(views[0].predicted)
        assert all(v.train is None and v.val is None and v.truth is None for v in views)
    state = RunState(recorded=True)
    for snapshot in open_run(run_dir).updates:  # what `nntui --open` feeds the panel
        state.apply(snapshot)
    shown = BoundaryPanel(state)._event()
    assert shown is not None and shown.train == points[0].train and shown.val == points[0].val
    assert shown.predicted == views[-1].predicted


def test_an_old_log_with_points_in_every_boundary_still_draws_them():
    state = RunState(recorded=True)
    old = events.make(
        "boundary",
        3,
        {"kind": "classes", "lo": [0, 0], "hi": [1, 1], "predicted": ["01"], "train": ["1."]},
    )
    state.apply(old)
    assert BoundaryPanel(state)._event().train == ["1."]


class Clock:
    """perf_counter for the view under test: moves only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def perf_counter(self) -> float:
        return self.now


@pytest.fixture
def watched(monkeypatch) -> tuple[BoundaryView, Trainer, Clock, list[dict]]:
    clock = Clock()
    monkeypatch.setattr(boundary, "time", SimpleNamespace(perf_counter=clock.perf_counter))
    trainer = Trainer(
        build("dense(2)", (2,), seed=0), loss_for("classification"), make_optimizer("sgd", lr=0.1)
    )
    emitted: list[dict] = []
    trainer.emit = lambda event_type, **data: emitted.append({"event": event_type, **data})  # type: ignore[method-assign]
    trainer.epochs = 10
    view = BoundaryView(CORNERS, np.array([0, 1, 0, 1]), grid=8, budget=0.03)
    compute = view.compute

    def ten_ms(trainer: Trainer) -> dict:
        clock.now += 0.01  # every view takes 10 ms
        return compute(trainer)

    view.compute = ten_ms  # type: ignore[method-assign]
    view.on_train_begin(trainer)
    return view, trainer, clock, emitted


def test_the_points_go_first_then_the_first_view(watched):
    view, _, _, emitted = watched
    assert [e["event"] for e in emitted] == ["boundary_points", "boundary"]
    assert "train" in emitted[0] and "train" not in emitted[1]


def test_epoch_ends_get_a_view_within_the_budget_and_always_the_first_and_last(watched):
    view, trainer, clock, emitted = watched
    del emitted[:]

    def epoch_end(epoch: int, seconds: float) -> bool:
        clock.now += seconds
        trainer.global_step += 1
        count = len(emitted)
        view.on_epoch_end(trainer, epoch, {})
        return len(emitted) > count

    assert epoch_end(0, 0.001)  # the first epoch, though over budget
    assert view.spent == pytest.approx(0.02)  # two views of 10 ms
    assert not epoch_end(1, 0.2)  # 30 ms would be 14% of the 0.22 s since the start
    assert not epoch_end(2, 0.3)  # 6% of 0.52 s
    assert epoch_end(3, 0.5)  # 30 ms of 1.02 s: within 3%
    assert not epoch_end(4, 0.01)
    assert epoch_end(5, REFRESH_SECONDS)  # the latest view is REFRESH_SECONDS old
    assert epoch_end(9, 0.001)  # the last epoch
    assert all(e["event"] == "boundary" for e in emitted)
    assert [e["epoch"] for e in emitted] == [0, 3, 5, 9]


def test_a_run_that_stops_after_its_latest_view_ends_with_one(watched):
    view, trainer, clock, emitted = watched
    view.cost = view.spent = 1.0  # far over budget: no view at epoch ends in the middle
    clock.now += 0.5
    trainer.global_step = 7
    view.on_epoch_end(trainer, 4, {})
    count = len(emitted)
    view.on_train_end(trainer, {})
    assert len(emitted) == count + 1 and emitted[-1]["event"] == "boundary"
    view.on_train_end(trainer, {})  # nothing trained since: no second one
    assert len(emitted) == count + 1


@pytest.mark.parametrize("pace, every_end", [(5.0, True), (10.0, True), (30.0, False)])
def test_a_run_paced_for_watching_gets_a_view_at_every_epoch_end(watched, pace, every_end):
    # Epochs of 0.2 s, 0.1 s and 1/30 s: at the first two a person follows every epoch.
    view, trainer, clock, emitted = watched
    trainer.control.set_pace(pace)
    del emitted[:]
    for epoch in range(1, 6):
        clock.now += 1 / pace
        trainer.global_step += 1
        view.on_epoch_end(trainer, epoch, {})
    assert (len(emitted) == 5) is every_end
