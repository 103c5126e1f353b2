"""Losses: values, gradients (hand-computed and float64 gradcheck through small models),
stability, dtype and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

import nnlib as nl

TOL = 1e-6


def test_softmax_cross_entropy_value_and_gradient():
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    labels = np.array([2, 0])
    loss = nl.SoftmaxCrossEntropy()
    value = loss(logits, labels)
    first = math.log(math.e + math.e**2 + math.e**3) - 3.0
    assert isinstance(value, float)
    assert value == pytest.approx((first + math.log(3.0)) / 2, rel=1e-14)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(loss.probabilities, probs, rtol=1e-14)
    onehot = np.eye(3)[labels]
    np.testing.assert_allclose(loss.backward(), (probs - onehot) / 2, rtol=1e-14, atol=1e-16)


def test_softmax_cross_entropy_is_stable_for_extreme_logits():
    logits = np.array([[1e4, 0.0, -1e4], [-1e4, 0.0, 1e4]], dtype=np.float32)
    loss = nl.SoftmaxCrossEntropy()
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        value = loss(logits, np.array([0, 0]))
        grad = loss.backward()
    assert value == pytest.approx(1e4, rel=1e-6)  # sample 0 is right (0), sample 1 off by 2e4
    assert np.isfinite(grad).all()
    np.testing.assert_allclose(grad, [[0, 0, 0], [-0.5, 0, 0.5]], atol=1e-7)


def test_mse_value_and_gradient():
    predictions = np.array([[1.0, 2.0], [3.0, 5.0]])
    targets = np.array([[0.0, 2.0], [1.0, 1.0]])
    loss = nl.MSE()
    assert loss(predictions, targets) == pytest.approx((1 + 0 + 4 + 16) / 4, rel=1e-15)
    np.testing.assert_allclose(loss.backward(), 2 * (predictions - targets) / 4, rtol=1e-15)


def test_mse_accepts_flat_targets_for_a_single_output():
    loss = nl.MSE()
    assert loss(np.array([[1.0], [3.0]]), np.array([0.0, 1.0])) == pytest.approx(2.5)
    np.testing.assert_allclose(loss.backward(), [[1.0], [2.0]])


def _gradcheck_model(spec, shape, loss, targets, seed=0):
    model = nl.build(spec, shape[1:], seed=seed)
    x = np.random.default_rng(seed + 1).standard_normal(shape)
    return nl.gradcheck(model, x, targets, loss)


@pytest.mark.parametrize(
    "spec", ["identity", "dense(5) tanh dense(3)", "dense(6) sigmoid dense(4) relu dense(3)"]
)
def test_gradcheck_softmax_cross_entropy(spec):
    result = _gradcheck_model(spec, (6, 3), nl.SoftmaxCrossEntropy(), np.array([0, 1, 2, 2, 1, 0]))
    assert result.max_error < TOL, str(result)
    assert "input" in result.errors


@pytest.mark.parametrize(
    "spec, out",
    [
        ("identity", 3),
        ("dense(5) tanh dense(2)", 2),
        ("dense(4) softmax", 4),
        ("dense(4) sigmoid", 4),
    ],
)
def test_gradcheck_mse(spec, out):
    targets = np.random.default_rng(7).standard_normal((5, out))
    result = _gradcheck_model(spec, (5, 3), nl.MSE(), targets)
    assert result.max_error < TOL, str(result)


def test_gradcheck_mse_with_flat_targets():
    result = _gradcheck_model("dense(4) tanh dense(1)", (5, 3), nl.MSE(), np.arange(5.0))
    assert result.max_error < TOL, str(result)


@pytest.mark.parametrize(
    "loss, targets",
    [
        (nl.SoftmaxCrossEntropy(), np.array([0, 2, 1])),
        (nl.MSE(), np.random.default_rng(0).standard_normal((3, 3))),  # float64 targets
        (nl.MSE(), np.array([[0, 1, 2], [1, 1, 1], [2, 0, 1]])),  # integer targets
    ],
)
def test_float32_predictions_give_float32_gradients(loss, targets):
    predictions = np.random.default_rng(1).standard_normal((3, 3)).astype(np.float32)
    value = loss(predictions, targets)
    assert isinstance(value, float)
    assert loss.backward().dtype == np.float32


@pytest.mark.parametrize(
    "logits, labels, match",
    [
        (
            np.zeros(3),
            np.array([0, 1, 2]),
            r"SoftmaxCrossEntropy: expected logits of shape \(batch, classes\), got \(3,\)",
        ),
        (
            np.zeros((3, 4)),
            np.array([0, 1]),
            r"SoftmaxCrossEntropy: expected 3 integer labels, got an array of shape \(2,\)",
        ),
        (
            np.zeros((2, 4)),
            np.array([[0], [1]]),
            r"SoftmaxCrossEntropy: expected 2 integer labels, got an array of shape \(2, 1\)",
        ),
        (
            np.zeros((2, 4)),
            np.array([0.0, 1.0]),
            r"SoftmaxCrossEntropy: labels must be integer class indices, got dtype float64",
        ),
        (
            np.zeros((2, 4)),
            np.array([0, 4]),
            r"SoftmaxCrossEntropy: label 4 is out of range for 4 classes",
        ),
        (
            np.zeros((2, 4)),
            np.array([-1, 0]),
            r"SoftmaxCrossEntropy: label -1 is out of range for 4 classes",
        ),
    ],
)
def test_softmax_cross_entropy_bad_input(logits, labels, match):
    with pytest.raises(ValueError, match=match):
        nl.SoftmaxCrossEntropy()(logits, labels)


@pytest.mark.parametrize(
    "predictions, targets, match",
    [
        (
            np.zeros((4, 2)),
            np.zeros((4, 3)),
            r"MSE: predictions have shape \(4, 2\) but targets have shape \(4, 3\)",
        ),
        (
            np.zeros((4, 2)),
            np.zeros(4),
            r"MSE: predictions have shape \(4, 2\) but targets have "
            r"shape \(4,\)",
        ),
        (np.zeros((4, 1)), np.zeros(3), r"MSE: .*\(4, 1\).*\(3, 1\)"),
    ],
)
def test_mse_bad_input(predictions, targets, match):
    with pytest.raises(ValueError, match=match):
        nl.MSE()(predictions, targets)
