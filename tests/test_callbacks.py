"""Built-in callbacks: EarlyStopping, DivergenceGuard, ModelCheckpoint (atomic writes),
Monitor (histograms, dead units, confusion matrix) and the learning-rate schedules."""

from __future__ import annotations

import io
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import nnlib as nl
from nnlib import datasets
from nnlib.callbacks import (
    CosineDecay,
    ExponentialDecay,
    LearningRateSchedule,
    StepDecay,
    TimeBasedDecay,
)
from nnlib.callbacks.monitor import PERCENTILES, dead_fraction, histogram
from nnlib.metrics import confusion_matrix, precision_recall


def _data(n=24, features=4, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, features)).astype(np.float32), rng.integers(0, classes, size=n)


def _trainer(callbacks=(), arch="4-8-3", lr=0.1, momentum=0.0, shape=(4,)):
    return nl.Trainer(
        nl.build(arch, shape, seed=0),
        nl.SoftmaxCrossEntropy(),
        nl.SGD(lr=lr, momentum=momentum),
        callbacks=callbacks,
    )


def _spirals(validation_split=0.3):
    return datasets.prepare(
        datasets.load("spirals", n_train=300, n_test=10), validation_split=validation_split
    )


class Events(nl.Callback):
    def __init__(self):
        self.events = []
        self.end = None

    def on_event(self, trainer, event, data):
        self.events.append((event, dict(data)))

    def on_train_end(self, trainer, logs):
        self.end = dict(logs)

    def of(self, kind):
        return [data for event, data in self.events if event == kind]


class Script(nl.Callback):
    """Overwrites logs[key] at each epoch end with the next scripted value (placed before the
    callback under test), so the monitored series is exactly what a test needs."""

    def __init__(self, values, key="val_loss"):
        self.values, self.key = list(values), key

    def on_epoch_end(self, trainer, epoch, logs):
        logs[self.key] = self.values[epoch]


class EpochWeights(nl.Callback):
    def __init__(self):
        self.weights = []

    def on_epoch_end(self, trainer, epoch, logs):
        self.weights.append(trainer.model.get_weights())


def _assert_weights_equal(model, weights):
    current = model.get_weights()
    assert current.keys() == weights.keys()
    for name, value in weights.items():
        np.testing.assert_array_equal(current[name], value)


def _weights_differ(a, b):
    return any(not np.array_equal(a[name], b[name]) for name in a)


# -- EarlyStopping -----------------------------------------------------------------------------


