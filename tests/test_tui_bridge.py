"""The trainer-to-UI bridge and the run state, without Textual: the bridge hands on the
records the CallbackList made, and RunState folds them."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from nnlib import MSE, Monitor, SoftmaxCrossEntropy, Trainer, build, events, make_optimizer
from nnlib.callbacks.base import Callback
from nntui.bridge import Bridge
from nntui.runstate import Decimated, RunState
from nntui.stream import Batches, RunStarted, Update


def blobs(n: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = (
        rng.normal(0, 0.5, (n, 2)).astype(np.float32)
        + np.array([[2, 0], [0, 2], [-2, -2]], np.float32)[y]
    )
    return x, y.astype(np.int64)


class FakeClock:
    """Time that only moves when a test says so, so coalescing is deterministic."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def classification_run(callbacks: list[Callback], epochs: int = 2, batch_size: int = 40) -> Trainer:
    x, y = blobs()
    trainer = Trainer(
        build("2-8-3", (2,), seed=0),
        SoftmaxCrossEntropy(),
        make_optimizer("sgd", lr=0.1, momentum=0.9),
        callbacks=[Monitor(every=2), *callbacks],
    )
    trainer.fit(
        x[:200], y[:200], epochs=epochs, batch_size=batch_size, validation_data=(x[200:], y[200:])
    )
    return trainer


