"""Metrics computed from predictions: accuracy, confusion matrix, precision/recall, evaluate."""

from __future__ import annotations

import numpy as np
import pytest

import nnlib as nl
from nnlib.metrics import (
    accuracy,
    check_finite,
    confusion_matrix,
    evaluate_predictions,
    precision_recall,
)


def test_accuracy():
    logits = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert accuracy(logits, np.array([1, 0, 0])) == pytest.approx(2 / 3)
    assert accuracy(np.zeros((0, 2)), np.zeros(0, np.int64)) == 0.0


def test_confusion_matrix_and_precision_recall():
    matrix = confusion_matrix(np.array([0, 1, 2, 2]), np.array([0, 2, 2, 1]), 3)
    np.testing.assert_array_equal(matrix, [[1, 0, 0], [0, 0, 1], [0, 1, 1]])
    precision, recall = precision_recall(matrix)
    np.testing.assert_allclose(precision, [1.0, 0.0, 0.5])
    np.testing.assert_allclose(recall, [1.0, 0.0, 0.5])
    precision, recall = precision_recall(confusion_matrix(np.array([0, 0]), np.array([0, 0]), 3))
    np.testing.assert_array_equal(precision, [1, 0, 0])  # undefined -> 0, no warning
    np.testing.assert_array_equal(recall, [1, 0, 0])


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.int64])
def test_confusion_matrix_with_small_integer_labels(dtype):
    # 16 * 17 + 16 = 288 does not fit in a uint8.
    labels = np.array([16, 3, 16], dtype=dtype)
    predicted = np.array([16, 5, 0], dtype=dtype)
    matrix = confusion_matrix(labels, predicted, 17)
    assert matrix.sum() == 3
    assert (matrix[16, 16], matrix[3, 5], matrix[16, 0]) == (1, 1, 1)


def test_check_finite_names_the_array_and_the_sample():
    check_finite("logits", np.zeros((2, 3)))
    check_finite("labels", np.array([1, 2]))
    with pytest.raises(ValueError, match=r"logits holds NaN or inf \(first at sample 1\)"):
        check_finite("logits", np.array([[1.0, 2.0], [0.0, np.inf], [np.nan, 0.0]]))


def test_evaluate_predictions():
    logits = np.array([[2.0, 0.0], [0.0, 2.0]])
    result = evaluate_predictions(logits, np.array([0, 0]), nl.SoftmaxCrossEntropy())
    assert result["accuracy"] == 0.5
    assert result["loss"] == pytest.approx((np.log1p(np.exp(-2)) + np.log1p(np.exp(2))) / 2)
    assert evaluate_predictions(logits, np.zeros((2, 2)), nl.MSE()) == {"loss": 2.0}