def test_early_stopping_restores_the_best_weights_of_a_run_that_gets_worse():
    prepared = _spirals()

    class BigLearningRate(nl.Callback):
        def on_epoch_begin(self, trainer, epoch):
            if epoch == 4:
                trainer.set("lr", 2.0)

    snapshots, events = EpochWeights(), Events()
    stopper = nl.EarlyStopping(patience=3)
    trainer = nl.Trainer(
        nl.build("2-32-32-3", (2,)),
        nl.SoftmaxCrossEntropy(),
        nl.SGD(lr=0.1, momentum=0.9),
        callbacks=[BigLearningRate(), snapshots, stopper, events],
    )
    history = trainer.fit(
        prepared.x_train,
        prepared.y_train,
        epochs=20,
        batch_size=16,
        validation_data=(prepared.x_val, prepared.y_val),
    )
    val = history.series("val_loss")
    best = int(np.nanargmin(val))
    assert best == 3 and all(v > val[best] for v in val[best + 1 :])
    assert history.reason == "early_stop" and trainer.state == "stopped"
    assert len(val) == best + 1 + 3  # three epochs without improvement, then stop
    assert _weights_differ(snapshots.weights[-1], snapshots.weights[best])
    _assert_weights_equal(trainer.model, snapshots.weights[best])
    assert trainer.evaluate(prepared.x_val, prepared.y_val)["loss"] == pytest.approx(
        val[best], rel=1e-6
    )
    assert events.of("early_stop") == [
        {
            "monitor": "val_loss",
            "best": val[best],
            "best_epoch": best,
            "epoch": len(val) - 1,
            "step": trainer.global_step,
        }
    ]
    assert events.end["restored_epoch"] == best and events.end["reason"] == "early_stop"


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    "values, patience, min_delta, epochs_run, best_epoch, stops",
    [
        # patience p: stop at the end of the p-th epoch in a row without improvement
        ([1.0, 0.9, 0.95, 0.96, 0.97, 0.98], 2, 0.0, 4, 1, True),
        ([1.0, 0.9, 0.95, 0.96, 0.97, 0.98], 3, 0.0, 5, 1, True),
        ([1.0, 0.9, 0.95, 0.8, 0.97, 0.98], 2, 0.0, 6, 3, True),
        ([1.0, 0.9, 0.95, 0.8, 0.97, 0.98], 3, 0.0, 6, 3, False),
        ([1.0, 1.1, 0.5, 0.4], 0, 0.0, 2, 0, True),
        ([1.0, 1.1, 0.5, 0.4], 1, 0.0, 2, 0, True),
        ([1.0, 1.0, 1.0, 1.0], 2, 0.0, 3, 0, True),  # equal is not better
        # min_delta: an improvement must be larger than it
        ([1.0, 0.97, 0.96, 0.2], 2, 0.05, 3, 0, True),
        ([1.0, 0.97, 0.96, 0.2], 2, 0.0, 4, 3, False),
        ([1.0, 0.94, 0.90, 0.86], 1, 0.05, 3, 1, True),
        # NaN and inf are never the best
        ([NAN, 2.0, NAN, INF, 3.0], 5, 0.0, 5, 1, False),
        ([1.0, NAN, -INF, NAN, 0.5], 3, 0.0, 4, 0, True),
    ],
)
def test_early_stopping_patience_min_delta_and_nan(
    values, patience, min_delta, epochs_run, best_epoch, stops
):
    snapshots, events = EpochWeights(), Events()
    stopper = nl.EarlyStopping(patience=patience, min_delta=min_delta)
    trainer = _trainer(callbacks=[Script(values), snapshots, stopper, events])
    xv, yv = _data(6, seed=1)
    history = trainer.fit(*_data(), epochs=len(values), batch_size=8, validation_data=(xv, yv))
    assert len(history.epochs) == epochs_run
    assert history.reason == ("early_stop" if stops else "finished")
    assert stopper.best_epoch == best_epoch and stopper.best == values[best_epoch]
    _assert_weights_equal(trainer.model, snapshots.weights[best_epoch])
    assert events.end.get("restored_epoch") == best_epoch
    assert len(events.of("early_stop")) == int(stops)


def test_early_stopping_mode_max_for_accuracy_and_no_restore():
    snapshots = EpochWeights()
    stopper = nl.EarlyStopping(monitor="val_accuracy", patience=1, restore_best_weights=False)
    assert stopper.mode == "max"
    trainer = _trainer(callbacks=[Script([0.5, 0.7, 0.6, 0.9], "val_accuracy"), snapshots, stopper])
    history = trainer.fit(*_data(), epochs=4, batch_size=8, validation_data=_data(6, seed=1))
    assert len(history.epochs) == 3 and stopper.best_epoch == 1
    _assert_weights_equal(trainer.model, snapshots.weights[-1])  # not restored


def test_early_stopping_all_nan_restores_nothing():
    snapshots = EpochWeights()
    stopper = nl.EarlyStopping(patience=1)
    trainer = _trainer(callbacks=[Script([float("nan")] * 3), snapshots, stopper])
    history = trainer.fit(*_data(), epochs=3, batch_size=8, validation_data=_data(6, seed=1))
    assert history.reason == "early_stop" and stopper.best_epoch is None
    assert "restored_epoch" not in history.end
    _assert_weights_equal(trainer.model, snapshots.weights[-1])


def test_early_stopping_bad_arguments():
    with pytest.raises(ValueError, match="patience"):
        nl.EarlyStopping(patience=-1)
    with pytest.raises(ValueError, match="mode"):
        nl.EarlyStopping(mode="up")
    trainer = _trainer(callbacks=[nl.EarlyStopping()])
    with pytest.raises(ValueError, match=r"monitor 'val_loss' is not in the epoch logs"):
        trainer.fit(*_data(), epochs=1, batch_size=8)  # no validation data


# -- DivergenceGuard ---------------------------------------------------------------------------


