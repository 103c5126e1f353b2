"""One training pass of a batch, or of a part of one: what a thread replica, a replica
process and one thread alike run (nnlib.replicas, nnlib.replica_process)."""

from __future__ import annotations

import math

import numpy as np

from .losses import Loss
from .model import Sequential


def _quiet() -> np.errstate:
    """Overflow and invalid values in a forward pass are a divergence the trainer reports,
    not warns of. numpy's error state is per thread, so each part's thread enters it."""
    return np.errstate(over="ignore", invalid="ignore")


def train_pass(
    model: Sequential, loss: Loss, x: np.ndarray, y: np.ndarray, share: float = 1.0
) -> tuple[float, np.ndarray]:
    """Forward, loss and backward of a batch (or of a part that is `share` of one): the mean
    loss and the outputs, and the gradients in the model's parameters. A loss that is not
    finite gets no backward (the trainer skips that update). The loss is a batch mean, so a
    part's loss gradient is scaled by its share: the parts' gradients then add up to the
    batch's."""
    with _quiet():
        outputs = model.forward(x)
        value = loss(outputs, y)
    if math.isfinite(value):
        gradient = loss.backward()
        model.backward_params(gradient if share == 1.0 else gradient * share)
    return value, outputs
