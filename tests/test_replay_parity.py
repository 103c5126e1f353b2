"""Every panel of a recorded run (`nntui --open`) shows what the live run showed: the records
the Bridge sent while training and those the replay reads from the run's log are the same, and
so is the RunState each panel draws from. Classification and regression runs, a run that
diverged (its log holds null losses), and a live run whose callbacks sit in another order (the
fold does not depend on where the bridge is)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from nnlib import events, runs
from nnlib.config import ExperimentConfig
from nnlib.experiment import setup
from nntui.bridge import Bridge
from nntui.replay import open_run
from nntui.runstate import RunState
from nntui.stream import Batches, RunStarted, Update
from nntui.widgets.confusion import ConfusionPanel
from nntui.widgets.eventlog import LogLines


def _run(run_dir: Path, order=None, **options) -> list[Update]:
    """Train with a live Bridge beside the run log; returns what the Bridge sent. `order`
    rearranges the run's callbacks (after the History the trainer puts first)."""
    live: list[Update] = []
    config = ExperimentConfig(run_dir=str(run_dir), seed=0, histogram_every=5, **options)
    experiment = setup(config, checkpoints=True, callbacks=[Bridge(live.append, interval=0.0)])
    if order is not None:
        callbacks = experiment.trainer.callbacks
        callbacks[1:] = order(callbacks[1:])
    experiment.fit()
    return live


RUNS = {
    "classification": dict(dataset="spirals", arch="2-16-3", epochs=2, batch_size=64, lr=0.1),
    "regression": dict(dataset="sine", arch="1-16-1:tanh", epochs=2, batch_size=64, lr=0.05),
}


@pytest.fixture(scope="module", params=sorted(RUNS))
def recorded(request, tmp_path_factory) -> tuple[str, list[Update], list[Update]]:
    run_dir = tmp_path_factory.mktemp("parity") / request.param
    live = _run(run_dir, **RUNS[request.param])
    return request.param, live, open_run(run_dir).updates


def _state(updates: list[Update]) -> RunState:
    state = RunState()
    for update in updates:
        state.apply(update)
    return state


def _records(updates: list[Update]) -> list[events.Event]:
    """The records of a stream, batches unpacked (how they were grouped is how often they
    were sent), without the RunStarted the live bridge and the replay each say."""
    out: list[events.Event] = []
    for update in updates:
        if isinstance(update, Batches):
            out += update.records
        elif isinstance(update, events.Event):
            out.append(update)
    return out


def _but_batches(updates: list[Update]) -> list[events.Event]:
    return [r for r in _records(updates) if not isinstance(r, events.Batch)]


def _log(updates: list[Update]) -> list:
    """The Log panel's lines."""
    lines = LogLines()
    return [entry for update in updates for entry in lines.take(update)]


def test_the_replay_sends_the_same_records_as_the_live_bridge(recorded):
    _, live, replayed = recorded
    assert _but_batches(replayed) == _but_batches(live)
    batches = [r for r in _records(replayed) if isinstance(r, events.Batch)]
    assert batches == [r for r in _records(live) if isinstance(r, events.Batch)]


def test_every_panel_draws_the_same_state(recorded):
    kind, live, replayed = recorded
    _every_panel_draws_the_same(kind, live, replayed)


def _every_panel_draws_the_same(kind: str, live: list[Update], replayed: list[Update]) -> None:
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
    assert recalled.progress == shown.progress
    assert recalled.fraction_done() == shown.fraction_done()
    assert recalled.hyperparameters == shown.hyperparameters
    assert [text for _, text, _ in _log(replayed)] == [text for _, text, _ in _log(live)]


@pytest.mark.parametrize("order", ["bridge first", "bridge last", "views reversed"])
def test_the_state_does_not_depend_on_the_live_callback_order(tmp_path, order):
    """The bridge hands on the records the CallbackList made, in the order they were made:
    wherever it sits (before the views, after the savers and the logger, which must stay
    last to log what the others emit as the run ends), and in whatever order the views
    emit, the live run folds to the state its log folds to (no replay mimics an order)."""

    def rearranged(callbacks: list) -> list:
        bridge = [c for c in callbacks if isinstance(c, Bridge)]
        rest = [c for c in callbacks if not isinstance(c, Bridge)]
        if order == "views reversed":
            views = [c for c in callbacks if not c.essential]
            shuffled = iter(views[::-1])
            return [next(shuffled) if not c.essential else c for c in callbacks]
        return bridge + rest if order == "bridge first" else rest + bridge

    live = _run(tmp_path / order, order=rearranged, **RUNS["classification"])
    replayed = open_run(tmp_path / order).updates
    kinds = {r.type for r in _records(live)}
    assert {"checkpoint", "confusion", "histograms", "epoch", "end"} <= kinds
    _every_panel_draws_the_same("classification", live, replayed)


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
    replayed = open_run(tmp_path / "diverged").updates
    ends = [s for s in live if isinstance(s, events.End)]
    assert [s for s in replayed if isinstance(s, events.End)] == ends
    assert ends[0].reason == "diverged"
    lines = [text for _, text, _ in _log(replayed)]
    assert lines == [text for _, text, _ in _log(live)]
    assert any(m.startswith("diverged: loss is not finite") for m in lines)
    losses = [r.loss for r in _records(replayed) if isinstance(r, events.Batch)]
    assert losses[-1] is None and all(math.isfinite(loss) for loss in losses[:-1])
    assert math.isnan(_state(replayed).batches.columns[1][-1])


def test_the_log_of_a_regression_run_holds_the_summary(recorded):
    kind, _, _ = recorded
    types = {e.type for e in runs.read(_run_dir_of(recorded))}
    assert ("regression" in types) == (kind == "regression")
    assert ("confusion" in types) == (kind == "classification")


def _run_dir_of(recorded) -> Path:
    _, live, _ = recorded
    return Path(next(s for s in live if isinstance(s, RunStarted)).run_dir)