class WeightsAround(nl.Callback):
    def __init__(self):
        self.before, self.after = {}, {}

    def on_batch_begin(self, trainer, batch):
        self.before[trainer.global_step + 1] = trainer.model.get_weights()

    def on_batch_end(self, trainer, batch, logs):
        self.after[logs["step"]] = trainer.model.get_weights()


def test_divergence_guard_on_a_blow_up_learning_rate(tmp_path):
    prepared = _spirals()
    around, events = WeightsAround(), Events()
    best = nl.ModelCheckpoint(tmp_path / "best.npz", monitor="val_loss")
    last = nl.ModelCheckpoint(
        tmp_path / "last.npz", monitor="loss", save_best_only=False, at_end=True
    )
    trainer = nl.Trainer(
        nl.build("2-32-32-3", (2,)),
        nl.SoftmaxCrossEntropy(),
        nl.SGD(lr=1e6, momentum=0.9),
        callbacks=[around, best, last, events],
    )
    with np.errstate(over="raise", invalid="raise"):  # the trainer contains its overflow
        history = trainer.fit(
            prepared.x_train,
            prepared.y_train,
            epochs=5,
            batch_size=16,
            validation_data=(prepared.x_val, prepared.y_val),
        )
    assert history.reason == "diverged" and trainer.state == "diverged"
    losses = history.series("loss", per="batch")
    assert not math.isfinite(losses[-1]) and all(math.isfinite(v) for v in losses[:-1])
    step = trainer.global_step
    assert len(losses) == step and len(history.epochs) == 1
    diverged = events.of("diverged")
    assert len(diverged) == 1 and diverged[0]["step"] == step
    assert diverged[0]["batch"] == step - 1 and diverged[0]["epoch"] == 0
    assert not math.isfinite(diverged[0]["loss"])
    # the non-finite update was skipped: that batch left the weights as they were
    _assert_weights_equal(trainer.model, around.before[step])
    assert all(np.isfinite(p.value).all() for p in trainer.model.parameters())
    # whatever was saved holds finite weights
    for path in best.saved + last.saved:
        assert all(np.isfinite(p.value).all() for p in nl.load(path).parameters())
    assert last.saved and events.end["checkpoint"] == str(tmp_path / "last.npz")


def test_divergence_guard_max_loss_and_opt_out():
    events = Events()
    trainer = _trainer(callbacks=[nl.DivergenceGuard(max_loss=1e-3), events])
    history = trainer.fit(*_data(), epochs=3, batch_size=8)
    assert history.reason == "diverged" and trainer.global_step == 1
    assert sum(isinstance(c, nl.DivergenceGuard) for c in trainer.callbacks) == 1
    assert events.of("diverged")[0]["loss"] == history.batches[0]["loss"]

    plain = _trainer()
    assert sum(isinstance(c, nl.DivergenceGuard) for c in plain.callbacks) == 1
    unguarded = nl.Trainer(
        nl.build("4-8-3", (4,)), nl.SoftmaxCrossEntropy(), nl.SGD(lr=1e6), divergence_guard=False
    )
    assert not any(isinstance(c, nl.DivergenceGuard) for c in unguarded.callbacks)
    history = unguarded.fit(*_data(), epochs=3, batch_size=8)
    assert history.reason == "finished" and unguarded.global_step == 9


def test_progress_bar_names_the_step_that_diverged():
    stream = io.StringIO()
    trainer = _trainer(
        callbacks=[nl.DivergenceGuard(max_loss=1e-3), nl.ProgressBar(stream=stream, rich=False)]
    )
    trainer.fit(*_data(), epochs=3, batch_size=8)
    assert trainer.global_step == 1
    assert "diverged: loss is" in stream.getvalue()
    assert " at step 1\n" in stream.getvalue()


# -- ModelCheckpoint ---------------------------------------------------------------------------


def test_checkpoint_saves_the_best_epochs(tmp_path):
    snapshots, events = EpochWeights(), Events()
    checkpoint = nl.ModelCheckpoint(tmp_path / "best.npz")
    trainer = _trainer(
        callbacks=[Script([1.0, 0.5, 0.7, 0.4, float("nan")]), snapshots, checkpoint, events]
    )
    trainer.fit(*_data(), epochs=5, batch_size=8, validation_data=_data(6, seed=1))
    saved = events.of("checkpoint")
    assert [(e["epoch"], e["reason"], e["value"]) for e in saved] == [
        (0, "best", 1.0),
        (1, "best", 0.5),
        (3, "best", 0.4),
    ]
    assert all(
        e["path"] == str(tmp_path / "best.npz") and e["monitor"] == "val_loss" for e in saved
    )
    assert checkpoint.best == 0.4
    _assert_weights_equal(nl.load(tmp_path / "best.npz"), snapshots.weights[3])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.npz"]


