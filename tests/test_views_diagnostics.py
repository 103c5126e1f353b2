"""Diagnostics (issue 10, item 5): runs built to go wrong in one way each raise the matching
'warning' event, with an explanation and a suggestion, once; a healthy run raises none."""

from __future__ import annotations

from types import SimpleNamespace

from views_helpers import spirals_run

from nnlib import events
from nnlib.callbacks.diagnostics import Diagnostics


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

    found = warnings_of(tmp_path, prepare=kill, arch="2-16-16-3", epochs=1)
    assert ("dead_relu", "relu_1") in kinds(found)
    assert "vanishing_gradients" not in {w.kind for w in found}  # zero is dead, not vanishing


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
    found = warnings_of(tmp_path, arch="2-16-16-16-16-16-16-16-16-16-16-3:sigmoid", epochs=1)
    vanishing = [w for w in found if w.kind == "vanishing_gradients"]
    assert len(vanishing) == 1 and vanishing[0].layer == "dense_1"


def test_overfitting_on_a_tiny_training_set(tmp_path):
    found = warnings_of(tmp_path, arch="2-128-128-3", epochs=30, subset=40)
    (overfit,) = [w for w in found if w.kind == "overfitting"]
    assert overfit.value > 0.10 and "weight decay" in overfit.suggestion


def test_a_loss_rising_two_epochs_in_a_row():
    emitted: list[dict] = []
    trainer = SimpleNamespace(epoch=0, emit=lambda event, **data: emitted.append(data))
    diagnostics = Diagnostics()
    for epoch, loss in enumerate([1.0, 0.8, 0.9, 1.1, 1.3]):
        trainer.epoch = epoch
        diagnostics.on_epoch_end(trainer, epoch, {"loss": loss})
    assert [(d["kind"], d["epoch"]) for d in emitted] == [("loss_rising", 3)]
    assert "0.8 → 1.1" in emitted[0]["message"]
