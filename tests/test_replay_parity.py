"""Every panel of a recorded run (`nntui --open`) shows what the live run showed: the snapshots
the Bridge sent while training and those the replay makes of the run's log are the same, and so
is the RunState each panel draws from. Classification and regression runs, and a run that
diverged (its log holds null losses)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from nnlib import events, runs
from nnlib.config import ExperimentConfig
from nnlib.experiment import setup
from nntui import bridge as b
from nntui.replay import open_run
from nntui.runstate import RunState
from nntui.widgets.confusion import ConfusionPanel


def _run(run_dir: Path, **options) -> list[b.Snapshot]:
    """Train with a live Bridge beside the run log; returns what the Bridge sent."""
    live: list[b.Snapshot] = []
    config = ExperimentConfig(run_dir=str(run_dir), seed=0, histogram_every=5, **options)
    setup(config, checkpoints=True, callbacks=[b.Bridge(live.append, interval=0.0)]).fit()
    return live


RUNS = {
    "classification": dict(dataset="spirals", arch="2-16-3", epochs=2, batch_size=64, lr=0.1),
    "regression": dict(dataset="sine", arch="1-16-1:tanh", epochs=2, batch_size=64, lr=0.05),
}


@pytest.fixture(scope="module", params=sorted(RUNS))
def recorded(request, tmp_path_factory) -> tuple[str, list[b.Snapshot], list[b.Snapshot]]:
    run_dir = tmp_path_factory.mktemp("parity") / request.param
    live = _run(run_dir, **RUNS[request.param])
    return request.param, live, open_run(run_dir).snapshots


def _state(snapshots: list[b.Snapshot]) -> RunState:
    state = RunState()
    for snapshot in snapshots:
        state.apply(snapshot)
    return state


def _but_progress(snapshots: list[b.Snapshot]) -> list[b.Snapshot]:
    """Progress is a UI summary (how batch points were coalesced): compared by its points."""
    return [s for s in snapshots if not isinstance(s, b.Progress | b.RunStarted)]


def test_the_replay_sends_the_same_snapshots_as_the_live_bridge(recorded):
    _, live, replayed = recorded
    assert _but_progress(replayed) == _but_progress(live)
    points = [p for s in replayed if isinstance(s, b.Progress) for p in s.points]
    assert points == [p for s in live if isinstance(s, b.Progress) for p in s.points]


def test_every_panel_draws_the_same_state(recorded):
    kind, live, replayed = recorded
    shown, recalled = _state(live), _state(replayed)
    # curves, the status line, the event log, the layers panel, the matrix / predicted vs true
    assert recalled.task == shown.task == kind
    assert recalled.batches.columns == shown.batches.columns
    assert recalled.epochs == shown.epochs and recalled.marks == shown.marks
    assert recalled.end == shown.end and recalled.status == shown.status
    assert recalled.layers.keys() == shown.layers.keys()
    for name, history in shown.layers.items():
        assert recalled.layers[name].latest == history.latest
        assert recalled.layers[name].weights.columns == history.weights.columns
        assert recalled.layers[name].grads.columns == history.grads.columns
    assert recalled.confusion == shown.confusion
    assert recalled.events == shown.events
    assert recalled.fraction_done() == shown.fraction_done()


def test_a_regression_run_shows_predicted_vs_true_from_its_log(recorded):
    kind, _, replayed = recorded
    state = _state(replayed)
    result = state.latest("regression")
    if kind == "classification":
        assert result is None and state.confusion is not None
        return
    assert isinstance(result, events.Regression) and result.epoch == 1
    assert sum(map(sum, result.counts)) > 0 and result.lo < result.hi
    assert state.confusion is None
    # The panel draws it (no app needed for a regression picture) instead of waiting for it.
    picture = ConfusionPanel(state).draw(60, 16).plain
    assert picture.startswith("validation, epoch 2: R² ") and "appears after" not in picture


def test_a_diverged_run_opens_and_ends_as_it_did_live(tmp_path):
    live = _run(
        tmp_path / "diverged", dataset="spirals", arch="2-16-3", epochs=2, batch_size=32, lr=1e6
    )
    replayed = open_run(tmp_path / "diverged").snapshots
    ends = [s for s in live if isinstance(s, b.RunEnded)]
    assert [s for s in replayed if isinstance(s, b.RunEnded)] == ends
    assert ends[0].reason == "diverged"
    notices = [s.message for s in replayed if isinstance(s, b.Notice)]
    assert notices == [s.message for s in live if isinstance(s, b.Notice)]
    assert any(m.startswith("diverged: loss is not finite") for m in notices)
    losses = [p.loss for s in replayed if isinstance(s, b.Progress) for p in s.points]
    assert math.isnan(losses[-1]) and all(math.isfinite(loss) for loss in losses[:-1])


def test_the_log_of_a_regression_run_holds_the_summary(recorded):
    kind, _, _ = recorded
    types = {e.type for e in runs.read(_run_dir_of(recorded))}
    assert ("regression" in types) == (kind == "regression")
    assert ("confusion" in types) == (kind == "classification")


def _run_dir_of(recorded) -> Path:
    _, live, _ = recorded
    return Path(next(s for s in live if isinstance(s, b.RunStarted)).run_dir)