def test_checkpoint_never_saves_nan_weights_as_the_best(tmp_path):
    class PoisonAtEpoch2(nl.Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            if epoch == 2:
                trainer.model.parameters()[0].value[0, 0] = np.nan

    snapshots = EpochWeights()
    checkpoint = nl.ModelCheckpoint(tmp_path / "best.npz")
    trainer = _trainer(
        callbacks=[Script([1.0, 0.5, 0.1]), PoisonAtEpoch2(), snapshots, checkpoint], lr=0.01
    )
    trainer.fit(*_data(), epochs=3, batch_size=8, validation_data=_data(6, seed=1))
    assert [p.name for p in checkpoint.saved] == ["best.npz", "best.npz"]
    assert checkpoint.best == 0.5
    _assert_weights_equal(nl.load(tmp_path / "best.npz"), snapshots.weights[1])


def test_checkpoint_every_n_epochs_with_a_pattern(tmp_path):
    snapshots, events = EpochWeights(), Events()
    checkpoint = nl.ModelCheckpoint(tmp_path / "ck-{epoch}-{step}.npz", every=2)
    assert not checkpoint.save_best_only
    trainer = _trainer(callbacks=[snapshots, checkpoint, events])
    trainer.fit(*_data(), epochs=5, batch_size=8)  # 3 steps per epoch
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck-2-6.npz", "ck-4-12.npz"]
    assert [e["reason"] for e in events.of("checkpoint")] == ["every 2", "every 2"]
    _assert_weights_equal(nl.load(tmp_path / "ck-4-12.npz"), snapshots.weights[3])
    with pytest.raises(ValueError, match="every"):
        nl.ModelCheckpoint(tmp_path / "x.npz", every=0)


def test_checkpoint_at_end_after_a_stop(tmp_path):
    class StopAtStep4(nl.Callback):
        def on_batch_end(self, trainer, batch, logs):
            if logs["step"] == 4:
                trainer.stop_training = True

    events = Events()
    checkpoint = nl.ModelCheckpoint(tmp_path / "model", save_best_only=False, at_end=True)
    trainer = _trainer(callbacks=[StopAtStep4(), checkpoint, events])
    trainer.fit(*_data(), epochs=5, batch_size=8)
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]  # suffix added
    assert [(e["reason"], e["epoch"]) for e in events.of("checkpoint")] == [("end", 1)]
    assert events.end["checkpoint"] == str(tmp_path / "model.npz")
    _assert_weights_equal(nl.load(tmp_path / "model.npz"), trainer.model.get_weights())


def test_checkpoint_monitor_must_exist(tmp_path):
    trainer = _trainer(callbacks=[nl.ModelCheckpoint(tmp_path / "b.npz", monitor="val_f1")])
    with pytest.raises(
        ValueError,
        match=r"monitor 'val_f1' is not in the epoch logs "
        r"\(available: .*loss",
    ):
        trainer.fit(*_data(), epochs=1, batch_size=8)


def _partial_savez(fraction=0.5):
    """A numpy.savez that writes part of a real archive, then fails."""
    real = np.savez

    def savez(file, **arrays):
        import io

        buffer = io.BytesIO()
        real(buffer, **arrays)
        data = buffer.getvalue()
        file.write(data[: int(len(data) * fraction)])
        file.flush()
        raise OSError("disk full (simulated)")

    return savez


def test_checkpoint_write_failing_midway_leaves_the_old_file(tmp_path, monkeypatch):
    model = nl.build("4-8-3", (4,), seed=0)
    old = model.get_weights()
    target = tmp_path / "best.npz"
    model.save(target)
    model.parameters()[0].value += 1.0
    monkeypatch.setattr(np, "savez", _partial_savez())
    with pytest.raises(OSError, match="simulated"):
        model.save(target)
    assert [p.name for p in tmp_path.iterdir()] == ["best.npz"]  # no temporary left behind
    _assert_weights_equal(nl.load(target), old)

    fresh = tmp_path / "fresh.npz"
    with pytest.raises(OSError, match="simulated"):
        model.save(fresh)
    assert [p.name for p in tmp_path.iterdir()] == ["best.npz"]


