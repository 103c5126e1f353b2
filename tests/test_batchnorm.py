"""BatchNorm: Keras's formulas (checked against a per-element formula written out here),
gradients, moving statistics as non-trainable state that is saved, loaded and never touched by
an optimizer, memory planning, training a LeNet-5, and its place in the dashboard."""

from __future__ import annotations

import math
import zipfile

import numpy as np
import pytest

import nnlib as nl
from nnlib import datasets as nds
from nnlib.callbacks import Monitor
from nnlib.model import check_fits
from nntui.bridge import Bridge
from nntui.runstate import RunState
from nntui.stream import Update
from nntui.widgets.layers import LayersPanel

TOL = 1e-6
LENET_BN = (
    "conv(6,5,pad=2) batchnorm relu maxpool(2) conv(16,5) batchnorm relu maxpool(2) "
    "dense(120) relu dense(84) relu dense(10)"
)


def _data(shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype) * 2 + 0.5


def _built(shape, dtype=np.float64, **kwargs) -> nl.BatchNorm:
    layer = nl.BatchNorm(name="bn", **kwargs)
    layer.dtype = np.dtype(dtype)
    layer.build(shape, np.random.default_rng(0))
    return layer


def _by_element(x, gamma, beta, mean, variance, eps):
    """gamma * (x - mean) / sqrt(variance + eps) + beta, one element at a time."""
    out = np.empty_like(x)
    for index in np.ndindex(x.shape):
        f = index[-1]
        out[index] = gamma[f] * (x[index] - mean[f]) / math.sqrt(variance[f] + eps) + beta[f]
    return out


def _batch_moments(x):
    """Per feature (last axis): the mean and the biased variance, by plain loops."""
    features = x.shape[-1]
    rows = x.reshape(-1, features)
    mean = [sum(float(v) for v in rows[:, f]) / len(rows) for f in range(features)]
    variance = [
        sum((float(v) - mean[f]) ** 2 for v in rows[:, f]) / len(rows) for f in range(features)
    ]
    return np.array(mean), np.array(variance)


@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 5, 3)], ids=["dense", "nhwc"])
def test_training_forward_and_moving_statistics_follow_keras(shape):
    layer = _built(shape[1:], momentum=0.9, epsilon=1e-3)
    layer.params["gamma"].value[...] = np.linspace(0.5, 2.0, shape[-1])
    layer.params["beta"].value[...] = np.linspace(-1.0, 1.0, shape[-1])
    x = _data(shape)
    out = layer.forward(x)
    mean, variance = _batch_moments(x)
    gamma, beta = layer.params["gamma"].value, layer.params["beta"].value
    np.testing.assert_allclose(out, _by_element(x, gamma, beta, mean, variance, 1e-3), atol=1e-12)
    # moving = moving * momentum + batch * (1 - momentum), from 0 and 1, biased variance.
    np.testing.assert_allclose(layer.params["moving_mean"].value, 0.1 * mean, atol=1e-12)
    np.testing.assert_allclose(
        layer.params["moving_variance"].value, 0.9 + 0.1 * variance, atol=1e-12
    )


@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 5, 3)], ids=["dense", "nhwc"])
def test_eval_mode_uses_the_moving_statistics_and_leaves_them(shape):
    layer = _built(shape[1:])
    moving_mean = np.linspace(-0.5, 0.5, shape[-1])
    moving_variance = np.linspace(0.5, 3.0, shape[-1])
    layer.params["moving_mean"].value[...] = moving_mean
    layer.params["moving_variance"].value[...] = moving_variance
    layer.params["gamma"].value[...] = 1.5
    layer.training = False
    x = _data(shape, seed=1)
    out = layer.forward(x)
    gamma, beta = layer.params["gamma"].value, layer.params["beta"].value
    expected = _by_element(x, gamma, beta, moving_mean, moving_variance, 1e-3)
    np.testing.assert_allclose(out, expected, atol=1e-12)
    np.testing.assert_array_equal(layer.params["moving_mean"].value, moving_mean)
    np.testing.assert_array_equal(layer.params["moving_variance"].value, moving_variance)


