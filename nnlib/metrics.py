"""Metrics computed from predictions: accuracy, confusion matrix, precision and recall."""

from __future__ import annotations

import numpy as np

from .losses import Loss


def check_finite(name: str, array: np.ndarray) -> None:
    """Raise a ValueError naming `name` and the first sample that holds NaN or inf."""
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = np.flatnonzero(~np.isfinite(array.reshape(len(array), -1)).all(axis=1))[0]
        raise ValueError(f"{name} holds NaN or inf (first at sample {bad})")


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose largest output is the label; 0.0 for no rows."""
    return float(np.mean(np.argmax(logits, axis=1) == labels)) if len(labels) else 0.0


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """counts[true, predicted] as int64."""
    # int64 first: uint8 labels (raw IDX files, user arrays) times num_classes wrap at 256.
    return np.bincount(
        np.asarray(labels, dtype=np.int64) * num_classes + predicted,
        minlength=num_classes * num_classes,
    ).reshape(num_classes, num_classes)


def precision_recall(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class precision (column-wise) and recall (row-wise); 0 where undefined."""
    diagonal = np.diag(matrix).astype(np.float64)
    predicted, actual = matrix.sum(axis=0), matrix.sum(axis=1)
    precision = np.divide(diagonal, predicted, out=np.zeros_like(diagonal), where=predicted > 0)
    recall = np.divide(diagonal, actual, out=np.zeros_like(diagonal), where=actual > 0)
    return precision, recall


def evaluate_predictions(outputs: np.ndarray, targets: np.ndarray, loss: Loss) -> dict[str, float]:
    """Mean loss, plus accuracy for a classification loss."""
    result = {"loss": loss(outputs, targets)}
    if getattr(loss, "task", "classification") == "classification":
        result["accuracy"] = accuracy(outputs, targets)
    return result