def test_checkpoint_callback_failing_midway_keeps_the_previous_best(tmp_path, monkeypatch):
    snapshots = EpochWeights()
    checkpoint = nl.ModelCheckpoint(tmp_path / "best.npz")

    class BreakTheDisk(nl.Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            if epoch == 1:
                monkeypatch.setattr(np, "savez", _partial_savez(0.3))

    trainer = _trainer(callbacks=[Script([1.0, 0.5]), snapshots, BreakTheDisk(), checkpoint])
    with pytest.raises(OSError, match="simulated"):
        trainer.fit(*_data(), epochs=2, batch_size=8, validation_data=_data(6, seed=1))
    monkeypatch.undo()
    assert trainer.history.reason == "error"
    assert [p.name for p in tmp_path.iterdir()] == ["best.npz"]
    _assert_weights_equal(nl.load(tmp_path / "best.npz"), snapshots.weights[0])


def test_checkpoint_process_killed_mid_write_never_shows_a_partial_file(tmp_path):
    script = textwrap.dedent("""
        import os, sys
        import numpy as np
        import nnlib as nl

        target = sys.argv[1]
        model = nl.build("4-8-3", (4,), seed=0)
        model.save(target)                      # the old, complete checkpoint
        real = np.savez

        def savez(file, **arrays):
            real(file, **arrays)
            file.flush()
            os._exit(3)                         # killed after the data, before the rename

        np.savez = savez
        model.parameters()[0].value += 1.0
        model.save(target)
    """)
    target = tmp_path / "best.npz"
    done = subprocess.run(
        [sys.executable, "-c", script, str(target)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 3, done.stderr
    _assert_weights_equal(nl.load(target), nl.build("4-8-3", (4,), seed=0).get_weights())
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "best.npz"]
    assert all(name.startswith(".best.npz.") and name.endswith(".tmp") for name in leftovers)


# -- Monitor -----------------------------------------------------------------------------------


class BeforeStep(nl.Callback):
    """Weights before each step (placed before the Monitor)."""

    def __init__(self):
        self.before = {}

    def on_batch_begin(self, trainer, batch):
        self.before[trainer.global_step + 1] = trainer.model.get_weights()


def test_monitor_histograms():
    before, events = BeforeStep(), Events()
    trainer = _trainer(callbacks=[before, nl.Monitor(every=2, bins=10), events])
    trainer.fit(*_data(), epochs=2, batch_size=8)  # 6 steps
    histograms = events.of("histograms")
    assert [(h["step"], h["batch"]) for h in histograms] == [(0, 0), (1, 0), (2, 1), (4, 0), (6, 2)]
    initial = histograms[0]["layers"]
    assert set(initial) == {"dense_1", "dense_2"}
    assert set(initial["dense_1"]) == {"weights"}

    for event in histograms[1:]:
        layers = event["layers"]
        assert set(layers) == {"dense_1", "relu_1", "dense_2"}
        assert 0.0 <= layers["relu_1"]["dead_fraction"] <= 1.0
        for name in ("dense_1", "dense_2"):
            summary, W = layers[name], trainer.model[name].params["W"]
            assert set(summary) == {"weights", "grads", "grad_norm", "update_ratio"}
            for key in ("weights", "grads"):
                hist = summary[key]
                assert len(hist["counts"]) == 10 and sum(hist["counts"]) == W.value.size
                assert hist["nonfinite"] == 0
                percentiles = hist["percentiles"]
                assert len(percentiles) == len(PERCENTILES)
                assert percentiles == sorted(percentiles)
                assert hist["lo"] == percentiles[0] and hist["hi"] == percentiles[-1]
            assert summary["grad_norm"] > 0
            assert summary["update_ratio"] > 0

    # the last one describes the model as it is now: check it against direct computations
    last = histograms[-1]["layers"]["dense_1"]
    layer = trainer.model["dense_1"]
    W, b = layer.params["W"], layer.params["b"]
    assert last["weights"]["lo"] == float(W.value.min())
    assert last["weights"]["hi"] == float(W.value.max())
    assert last["grad_norm"] == pytest.approx(
        math.sqrt(float(np.sum(W.grad.astype(np.float64) ** 2) + np.sum(b.grad**2))), rel=1e-5
    )
    w_before = before.before[6]["dense_1.W"]
    assert last["update_ratio"] == pytest.approx(
        np.linalg.norm(W.value - w_before) / np.linalg.norm(w_before), rel=1e-5
    )


def test_histogram_helper():
    values = np.array([0.0, 1.0, 2.0, 3.0, np.nan, np.inf], np.float32)
    hist = histogram(values, bins=3)
    assert hist["counts"] == [1, 1, 2] and hist["nonfinite"] == 2
    assert (hist["lo"], hist["hi"]) == (0.0, 3.0)
    assert hist["percentiles"][0] == 0.0 and hist["percentiles"][-1] == 3.0
    constant = histogram(np.full(5, 2.0), bins=4)
    assert sum(constant["counts"]) == 5
    empty = histogram(np.array([np.nan]), bins=2)
    assert empty["counts"] == [0, 0] and empty["nonfinite"] == 1


def test_dead_relu_fraction_is_one_behind_a_very_negative_bias():
    events = Events()
    trainer = _trainer(arch="4-8-3", lr=1e-3, callbacks=[nl.Monitor(every=1), events])
    trainer.model["dense_1"].params["b"].value[...] = -1e4
    trainer.fit(*_data(), epochs=1, batch_size=8)
    fractions = [h["layers"]["relu_1"]["dead_fraction"] for h in events.of("histograms")[1:]]
    assert fractions == [1.0, 1.0, 1.0]
    assert dead_fraction(trainer.model["relu_1"]) == 1.0
    # a dead ReLU passes no gradient back: dense_1 did not learn
    assert events.of("histograms")[-1]["layers"]["dense_1"]["grad_norm"] == 0.0

    alive = _trainer(arch="4-8-3", callbacks=[nl.Monitor(every=1), events := Events()])
    alive.model["dense_1"].params["b"].value[...] = 1e4
    alive.fit(*_data(), epochs=1, batch_size=8)
    assert events.of("histograms")[-1]["layers"]["relu_1"]["dead_fraction"] == 0.0


def test_dead_fraction_per_channel_for_images():
    relu = nl.ReLU()
    x = np.ones((2, 3, 3, 4), np.float32)
    x[..., 1] = -1.0  # channel 1 never active
    x[0, 0, 0, 2] = -1.0  # channel 2 active elsewhere
    relu.forward(x)
    assert dead_fraction(relu) == 0.25
    assert dead_fraction(nl.ReLU()) == 0.0  # no forward pass yet


def test_monitor_confusion_matrix_matches_a_direct_computation():
    prepared = _spirals()
    xv, yv = prepared.x_val, prepared.y_val

    class Direct(nl.Callback):
        def __init__(self):
            self.matrices = []

        def on_epoch_end(self, trainer, epoch, logs):
            predicted = trainer.model.predict(xv).argmax(axis=1)
            matrix = np.zeros((3, 3), int)
            for true, guess in zip(yv, predicted, strict=True):
                matrix[true, guess] += 1
            self.matrices.append(matrix)

    direct, events = Direct(), Events()
    trainer = nl.Trainer(
        nl.build("2-16-3", (2,)),
        nl.SoftmaxCrossEntropy(),
        nl.SGD(lr=0.1),
        callbacks=[nl.Monitor(class_names=["a", "b", "c"]), direct, events],
    )
    history = trainer.fit(
        prepared.x_train, prepared.y_train, epochs=2, batch_size=32, validation_data=(xv, yv)
    )
    confusion = events.of("confusion")
    assert [c["epoch"] for c in confusion] == [0, 1]
    for event, matrix, logs in zip(confusion, direct.matrices, history.epochs, strict=True):
        assert np.sum(event["matrix"]) == len(yv)
        np.testing.assert_array_equal(event["matrix"], matrix)
        assert np.trace(matrix) / len(yv) == pytest.approx(logs["val_accuracy"])
        diagonal = np.diag(matrix)
        columns, rows = matrix.sum(axis=0), matrix.sum(axis=1)
        for k in range(3):
            assert event["precision"][k] == (diagonal[k] / columns[k] if columns[k] else 0.0)
            assert event["recall"][k] == (diagonal[k] / rows[k] if rows[k] else 0.0)
        assert event["class_names"] == ["a", "b", "c"]


def test_precision_recall_by_hand():
    matrix = confusion_matrix(np.array([0, 0, 0, 1, 1, 1, 2]), np.array([0, 0, 1, 1, 1, 1, 1]), 3)
    np.testing.assert_array_equal(matrix, [[2, 1, 0], [0, 3, 0], [0, 1, 0]])
    precision, recall = precision_recall(matrix)
    np.testing.assert_allclose(precision, [1.0, 0.6, 0.0])  # class 2 never predicted: 0
    np.testing.assert_allclose(recall, [2 / 3, 1.0, 0.0])


def test_monitor_without_validation_or_for_regression_sends_no_confusion():
    events = Events()
    _trainer(callbacks=[nl.Monitor(), events]).fit(*_data(), epochs=1, batch_size=8)
    assert events.of("confusion") == []
    prepared = datasets.prepare(datasets.load("sine", n_train=40, n_test=5), validation_split=0.2)
    events = Events()
    nl.Trainer(
        nl.build("1-8-1:tanh", (1,)),
        nl.MSE(),
        nl.SGD(lr=0.05),
        callbacks=[nl.Monitor(every=1), events],
    ).fit(
        prepared.x_train,
        prepared.y_train,
        epochs=1,
        batch_size=8,
        validation_data=(prepared.x_val, prepared.y_val),
    )
    assert events.of("confusion") == [] and len(events.of("histograms")) == 1 + 4
    with pytest.raises(ValueError, match="every"):
        nl.Monitor(every=0)


# -- schedules ---------------------------------------------------------------------------------


def _epoch_lrs(schedule, epochs=5, lr=0.1, callbacks=()):
    trainer = _trainer(callbacks=[schedule, *callbacks], lr=lr)
    history = trainer.fit(*_data(), epochs=epochs, batch_size=8)
    batches = history.batches
    per_epoch = [[b["lr"] for b in batches if b["epoch"] == e] for e in range(epochs)]
    assert all(len(set(lrs)) == 1 for lrs in per_epoch)  # constant within an epoch
    assert [e["lr"] for e in history.epochs] == [lrs[0] for lrs in per_epoch]
    return [lrs[0] for lrs in per_epoch], history


@pytest.mark.parametrize(
    "schedule, expected",
    [
        (StepDecay(step_size=2, gamma=0.5), [0.1, 0.1, 0.05, 0.05, 0.025]),
        (ExponentialDecay(gamma=0.9), [0.1 * 0.9**e for e in range(5)]),
        (
            CosineDecay(total=4),
            [
                0.1,
                0.1 * (1 + math.cos(math.pi / 4)) / 2,
                0.05,
                0.1 * (1 - math.cos(math.pi / 4)) / 2,
                1e-12,
            ],
        ),
        (
            CosineDecay(total=4, min_factor=0.1),
            [
                0.1,
                0.01 + 0.09 * (1 + math.cos(math.pi / 4)) / 2,
                0.055,
                0.01 + 0.09 * (1 - math.cos(math.pi / 4)) / 2,
                0.01,
            ],
        ),
        (TimeBasedDecay(decay=0.5), [0.1 / (1 + 0.5 * e) for e in range(5)]),
        (LearningRateSchedule(), [0.1] * 5),
    ],
)
def test_schedules_per_epoch(schedule, expected):
    lrs, _ = _epoch_lrs(schedule)
    assert lrs == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_schedule_per_batch():
    trainer = _trainer(callbacks=[ExponentialDecay(gamma=0.5, per="batch")], lr=0.8)
    history = trainer.fit(*_data(), epochs=2, batch_size=8)
    assert [b["lr"] for b in history.batches] == pytest.approx(
        [0.8 * 0.5**s for s in range(6)], rel=1e-12
    )
    with pytest.raises(ValueError, match="per"):
        StepDecay(2, per="step")


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: StepDecay(0), "step_size"),
        (lambda: StepDecay(2, gamma=0), "gamma"),
        (lambda: StepDecay(1.5), "step_size"),
        (lambda: ExponentialDecay(-0.5), "gamma"),
        (lambda: ExponentialDecay(float("nan")), "gamma"),
        (lambda: CosineDecay(0), "total"),
        (lambda: CosineDecay(10, min_factor=1.5), "min_factor"),
        (lambda: TimeBasedDecay(-1.0), "decay"),
    ],
)
def test_schedule_arguments_are_checked_up_front(make, words):
    with pytest.raises(ValueError, match=words):
        make()