@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 5, 3)], ids=["dense", "nhwc"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_gradcheck_float64(shape, training):
    layer = _built(shape[1:])
    layer.params["gamma"].value[...] = np.linspace(0.5, 2.0, shape[-1])
    layer.params["moving_variance"].value[...] = 2.0
    layer.training = training
    result = nl.gradcheck(layer, _data(shape, seed=2))
    assert set(result.errors) == {"input", "bn.gamma", "bn.beta"}  # moving stats: no gradient
    assert result.max_error < TOL, str(result)


def test_gradcheck_in_a_model_with_both_input_kinds():
    model = nl.build(
        "conv(3,3) tanh batchnorm(momentum=0.5) dense(5) tanh batchnorm dense(3)", (5, 5, 2)
    )
    result = nl.gradcheck(
        model, _data((4, 5, 5, 2), seed=3), np.array([0, 1, 2, 1]), nl.SoftmaxCrossEntropy()
    )
    assert result.max_error < TOL, str(result)


def test_gamma_and_beta_are_trained_without_decay_and_the_moving_statistics_not_at_all():
    model = nl.build("batchnorm dense(2)", (3,), seed=0)
    layer = model["batchnorm_1"]
    params = layer.params
    assert [(k, p.trainable, p.regularize) for k, p in params.items()] == [
        ("gamma", True, False),
        ("beta", True, False),
        ("moving_mean", False, False),
        ("moving_variance", False, False),
    ]
    for param in params.values():
        param.grad[...] = 1.0  # even a stray gradient must not move the moving statistics
    params["gamma"].grad[...] = 0.0
    before = model.get_weights()
    optimizer = nl.SGD(lr=0.1, momentum=0.9, weight_decay=0.5)
    optimizer.step(model.parameters())
    after = model.get_weights()
    for key in ("gamma", "moving_mean", "moving_variance"):  # zero grad, no decay; skipped
        np.testing.assert_array_equal(after[f"batchnorm_1.{key}"], before[f"batchnorm_1.{key}"])
    np.testing.assert_allclose(after["batchnorm_1.beta"], before["batchnorm_1.beta"] - 0.1)
    assert set(optimizer.state) == {p.name for p in model.parameters() if p.trainable}
    adam = nl.Adam()
    adam.step(model.parameters())
    np.testing.assert_array_equal(model.get_weights()["batchnorm_1.moving_mean"], 0.0)


def test_a_non_finite_batch_leaves_the_moving_statistics_alone():
    layer = _built((2,), dtype=np.float32)
    layer.forward(np.array([[1.0, np.nan], [2.0, 3.0]], np.float32))
    np.testing.assert_array_equal(layer.params["moving_mean"].value, [0.0, 0.0])
    np.testing.assert_array_equal(layer.params["moving_variance"].value, [1.0, 1.0])


def test_save_and_load_round_trip_the_moving_statistics(tmp_path):
    model = nl.build(
        "conv(4,3) batchnorm relu dense(3) batchnorm(momentum=0.8,epsilon=1e-05)", (6, 6, 1)
    )
    x = _data((8, 6, 6, 1), dtype=np.float32)
    for _ in range(3):
        model.forward(x)  # training mode: the moving statistics move
    assert not np.all(model["batchnorm_1"].params["moving_mean"].value == 0)
    path = model.save(tmp_path / "bn.npz")
    same = nl.load(path)
    assert (
        same.spec
        == model.spec
        == ("conv(4,3) batchnorm relu dense(3) batchnorm(momentum=0.8,epsilon=1e-05)")
    )
    for name, value in model.get_weights().items():
        np.testing.assert_array_equal(same.get_weights()[name], value)
        assert same.named_parameters()[name].trainable == model.named_parameters()[name].trainable
    np.testing.assert_array_equal(same.predict(x), model.predict(x))


def test_the_loader_checks_the_moving_statistics_like_any_weight(tmp_path):
    model = nl.build("dense(3) batchnorm", (4,))
    path = model.save(tmp_path / "bn.npz")
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    weights = dict(np.load(path))
    weights["param/batchnorm_1.moving_variance"] = np.ones(5, np.float32)
    np.savez(tmp_path / "bad.npz", **weights)
    with pytest.raises(
        ValueError,
        match=r"batchnorm_1\.moving_variance has shape \(5,\), the architecture needs \(3,\)",
    ):
        nl.load(tmp_path / "bad.npz")
    del weights["param/batchnorm_1.moving_variance"]
    np.savez(tmp_path / "missing.npz", **weights)
    with pytest.raises(ValueError, match=r"missing batchnorm_1\.moving_variance"):
        nl.load(tmp_path / "missing.npz")
    assert "param/batchnorm_1.moving_mean.npy" in members


def test_spec_arguments_and_errors():
    assert nl.build("bn(0.9, 0.01)", (4,)).spec == "batchnorm(momentum=0.9,epsilon=0.01)"
    for text, fragment in [
        ("batchnorm(momentum=1.5)", "BatchNorm: momentum must be in [0.0, 1.0), got 1.5"),
        ("batchnorm(epsilon=0)", "BatchNorm: epsilon must be > 0, got 0"),
        ("batchnorm(1,2,3)", "too many arguments (3)"),
    ]:
        with pytest.raises(nl.SpecError) as error:
            nl.build(text, (4,))
        assert fragment in str(error.value)
        assert "expected batchnorm([momentum=0.99], [epsilon=0.001])" in str(error.value)


def test_memory_planning_counts_it_before_building():
    summary = nl.spec.plan(LENET_BN, (28, 28, 1), batch_size=32)
    rows = {row.name: row for row in summary.layers}
    assert rows["batchnorm_1"].params == 4 * 6 and rows["batchnorm_2"].params == 4 * 16
    assert dict(rows["batchnorm_2"].param_shapes) == {
        "gamma": (16,),
        "beta": (16,),
        "moving_mean": (16,),
        "moving_variance": (16,),
    }
    assert rows["batchnorm_1"].cache_bytes == 28 * 28 * 6 * 4  # the normalised input
    assert summary.total_params == 61_706 + 4 * (6 + 16)
    model = nl.build(LENET_BN, (28, 28, 1), batch_size=32)
    assert model.summary() == summary
    assert sum(p.value.size for p in model.parameters()) == summary.total_params
    check_fits(summary, 32)


def test_lenet5_with_batchnorm_learns_glyphs_in_one_short_epoch():
    # the distortion this was measured at (the default became 1.5, for the app's demo)
    data = nds.prepare(nds.load("glyphs", n_train=640, n_test=10, seed=0, augment=1.0))
    model = nl.build(LENET_BN, data.input_shape, seed=0)
    trainer = nl.Trainer(model, nl.SoftmaxCrossEntropy(), nl.SGD(lr=0.05, momentum=0.9))
    history = trainer.fit(data.x_train, data.y_train, epochs=1, batch_size=20, seed=0)
    losses = [batch["loss"] for batch in history.batches]
    # Measured: the mean loss of the first five batches 2.73, of the last five 1.15.
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5]), losses
    moving = model["batchnorm_1"].params["moving_variance"].value
    assert moving.dtype == np.float32 and not np.all(moving == 1.0)


