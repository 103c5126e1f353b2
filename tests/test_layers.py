"""Every layer: float64 gradient checks (input and parameters), behaviour, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

import nnlib as nl
from nnlib.gradcheck import gradcheck

TOL = 1e-6


def _check(layer: nl.Layer, shape: tuple[int, ...], seed: int = 0) -> nl.GradcheckResult:
    x = np.random.default_rng(seed).standard_normal(shape)
    result = gradcheck(layer, x)
    expected = {"input"} | {f"{layer.name}.{key}" for key in layer.params}
    assert expected <= set(result.errors), result.errors
    assert result.max_error < TOL, str(result)
    return result


# -- gradient checks --------------------------------------------------------------------------


def test_gradcheck_dense():
    result = _check(nl.Dense(4, name="fc"), (3, 5))
    assert {"input", "fc.W", "fc.b"} == set(result.errors)


@pytest.mark.parametrize("init", ["he", "glorot", "normal"])
def test_gradcheck_dense_every_init(init):
    _check(nl.Dense(3, init=init, name="fc"), (2, 4))


CONV_CASES = [
    # (input shape, filters, kernel, stride, padding)
    ((2, 5, 5, 2), 3, 3, 1, 0),
    ((2, 6, 7, 2), 2, 3, 2, 0),
    ((2, 7, 7, 1), 2, 3, 3, 0),
    ((2, 5, 6, 2), 2, 3, 1, 1),
    ((2, 6, 5, 2), 2, 3, 2, 2),
    ((1, 7, 6, 2), 2, (3, 2), 3, 2),
    ((2, 6, 5, 2), 2, (2, 3), 1, 1),
    ((2, 5, 7, 2), 2, 3, 1, "same"),  # odd kernel
    ((2, 6, 5, 1), 2, 2, 1, "same"),  # even kernel: extra padding bottom/right
    ((2, 7, 6, 2), 2, 4, 2, "same"),
    ((1, 7, 8, 2), 2, 3, 3, "same"),
    ((2, 6, 7, 2), 2, (3, 2), 2, "same"),
    ((2, 6, 5, 2), 2, 3, 1, "valid"),
    ((2, 7, 6, 1), 2, (3, 2), (2, 1), "valid"),
    ((1, 4, 4, 2), 2, 4, 1, 0),  # kernel covers the whole input
    ((2, 5, 4, 2), 3, 1, 2, 0),  # 1x1 kernel, stride 2
]


@pytest.mark.parametrize(
    "case", CONV_CASES, ids=lambda c: "-".join(str(p).replace(" ", "") for p in c)
)
def test_gradcheck_conv(case):
    shape, filters, kernel, stride, padding = case
    layer = nl.Conv2D(filters, kernel, stride=stride, padding=padding, name="conv")
    result = _check(layer, shape)
    assert {"input", "conv.W", "conv.b"} == set(result.errors)


POOL_CASES = [
    # (input shape, pool, stride)
    ((2, 7, 7, 2), 3, 2),  # overlapping
    ((2, 5, 6, 2), 3, 1),  # overlapping
    ((2, 5, 5, 2), 2, 1),  # overlapping
    ((2, 6, 6, 2), 2, None),  # non-overlapping
    ((2, 6, 9, 1), 3, None),  # non-overlapping, non-square input
    ((1, 5, 7, 2), (2, 3), None),  # non-square window
    ((2, 7, 5, 1), 2, 3),  # stride > window
]


@pytest.mark.parametrize("cls", [nl.MaxPool2D, nl.AvgPool2D])
@pytest.mark.parametrize(
    "case", POOL_CASES, ids=lambda c: "-".join(str(p).replace(" ", "") for p in c)
)
def test_gradcheck_pooling(cls, case):
    shape, pool, stride = case
    _check(cls(pool, stride, name="pool"), shape)


@pytest.mark.parametrize(
    "layer, shape",
    [
        (nl.Flatten(name="flat"), (2, 3, 4, 2)),
        (nl.ReLU(name="act"), (3, 7)),
        (nl.LeakyReLU(0.1, name="act"), (3, 7)),
        (nl.LeakyReLU(name="act"), (2, 3, 3, 2)),
        (nl.Sigmoid(name="act"), (3, 7)),
        (nl.Tanh(name="act"), (3, 7)),
        (nl.Identity(name="act"), (3, 7)),
        (nl.Softmax(name="act"), (3, 7)),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, nl.Layer) else str(v),
)
def test_gradcheck_parameterless_layers(layer, shape):
    result = _check(layer, shape)
    assert set(result.errors) == {"input"}


@pytest.mark.parametrize("rate", [0.25, 0.5])
def test_gradcheck_dropout_in_train_mode(rate):
    layer = nl.Dropout(rate, name="drop")
    assert layer.training
    x = np.random.default_rng(0).standard_normal((4, 10))
    result = gradcheck(layer, x)
    assert result.max_error < TOL, str(result)
    # The check ran with a real mask: the same layer does drop units in training.
    layer.build((10,), np.random.default_rng(0))
    out = layer.forward(x)
    assert 0 < np.mean(out == 0) < 1


def test_gradcheck_detects_a_wrong_gradient():
    """The checker itself must be able to fail."""

    class BrokenTanh(nl.Tanh):
        def backward(self, grad, need_input_grad=True):
            return 1.01 * super().backward(grad, need_input_grad)

    class BrokenDense(nl.Dense):
        def backward(self, grad, need_input_grad=True):
            out = super().backward(grad, need_input_grad)
            self.params["b"].grad *= 0.5
            return out

    x = np.random.default_rng(0).standard_normal((3, 4))
    assert gradcheck(BrokenTanh(), x).max_error > 1e-3
    result = gradcheck(BrokenDense(2, name="d"), x)
    assert result.worst == "d.b" and result.errors["d.b"] > 1e-2
    assert result.errors["d.W"] < TOL


def test_gradcheck_leaves_the_float32_layer_untouched():
    layer = nl.Dense(3, name="d")
    layer.build((4,), np.random.default_rng(0))
    before = layer.params["W"].value.copy()
    gradcheck(layer, np.random.default_rng(1).standard_normal((2, 4)))
    assert layer.params["W"].value.dtype == np.float32
    np.testing.assert_array_equal(layer.params["W"].value, before)


def test_gradcheck_max_checks_samples_entries():
    layer = nl.Dense(20, name="d")
    x = np.random.default_rng(0).standard_normal((3, 30))
    result = gradcheck(layer, x, max_checks=10)
    assert result.max_error < TOL


def test_gradcheck_with_a_loss_asks_for_the_targets():
    model = nl.build("dense(3)", (2,))
    with pytest.raises(ValueError, match="^gradcheck: a loss needs the targets y$"):
        gradcheck(model, np.zeros((2, 2)), loss=nl.MSE())


# -- behaviour --------------------------------------------------------------------------------


def _built(layer: nl.Layer, shape: tuple[int, ...], seed: int = 0) -> nl.Layer:
    layer.build(shape, np.random.default_rng(seed))
    return layer


def test_dense_forward_is_xw_plus_b():
    layer = _built(nl.Dense(3), (4,))
    layer.params["b"].value[...] = [1.0, 2.0, 3.0]
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    expected = x @ layer.params["W"].value + layer.params["b"].value
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-6)
    assert layer.params["b"].regularize is False and layer.params["W"].regularize is True


def test_relu_and_leaky_relu_values_and_slopes():
    x = np.array([[-2.0, -0.5, 0.0, 0.5, 3.0]])
    relu, leaky = nl.ReLU(), nl.LeakyReLU(0.2)
    np.testing.assert_array_equal(relu.forward(x), [[0, 0, 0, 0.5, 3.0]])
    np.testing.assert_array_equal(relu.backward(np.ones_like(x)), [[0, 0, 0, 1, 1]])
    np.testing.assert_allclose(leaky.forward(x), [[-0.4, -0.1, 0, 0.5, 3.0]])
    np.testing.assert_allclose(leaky.backward(np.ones_like(x)), [[0.2, 0.2, 0.2, 1, 1]])


def test_sigmoid_tanh_softmax_are_stable_for_huge_inputs():
    x = np.array([[-1000.0, 0.0, 1000.0]], dtype=np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        np.testing.assert_allclose(nl.Sigmoid().forward(x), [[0.0, 0.5, 1.0]], atol=1e-7)
        np.testing.assert_allclose(nl.Tanh().forward(x), [[-1.0, 0.0, 1.0]], atol=1e-7)
        probs = nl.Softmax().forward(x)
    np.testing.assert_allclose(probs, [[0.0, 0.0, 1.0]], atol=1e-7)
    rows = nl.Softmax().forward(np.random.default_rng(0).standard_normal((4, 6)))
    np.testing.assert_allclose(rows.sum(axis=1), 1.0, rtol=1e-12)


def test_dropout_scales_in_train_and_is_identity_in_eval():
    layer = _built(nl.Dropout(0.25), (1000,))
    x = np.ones((4, 1000), dtype=np.float32)
    out = layer.forward(x)
    kept = out != 0
    np.testing.assert_allclose(out[kept], 1 / 0.75, rtol=1e-6)
    assert abs(kept.mean() - 0.75) < 0.03
    np.testing.assert_array_equal(layer.backward(x), out)  # the same mask on the way back
    layer.training = False
    np.testing.assert_array_equal(layer.forward(x), x)
    np.testing.assert_array_equal(layer.backward(x), x)


def test_dropout_rate_zero_is_identity_in_training():
    layer = _built(nl.Dropout(0.0), (5,))
    x = np.random.default_rng(0).standard_normal((3, 5))
    np.testing.assert_array_equal(layer.forward(x), x)


def test_flatten_round_trip():
    layer = _built(nl.Flatten(), (3, 4, 2))
    x = np.arange(2 * 3 * 4 * 2, dtype=np.float32).reshape(2, 3, 4, 2)
    out = layer.forward(x)
    assert out.shape == (2, 24)
    np.testing.assert_array_equal(out[1], x[1].ravel())
    np.testing.assert_array_equal(layer.backward(out), x)


@pytest.mark.parametrize(
    "size, kernel, stride", [(7, 3, 1), (7, 2, 1), (7, 3, 2), (8, 4, 3), (5, 5, 2), (1, 3, 1)]
)
def test_conv_same_padding_output_is_ceil_input_over_stride(size, kernel, stride):
    layer = _built(nl.Conv2D(2, kernel, stride=stride, padding="same"), (size, size + 1, 1))
    assert layer.output_shape == (math.ceil(size / stride), math.ceil((size + 1) / stride), 2)


@pytest.mark.parametrize(
    "layer, shape, expected",
    [
        (nl.Conv2D(4, 3), (8, 7, 2), (6, 5, 4)),
        (nl.Conv2D(4, 3, padding=1), (8, 7, 2), (8, 7, 4)),
        (nl.Conv2D(4, (3, 2), stride=2), (8, 7, 2), (3, 3, 4)),
        (nl.Conv2D(4, 3, stride=3, padding=2), (8, 7, 2), (4, 3, 4)),
        (nl.MaxPool2D(2), (8, 7, 2), (4, 3, 2)),
        (nl.MaxPool2D(3, 2), (8, 7, 2), (3, 3, 2)),
        (nl.AvgPool2D((2, 3), 1), (8, 7, 2), (7, 5, 2)),
        (nl.Flatten(), (8, 7, 2), (112,)),
        (nl.Dense(5), (9,), (5,)),
    ],
)
def test_output_shapes(layer, shape, expected):
    assert _built(layer, shape).output_shape == expected
    out = layer.forward(np.zeros((2, *shape), dtype=np.float32))
    assert out.shape == (2, *expected)


# -- bad input: a clear ValueError naming the layer and the values ------------------------------


@pytest.mark.parametrize(
    "layer, built, given",
    [
        (nl.Dense(3, name="dense_7"), (4,), (2, 5)),
        (nl.Conv2D(3, 3, name="conv_2"), (6, 6, 2), (2, 6, 6, 3)),
        (nl.MaxPool2D(2, name="maxpool_1"), (6, 6, 2), (2, 6, 6)),
        (nl.ReLU(name="relu_3"), (10,), (2, 11)),
        (nl.Flatten(name="flatten_1"), (2, 2, 1), (2, 4)),
    ],
)
def test_wrong_input_shape_to_a_built_layer(layer, built, given):
    _built(layer, built)
    with pytest.raises(ValueError) as error:
        layer.forward(np.zeros(given, dtype=np.float32))
    message = str(error.value)
    assert layer.name in message
    assert f"(batch, {', '.join(map(str, built))})" in message
    assert str(given) in message


def test_wrong_input_shape_to_an_unnamed_layer_names_its_class():
    layer = _built(nl.Dense(3), (4,))
    with pytest.raises(
        ValueError,
        match=r"^Dense: expected input of shape \(batch, 4\), "
        r"got \(2, 5\)",
    ):
        layer.forward(np.zeros((2, 5)))


def test_dense_on_an_image_asks_for_flatten():
    with pytest.raises(
        ValueError,
        match=r"dense_1: Dense needs a flat input .*\(4, 4, 1\).*"
        r"Flatten",
    ):
        nl.Dense(3, name="dense_1").build((4, 4, 1), np.random.default_rng(0))


def test_conv_on_a_flat_input_is_rejected():
    with pytest.raises(ValueError, match=r"conv_1: Conv2D needs an image input.*\(10,\)"):
        nl.Conv2D(3, 3, name="conv_1").build((10,), np.random.default_rng(0))


@pytest.mark.parametrize(
    "layer, shape, window, padded",
    [
        (nl.Conv2D(2, 5, name="conv_1"), (4, 6, 1), "5x5", "4x6"),
        (nl.Conv2D(2, 7, padding=1, name="conv_1"), (4, 4, 1), "7x7", "6x6 (padded from 4x4)"),
        (nl.Conv2D(2, (3, 2), name="conv_1"), (2, 5, 1), "3x2", "2x5"),
        (nl.MaxPool2D(3, name="maxpool_1"), (2, 2, 4), "3x3", "2x2"),
        (nl.AvgPool2D((1, 4), name="avgpool_1"), (5, 3, 1), "1x4", "5x3"),
    ],
)
def test_window_larger_than_its_input(layer, shape, window, padded):
    with pytest.raises(ValueError) as error:
        _built(layer, shape)
    message = str(error.value)
    assert message.startswith(f"{layer.name}: window {window} is larger than its input {padded}")


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: nl.Dense(0), r"Dense: units must be a positive integer, got 0"),
        (lambda: nl.Dense(-4), r"Dense: units must be a positive integer, got -4"),
        (lambda: nl.Dense(2.5), r"Dense: units must be a positive integer, got 2.5"),
        (lambda: nl.Dense(True), r"Dense: units must be a positive integer, got True"),
        (lambda: nl.Dense(float("nan")), r"Dense: units must be a positive integer, got nan"),
        (lambda: nl.Dense(float("inf")), r"Dense: units must be a positive integer, got inf"),
        (lambda: nl.Dense("8"), r"Dense: units must be a positive integer, got '8'"),
        (
            lambda: nl.Dense(np.int64(0)),
            r"Dense: units must be a positive integer, got np.int64\(0\)",
        ),
        (lambda: nl.Dense(3, init="zeros"), r"Dense: init must be one of he, glorot, normal"),
        (lambda: nl.Conv2D(0, 3), r"Conv2D: filters must be a positive integer, got 0"),
        (lambda: nl.Conv2D(-1, 3), r"Conv2D: filters must be a positive integer, got -1"),
        (lambda: nl.Conv2D(4, 0), r"Conv2D: kernel_size must be a positive integer .*got 0"),
        (lambda: nl.Conv2D(4, (3, 0)), r"Conv2D: kernel_size .*got \(3, 0\)"),
        (lambda: nl.Conv2D(4, 3, stride=0), r"Conv2D: stride .*got 0"),
        (lambda: nl.Conv2D(4, 3, padding=-1), r"Conv2D: padding must be .*got -1"),
        (lambda: nl.Conv2D(4, 3, padding="full"), r"Conv2D: padding must be .*got 'full'"),
        (lambda: nl.MaxPool2D(0), r"MaxPool2D: pool_size .*got 0"),
        (lambda: nl.AvgPool2D(2, stride=(1, 2, 3)), r"AvgPool2D: stride .*got \(1, 2, 3\)"),
        (lambda: nl.Dropout(1.0), r"Dropout: rate must be in \[0.0, 1.0\), got 1.0"),
        (lambda: nl.Dropout(-0.1), r"Dropout: rate must be in \[0.0, 1.0\), got -0.1"),
        (lambda: nl.Dropout(1.5), r"Dropout: rate must be in \[0.0, 1.0\), got 1.5"),
        (lambda: nl.Dropout(float("nan")), r"Dropout: rate must be finite, got nan"),
        (lambda: nl.Dropout("half"), r"Dropout: rate must be a number, got 'half'"),
        (lambda: nl.LeakyReLU(-0.5), r"LeakyReLU: alpha must be in \[0.0, 1.0\)"),
    ],
)
def test_bad_constructor_values(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_numpy_integers_are_accepted_where_ints_are():
    classes = np.array([0, 3, 9]).max() + 1  # np.int64, as computed from labels
    assert nl.Dense(classes).units == 10 and type(nl.Dense(classes).units) is int
    assert nl.Conv2D(np.int32(4), 3).filters == 4
    assert nl.Dense(np.float64(3.0)).units == 3