def test_manual_lr_mid_run_rebases_the_schedule():
    class SetAtStep5(nl.Callback):
        def on_batch_end(self, trainer, batch, logs):
            if logs["step"] == 5:  # epoch 1, batch 1 (3 batches per epoch)
                trainer.set("lr", 1.0)

    trainer = _trainer(callbacks=[ExponentialDecay(gamma=0.5), SetAtStep5()], lr=0.8)
    history = trainer.fit(*_data(), epochs=4, batch_size=8)
    assert [b["lr"] for b in history.batches] == pytest.approx(
        [0.8, 0.8, 0.8, 0.4, 0.4, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25], rel=1e-12
    )


class _Records(nl.Callback):
    """Keeps every record it is handed (with batches, when asked)."""

    def __init__(self, batches: bool = False) -> None:
        self.record_batches = batches
        self.records: list = []

    def on_record(self, trainer, record):
        self.records.append(record)


def test_each_record_is_made_once_and_shared_by_every_callback(tmp_path, monkeypatch):
    """The CallbackList makes one record per event, epoch, end (and batch, for a callback
    that asks) and hands that same object to every callback, as the run log writes it."""
    from nnlib import runs
    from nnlib.callbacks import callback_list
    from nnlib.events import codec
    from nnlib.runs import logger as run_logger

    made: list[str] = []
    for module in (callback_list, codec, run_logger):  # the list's makers, and the others'
        for name in ("make", "fast_make"):
            real = getattr(module, name, None)
            if real is None:
                continue

            def counted(event_type, *args, _real=real, **kwargs):
                made.append(event_type)
                return _real(event_type, *args, **kwargs)

            monkeypatch.setattr(module, name, counted)
    first, second = _Records(batches=True), _Records()
    x, y = _data(n=64)
    logger = runs.RunLogger(run_dir=tmp_path / "run")
    trainer = _trainer([first, nl.Monitor(every=2), logger, second])
    trainer.fit(x, y, epochs=2, batch_size=16)
    assert first.records[-1].type == "end" and second.records[-1].type == "end"
    assert [r.type for r in first.records].count("batch") == 8
    # the other callback got the very same objects, batches left out
    assert second.records == [r for r in first.records if r.type != "batch"]
    shared = zip(second.records, (r for r in first.records if r.type != "batch"), strict=True)
    assert all(a is b for a, b in shared)
    # one record made per fact, however many callbacks read it (the logger's run_start and
    # its end line, written as the log closes, aside)
    assert sorted(made) == sorted([r.type for r in first.records] + ["run_start", "end"])
    # and the run log holds those records (the end and the run start aside)
    logged = [e for e in runs.read(tmp_path / "run") if e.type not in ("run_start",)]
    assert [(e.type, e.step) for e in logged] == [(r.type, r.step) for r in first.records]
    assert logged[-3:] == first.records[-3:]


def test_hooks_a_callback_defines_or_is_given_are_called_and_only_those():
    """The callback list calls a hook only where a callback defines it (Callback's own do
    nothing): in its class, in a subclass, or set on the instance, as a wrapper does."""
    calls: list[str] = []

    class Counts(nl.Callback):
        def on_batch_begin(self, trainer, batch):
            calls.append("class")

    class Sub(Counts):
        pass

    given = nl.Callback()
    given.on_batch_begin = lambda trainer, batch: calls.append("instance")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 2)).astype(np.float32), rng.integers(0, 2, 8)
    trainer = nl.Trainer(
        nl.build("2-2", (2,), seed=0),
        nl.SoftmaxCrossEntropy(),
        nl.SGD(lr=0.1),
        callbacks=[Counts(), Sub(), given],
    )
    trainer.fit(x, y, epochs=1, batch_size=4)
    assert calls == ["class", "class", "instance"] * 2