def test_the_monitor_and_the_layers_panel_show_gamma_as_its_weight():
    data = nds.prepare(nds.load("glyphs", n_train=60, n_test=10, seed=0))
    model = nl.build("conv(4,3) batchnorm relu maxpool(2) dense(10)", data.input_shape, seed=0)
    sent: list[Update] = []
    events: list[dict] = []

    class Collect(nl.Callback):
        def on_event(self, trainer, event, data):
            if event == "histograms":
                events.append(data)

    trainer = nl.Trainer(
        model,
        nl.SoftmaxCrossEntropy(),
        nl.SGD(lr=0.05),
        callbacks=[Monitor(every=1), Collect(), Bridge(sent.append, interval=0.0)],
    )
    trainer.fit(data.x_train, data.y_train, epochs=1, batch_size=20, seed=0)
    first, last = events[0]["layers"], events[-1]["layers"]
    gamma = first["batchnorm_1"]["weights"]  # all ones: once a crash in np.histogram
    assert gamma["lo"] == 1.0 and gamma["counts"][0] == 4 and sum(gamma["counts"]) == 4
    assert set(last) == {"conv_1", "batchnorm_1", "relu_1", "dense_1"}
    assert last["batchnorm_1"]["grad_norm"] > 0 and "update_ratio" in last["batchnorm_1"]
    state = RunState("glyphs")
    for snapshot in sent:
        state.apply(snapshot)
    assert state.layer_names() == ["conv_1", "batchnorm_1", "dense_1"]
    panel = LayersPanel(state)
    panel.selected = 1
    picture = panel.draw(100, 30).plain
    assert "batchnorm_1 (2/3) weights" in picture
    assert "no data for this layer" not in picture