def test_bridge_does_not_import_textual():
    code = (
        "import nntui.bridge, nntui.runstate, nntui.stream, nntui.replay, nntui.history, "
        "nntui.timeaxis, nntui.widgets.notifications, nntui.plot, sys; "
        "print('textual' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_records_arrive_in_order_and_are_immutable():
    sent: list[Update] = []
    classification_run([Bridge(sent.append, interval=0.0)])
    kinds = [type(s).__name__ for s in sent]
    assert kinds[0] == "RunStarted" and kinds[-1] == "End"
    assert kinds.count("Epoch") == 2 and kinds.count("Confusion") == 2
    started = sent[0]
    assert isinstance(started, RunStarted)
    assert started.task == "classification" and started.layers == ("dense_1", "dense_2")
    assert started.class_names == ("0", "1", "2")
    for update in sent:
        assert dataclasses.is_dataclass(update)
        with pytest.raises(dataclasses.FrozenInstanceError):
            update.step = 99  # type: ignore[misc,union-attr]
    confusion = next(s for s in sent if isinstance(s, events.Confusion))
    assert sum(map(sum, confusion.matrix)) == 40
    state = RunState()
    hist = next(s for s in sent if isinstance(s, events.Histograms) and s.step > 0)
    state.apply(hist)
    first, second = (state.layers[name].latest for name in ("dense_1", "dense_2"))
    assert isinstance(first.weights.counts, tuple) and first.grads is not None
    assert first.grad_norm is not None and first.update_ratio is not None
    assert first.dead_fraction is not None  # from the ReLU after dense_1
    assert second.dead_fraction is None  # no ReLU after the output layer


def test_batches_coalesce_but_every_batch_record_arrives():
    clock = FakeClock()
    sent: list[Update] = []
    trainer = classification_run(
        [Bridge(sent.append, interval=10.0, clock=clock)], epochs=3, batch_size=10
    )
    batches = [s for s in sent if isinstance(s, Batches)]
    # Frozen time: only another record flushes the batches held (it comes after them, in
    # the order they were made), not each of 60 batches.
    assert all(
        isinstance(after, events.Event)
        for before, after in zip(sent, sent[1:], strict=False)
        if isinstance(before, Batches)
    )
    assert len(batches) < 60
    steps = [r.step for s in batches for r in s.records]
    assert steps == list(range(1, trainer.global_step + 1))
    assert [s.epoch for s in sent if isinstance(s, events.Epoch)] == [0, 1, 2]


def test_progress_follows_the_clock():
    clock = FakeClock()
    sent: list[Update] = []

    class Tick(Callback):
        def on_batch_end(self, trainer, batch, logs):
            clock.now += 0.04  # 25 batches per second

    classification_run(
        [Tick(), Bridge(sent.append, interval=0.1, clock=clock)], epochs=1, batch_size=5
    )
    batches = [len(s.records) for s in sent if isinstance(s, Batches)]
    assert max(batches) <= 3 and sum(batches) == 40


def test_paused_steps_are_sent_at_once():
    clock = FakeClock()
    sent: list[Update] = []

    class PauseAfterFirst(Callback):
        def on_batch_end(self, trainer, batch, logs):
            if logs["step"] == 1:
                trainer.pause()
            elif logs["step"] == 2:
                trainer.stop()
            trainer.step()

    classification_run([PauseAfterFirst(), Bridge(sent.append, interval=10.0, clock=clock)])
    batches = [s for s in sent if isinstance(s, Batches)]
    assert [s.records[-1].step for s in batches][:2] == [1, 2]
    assert isinstance(sent[-1], events.End) and sent[-1].reason == "stopped"


def test_hparam_changes_and_errors_are_records():
    sent: list[Update] = []

    class Boom(Callback):
        def on_batch_end(self, trainer, batch, logs):
            if logs["step"] == 1:
                trainer.set("lr", 0.5)
            if logs["step"] == 3:
                raise RuntimeError("kaboom")

    with pytest.raises(RuntimeError):
        classification_run([Boom(), Bridge(sent.append, interval=0.0)])
    change = next(s for s in sent if isinstance(s, events.Hparam))
    assert (change.name, change.old, change.new, change.step) == ("lr", 0.1, 0.5, 1)
    end = sent[-1]
    assert isinstance(end, events.End) and end.reason == "error" and "kaboom" in end.error


def test_regression_gets_a_predicted_vs_true_summary_and_no_confusion():
    sent: list[Update] = []
    rng = np.random.default_rng(0)
    x = rng.uniform(-3, 3, (200, 1)).astype(np.float32)
    y = np.sin(x).astype(np.float32)
    trainer = Trainer(
        build("1-16-1:tanh", (1,), seed=0),
        MSE(),
        make_optimizer("sgd", lr=0.05, momentum=0.9),
        callbacks=[Monitor(every=5), Bridge(sent.append, interval=0.0)],
    )
    trainer.fit(x[:160], y[:160], epochs=2, batch_size=16, validation_data=(x[160:], y[160:]))
    assert isinstance(sent[0], RunStarted)
    assert sent[0].task == "regression" and sent[0].class_names == ()
    assert not any(isinstance(s, events.Confusion) for s in sent)
    regression = [s for s in sent if isinstance(s, events.Regression)]
    assert len(regression) == 2
    assert sum(map(sum, regression[-1].counts)) == 40
    assert regression[-1].lo < regression[-1].hi and regression[-1].r2 <= 1.0
    records = [r for s in sent if isinstance(s, Batches) for r in s.records]
    assert records and all(r.accuracy is None for r in records)


def test_run_state_folds_records():
    sent: list[Update] = []
    classification_run([Bridge(sent.append, interval=0.0)])
    state = RunState("blobs")
    for update in sent:
        state.apply(update)
    assert state.end is not None and state.status == "finished"
    assert len(state.batches) == 10 and len(state.epochs) == 2
    assert state.confusion is not None and set(state.layers) == {"dense_1", "dense_2"}
    assert state.layer_names() == ["dense_1", "dense_2"]
    assert state.fraction_done() == 1.0 and state.eta_seconds() is None
    state.request("lr", 1.0)
    assert state.pending == {"lr": 1.0}


def test_a_change_logged_before_its_answer_is_not_left_pending():
    """A run in another process logs the change, and the follower may bring that record
    before the command's answer: either order ends with nothing pending."""
    change = events.Hparam(step=3, name="lr", old=0.05, new=0.2, source="remote")
    answered_first, logged_first = RunState("moons"), RunState("moons")
    answered_first.request("lr", 0.2, since=0)
    assert answered_first.pending == {"lr": 0.2}
    answered_first.apply(change)
    logged_first.apply(change)
    logged_first.request("lr", 0.2, since=0)  # sent before the change was logged
    assert answered_first.pending == logged_first.pending == {}
    logged_first.request("lr", 0.1, since=1)  # a new value is pending until its own change
    assert logged_first.pending == {"lr": 0.1}
    logged_first.request("lr", 0.2, since=1)  # asked back while 0.1 is pending: pending again
    assert logged_first.pending == {"lr": 0.2}
    again = RunState("moons")
    again.apply(change)
    again.request("lr", 0.2, since=1)  # 0.2 once more, after its change: pending again
    assert again.pending == {"lr": 0.2}


def test_decimation_bounds_a_series_and_spans_the_run():
    series = Decimated(2, cap=100)
    for step in range(10_000):
        series.append(step, step * 2.0)
    assert len(series) <= 101
    steps = series.columns[0]
    assert steps[0] == 0 and steps[-1] > 9_000 and steps == sorted(steps)
