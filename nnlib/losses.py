"""Losses. Each returns the mean loss over the batch as a Python float, and `backward()`
returns dL/d(predictions) for the last call."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class Loss(ABC):
    name = "loss"
    task = "classification"

    @abstractmethod
    def forward(self, predictions: np.ndarray, targets: np.ndarray) -> float:
        """Mean loss over the batch."""

    @abstractmethod
    def backward(self) -> np.ndarray:
        """dL/d(predictions) for the last forward call."""

    def __call__(self, predictions: np.ndarray, targets: np.ndarray) -> float:
        return self.forward(predictions, targets)


class SoftmaxCrossEntropy(Loss):
    """Softmax followed by cross-entropy, fused: takes logits and integer class labels.

    The log-sum-exp is shifted by the row max so any finite logits are safe, and the gradient
    is the fused (softmax(logits) - onehot(labels)) / N.
    """

    name = "softmax_cross_entropy"
    task = "classification"

    def forward(self, predictions: np.ndarray, targets: np.ndarray) -> float:
        logits, labels = predictions, np.asarray(targets)
        if logits.ndim != 2:
            raise ValueError(
                f"SoftmaxCrossEntropy: expected logits of shape (batch, classes), "
                f"got {logits.shape}"
            )
        if labels.shape != (logits.shape[0],):
            raise ValueError(
                f"SoftmaxCrossEntropy: expected {logits.shape[0]} integer labels, "
                f"got an array of shape {labels.shape}"
            )
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                f"SoftmaxCrossEntropy: labels must be integer class indices, "
                f"got dtype {labels.dtype}"
            )
        classes = logits.shape[1]
        if labels.size and (labels.min() < 0 or labels.max() >= classes):
            bad = labels[(labels < 0) | (labels >= classes)][0]
            raise ValueError(
                f"SoftmaxCrossEntropy: label {bad} is out of range for {classes} classes"
            )
        shifted = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        total = exp.sum(axis=1, keepdims=True)
        self._probs = exp / total
        self._labels = labels
        picked = shifted[np.arange(len(labels)), labels]
        return float(np.mean(np.log(total[:, 0]) - picked))

    def backward(self) -> np.ndarray:
        grad = self._probs.copy()
        grad[np.arange(len(self._labels)), self._labels] -= 1.0
        grad /= len(self._labels)
        return grad

    @property
    def probabilities(self) -> np.ndarray:
        """Softmax of the last logits, for accuracy and confusion matrices."""
        return self._probs


class MSE(Loss):
    """Mean squared error over every output of every sample, for regression."""

    name = "mse"
    task = "regression"

    def forward(self, predictions: np.ndarray, targets: np.ndarray) -> float:
        targets = np.asarray(targets)
        if targets.ndim == 1 and predictions.ndim == 2 and predictions.shape[1] == 1:
            targets = targets[:, None]
        if targets.shape != predictions.shape:
            raise ValueError(
                f"MSE: predictions have shape {predictions.shape} but targets "
                f"have shape {targets.shape}"
            )
        self._diff = predictions - targets.astype(predictions.dtype, copy=False)
        return float(np.mean(self._diff * self._diff))

    def backward(self) -> np.ndarray:
        return self._diff * (2.0 / self._diff.size)


def loss_for(task: str) -> Loss:
    """The loss nnlib trains a task with: softmax cross-entropy on logits for classification,
    MSE for regression (the CLI, the app and its spec warnings agree through this)."""
    return SoftmaxCrossEntropy() if task == "classification" else MSE()
