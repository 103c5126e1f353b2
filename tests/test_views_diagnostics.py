"""Diagnostics (issue 10, item 5): runs built to go wrong in one way each raise the matching
'warning' event, with an explanation and a suggestion, once; a healthy run raises none."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from views_helpers import spirals_run

from nnlib import events
from nnlib.callbacks.base import Callback
from nnlib.callbacks.diagnostics import Diagnostics
from nnlib.layers import ReLU, Sigmoid, Tanh


def warnings_of(tmp_path, prepare=None, **config) -> list[events.Diagnostic]:
    snapshots, _ = spirals_run(tmp_path, prepare=prepare, **config)
    return [s for s in snapshots if isinstance(s, events.Diagnostic)]


def kinds(found: list[events.Diagnostic]) -> list[tuple[str, str | None]]:
    return [(w.kind, w.layer) for w in found]


def test_a_healthy_run_raises_no_warning(tmp_path):
    assert warnings_of(tmp_path, arch="2-16-16-3", epochs=3) == []


def test_lr_10_on_spirals_is_a_loss_spike_with_the_advice_to_lower_it(tmp_path):
    found = warnings_of(tmp_path, arch="2-32-32-3", epochs=2, lr=10.0)
    spike = next(w for w in found if w.kind == "loss_spike")
    assert "learning rate" in spike.suggestion and spike.value > 3
    assert "warning: the loss jumped to" in spike.describe()
    assert len(kinds(found)) == len(set(kinds(found)))  # each once


def test_dead_relus(tmp_path):
    def kill(experiment) -> None:
        experiment.model.layers[0].params["b"].value[:] = -100.0

    # dead over the last measured batches, 256 samples at least (the Monitor measures every
    # 50 steps, batches of 64: 4 of them)
    found = warnings_of(tmp_path, prepare=kill, arch="2-16-16-3", epochs=10)
    assert ("dead_relu", "relu_1") in kinds(found)
    assert "vanishing_gradients" not in {w.kind for w in found}  # zero is dead, not vanishing


def test_relus_that_die_mid_run_offer_a_fork_from_before_they_died(tmp_path):
    """The evidence begins at the first measurement of the window that showed them dead
    (the Monitor measures every 50 steps, from 0): killed at step 120, the window is the
    measurements at 150, 200, 250, 300 (256 samples), and a checkpoint every 40 steps
    leaves steps 40..120 before it."""

    class Kill(Callback):
        def on_batch_end(self, trainer, batch, logs) -> None:
            if trainer.global_step == 120:
                trainer.model.layers[0].params["b"].value[:] = -100.0

    def kill_later(experiment) -> None:
        experiment.trainer.callbacks.append(Kill())

    found = warnings_of(
        tmp_path, prepare=kill_later, arch="2-16-16-3", epochs=20, checkpoint_every=40, lr=0.05
    )
    (dead,) = [w for w in found if (w.kind, w.layer) == ("dead_relu", "relu_1")]
    assert dead.step > 150 and dead.fix is None
    assert dead.fork == {"before": 150, "name": "lr", "value": 0.025}
    assert dead.fix_text() == "fork from before step 150 with lr 0.025"


def test_exploding_gradients_offer_a_fork_from_before_that_measurement(tmp_path):
    def scale(experiment) -> None:
        for layer in experiment.model.layers:
            if "W" in layer.params:
                layer.params["W"].value[:] *= 8.0

    found = warnings_of(tmp_path, prepare=scale, arch="2-64-64-64-3", epochs=1, lr=0.1)
    (exploding,) = [w for w in found if w.kind == "exploding_gradients"]
    assert exploding.fork == {"before": exploding.step, "name": "lr", "value": 0.05}
    assert exploding.fix is None and "halve it" in exploding.suggestion


def test_a_fork_suggestion_is_checked_as_strictly_as_a_fix():
    good = {"before": 150, "name": "lr", "value": 0.025}
    fields = {"kind": "dead_relu", "message": "m", "suggestion": "s"}
    assert events.make("warning", 300, {**fields, "fork": good}).fork == good
    for bad in (
        {"name": "lr", "value": 0.025},
        {**good, "before": -1},
        {**good, "before": True},
        {**good, "name": "momentum"},
        {**good, "value": float("nan")},
        {**good, "extra": 1},
    ):
        with pytest.raises(events.EventError, match="fork"):
            events.make("warning", 300, {**fields, "fork": bad})


def test_saturated_tanh(tmp_path):
    def blow_up(experiment) -> None:
        experiment.model.layers[0].params["W"].value[:] *= 100.0

    found = warnings_of(tmp_path, prepare=blow_up, arch="2-16-16-3:tanh", epochs=1)
    assert ("saturated", "tanh_1") in kinds(found)


def test_exploding_gradients_once_for_the_worst_layer(tmp_path):
    def scale(experiment) -> None:
        for layer in experiment.model.layers:
            if "W" in layer.params:
                layer.params["W"].value[:] *= 8.0

    found = warnings_of(tmp_path, prepare=scale, arch="2-64-64-64-3", epochs=1)
    exploding = [w for w in found if w.kind == "exploding_gradients"]
    assert len(exploding) == 1 and exploding[0].value > 100


def test_vanishing_gradients_in_a_deep_sigmoid_net(tmp_path):
    # 3 measurements in a row: every 50 steps of 22 a spirals epoch
    found = warnings_of(tmp_path, arch="2-16-16-16-16-16-16-16-16-16-16-3:sigmoid", epochs=5)
    vanishing = [w for w in found if w.kind == "vanishing_gradients"]
    assert len(vanishing) == 1 and vanishing[0].layer == "dense_1"


def test_overfitting_on_a_tiny_training_set(tmp_path):
    found = warnings_of(tmp_path, arch="2-128-128-3", epochs=30, subset=40)
    (overfit,) = [w for w in found if w.kind == "overfitting"]
    assert overfit.value > 0.10 and "weight decay" in overfit.suggestion


def fed(epoch_losses=(), batch_losses=(1.0,), lr=0.1, hparams=()) -> list[dict]:
    """The warnings a Diagnostics emits for these batch (then epoch) losses; `hparams` are
    (before batch or epoch index, old lr, new lr) changes. The first batch's loss is where
    the run started from."""
    emitted: list[dict] = []
    trainer = SimpleNamespace(
        epoch=0,
        global_step=0,
        emit=lambda event, **data: emitted.append(data),
        optimizer=SimpleNamespace(lr=lr, weight_decay=0.0),
    )
    diagnostics = Diagnostics()
    changes = {at: (old, new) for at, old, new in hparams}
    for losses, hook in ((batch_losses, "on_batch_end"), (epoch_losses, "on_epoch_end")):
        for index, loss in enumerate(losses):
            if index in changes:
                old, new = changes[index]
                trainer.optimizer.lr = new
                diagnostics.on_event(trainer, "hparam", {"name": "lr", "old": old, "new": new})
            trainer.epoch = trainer.global_step = index
            getattr(diagnostics, hook)(trainer, index, {"loss": loss})
    return emitted


def test_a_loss_rising_three_epochs_in_a_row():
    emitted = fed([0.9, 0.5, 0.6, 0.7, 0.8, 0.9])
    assert [(d["kind"], d["epoch"]) for d in emitted] == [("loss_rising", 4)]
    assert "0.5 → 0.8" in emitted[0]["message"]
    assert emitted[0]["fix"] == {"name": "lr", "value": 0.05}  # halve it
    assert "halve it" in emitted[0]["suggestion"]


def test_a_rise_within_noise_near_zero_loss_is_not_a_warning():
    # healthy runs measured 0.0024 → 0.0031 → 0.0049 → 0.0051, tiny against the 1.1 the run
    # started from, and a bump 0.037 → 0.151 → 0.344 that recovered (spirals, lr 0.1)
    assert fed([0.3, 0.05, 0.0024, 0.0031, 0.0049, 0.0051, 0.001], [1.1]) == []
    assert fed([0.5, 0.08, 0.037, 0.151, 0.344, 0.163, 0.05], [0.9]) == []


def test_an_epoch_loss_above_where_the_run_started_is_a_warning_at_once():
    # lr 3 on glyphs: the first epoch's loss 3.7e15 against 2.3 before any step
    (warning,) = fed([3.7e15, 2.4], [2.3])
    assert warning["kind"] == "loss_rising" and warning["epoch"] == 0
    assert "the run started from" in warning["message"]


def test_after_the_lr_was_lowered_only_the_epochs_since_count():
    # rising, lowered before epoch 3: the rise before says nothing about the new rate
    assert fed([0.9, 0.5, 0.6, 0.7, 0.8, 0.75], hparams=[(3, 0.1, 0.05)]) == []
    # still rising three epochs after the lowering: lower it further, not "too high: halve"
    emitted = fed([0.9, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9], hparams=[(3, 0.1, 0.05)])
    (warning,) = emitted
    assert "after the learning rate was lowered" in warning["suggestion"]
    assert warning["fix"] == {"name": "lr", "value": 0.025}


def test_after_the_lr_was_raised_the_advice_is_to_set_it_back():
    emitted = fed([0.9, 0.6, 0.5, 0.6, 0.7, 0.8], hparams=[(2, 0.05, 0.4)], lr=0.05)
    (warning,) = emitted
    assert "was raised" in warning["suggestion"] and "set it back" in warning["suggestion"]
    assert warning["fix"] == {"name": "lr", "value": 0.05}


def test_a_single_hard_batch_near_zero_loss_is_not_a_spike():
    # the loss starts at 1.1; a batch at 5x a tiny average is noise, not a problem
    batches = [1.1] * 3 + [0.5] * 7 + [0.01] * 30 + [0.05] + [0.01] * 10
    assert fed(batch_losses=batches) == []
    # nor one above the start, within 2x it (batches of 10: one hard batch is a big share)
    assert fed(batch_losses=[1.1] * 10 + [0.3] * 30 + [1.66]) == []


def test_two_batches_above_where_the_run_started_are_a_spike():
    batches = [1.1] * 3 + [0.5] * 7 + [0.2] * 30 + [2.5]
    assert fed(batch_losses=batches) == []  # once is chance (measured in healthy runs)
    (spike,) = fed(batch_losses=batches + [0.2] * 50 + [2.4])
    assert spike["kind"] == "loss_spike" and spike["value"] == 2.4
    assert "the second time in 51 batches" in spike["message"]
    assert fed(batch_losses=batches + [0.2] * 100 + [2.4]) == []  # too far apart


def measured(layers, optimizer=None) -> list[dict]:
    """The warnings a Diagnostics emits for one 'histograms' event measured on `layers` (each
    already run forward), flushed by the next batch end."""
    emitted: list[dict] = []
    trainer = SimpleNamespace(
        epoch=0,
        global_step=0,
        emit=lambda event, **data: emitted.append(data),
        optimizer=optimizer or SimpleNamespace(lr=0.1),
        model=SimpleNamespace(layers=layers),
    )
    diagnostics = Diagnostics()
    for step in range(4):  # the dead-unit window: 4 batches of 64 samples
        trainer.global_step = step
        diagnostics.on_event(trainer, "histograms", {"layers": {"dense_1": {"grad_norm": 1.0}}})
        diagnostics.on_batch_end(trainer, step, {})
    return emitted


def test_saturation_names_the_limits_of_each_activation():
    sigmoid, tanh = Sigmoid(name="sigmoid_1"), Tanh(name="tanh_1")
    sigmoid.forward(np.full((64, 3), 6.0))  # 0.9975: within 2% of 1
    tanh.forward(np.full((64, 3), -3.0))  # -0.995: within 2% of the range of -1
    messages = {w["layer"]: w["message"] for w in measured([sigmoid, tanh])}
    assert "stuck near 0 or 1" in messages["sigmoid_1"]
    assert "stuck near -1 or 1" in messages["tanh_1"]
    sigmoid.forward(np.full((64, 3), -2.0))  # 0.12: not near 0
    assert measured([sigmoid]) == []


def test_a_channel_of_an_image_relu_is_alive_where_any_position_is():
    relu = ReLU(name="relu_1")
    x = np.full((64, 4, 4, 4), -1.0)
    x[:, 2, 3, 0] = 1.0  # channel 0 alive at one position; channels 1-3 dead
    relu.forward(x)
    (dead,) = measured([relu])
    assert dead["kind"] == "dead_relu" and dead["value"] == 0.75
    assert dead["fork"] == {"before": 0, "name": "lr", "value": 0.05}
    x[:, 0, 0, 1:3] = 1.0  # half the channels alive: not more than half dead
    relu.forward(x)
    assert measured([relu]) == []


def test_overfitting_without_a_weight_decay_to_raise_offers_no_fix():
    emitted: list[dict] = []
    trainer = SimpleNamespace(
        epoch=0, emit=lambda event, **data: emitted.append(data), optimizer=SimpleNamespace()
    )
    diagnostics = Diagnostics()
    for epoch, gap in enumerate([0.05, 0.12, 0.2]):
        logs = {"loss": 1.0 - epoch / 10, "accuracy": 0.9, "val_accuracy": 0.9 - gap}
        diagnostics.on_epoch_end(trainer, epoch, logs)
    (overfit,) = emitted
    assert overfit["kind"] == "overfitting" and "fix" not in overfit
    assert "weight decay" in overfit["suggestion"]
