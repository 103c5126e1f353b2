"""Batch normalization over the last axis (the features of a dense input, the channels of an
NHWC image), as Keras's BatchNormalization with its defaults.

Training normalises with the batch's mean and biased variance (the mean of squared
deviations) and moves the moving statistics towards them:
moving = moving * momentum + batch * (1 - momentum) — Keras feeds the same biased variance to
the moving average, and so does this. Evaluation normalises with the moving statistics.
Output: gamma * (x - mean) / sqrt(variance + epsilon) + beta.
"""

from __future__ import annotations

import math

import numpy as np

from .. import _validate
from .base import Layer, Param, Shape


class BatchNorm(Layer):
    kind = "batchnorm"
    aliases = ("bn",)
    spec_args = ("momentum", "epsilon")
    description = (
        "batch normalization of the last axis (features or channels): batch statistics in "
        "training, moving averages in evaluation; Keras's momentum and epsilon"
    )
    cached = ("_normalized", "_inv_std")
    not_splittable = (
        "its training step normalises with the whole batch's mean and variance and moves "
        "its moving statistics once a batch"
    )

    def __init__(
        self, momentum: float = 0.99, epsilon: float = 1e-3, name: str | None = None
    ) -> None:
        super().__init__(name)
        self.momentum = _validate.float_in("BatchNorm", "momentum", momentum, 0.0, 1.0)
        self.epsilon = _validate.positive_float("BatchNorm", "epsilon", epsilon)

    def param_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        features = (input_shape[-1],)
        return {
            "gamma": features,
            "beta": features,
            "moving_mean": features,
            "moving_variance": features,
        }

    def cache_size(self, input_shape: Shape) -> int:
        """The normalised input, kept for backward."""
        return math.prod(input_shape)

    def build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        output = super().build(input_shape, rng)
        shapes = self.param_shapes(input_shape)
        ones, zeros = np.ones(shapes["gamma"], self.dtype), np.zeros(shapes["beta"], self.dtype)
        # gamma first: it is the weight the dashboard shows (`monitored_weights`).
        self.params = {
            "gamma": Param.of(f"{self.name}.gamma", ones.copy(), regularize=False),
            "beta": Param.of(f"{self.name}.beta", zeros.copy(), regularize=False),
            "moving_mean": Param.of(f"{self.name}.moving_mean", zeros, False, trainable=False),
            "moving_variance": Param.of(
                f"{self.name}.moving_variance", ones, False, trainable=False
            ),
        }
        return output

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.check_input(x)
        if self.training:
            ones = self._ones(x)
            count = ones.size
            mean = _column_sums(ones, x) / count
            centered = x - mean
            variance = _column_sums(ones, centered * centered) / count  # biased, as Keras
            self._update_moving(mean, variance)
        else:
            mean = self.params["moving_mean"].value
            variance = self.params["moving_variance"].value
            centered = x - mean
        self._batch_statistics = self.training
        self._inv_std = 1.0 / np.sqrt(variance + self.epsilon)
        self._normalized = centered * self._inv_std
        return self._normalized * self.params["gamma"].value + self.params["beta"].value

    def _ones(self, x: np.ndarray) -> np.ndarray:
        """A ones vector with a row per feature vector of `x`: the per-feature sums are a
        GEMV with it, 13x faster than `x.sum(axis=(0, 1, 2))` here, whose inner loop runs
        over only C values (32x28x28x6 float32: 0.02 vs 0.29 ms)."""
        return np.ones(x.size // x.shape[-1], dtype=x.dtype)

    def _update_moving(self, mean: np.ndarray, variance: np.ndarray) -> None:
        """moving = moving * momentum + batch * (1 - momentum). A batch whose statistics are
        not finite is left out, so a diverging step (whose update the trainer skips) does not
        poison the statistics the model is evaluated and saved with."""
        if not (np.isfinite(mean).all() and np.isfinite(variance).all()):
            return
        for key, batch in (("moving_mean", mean), ("moving_variance", variance)):
            moving = self.params[key].value
            moving *= self.momentum
            moving += (1.0 - self.momentum) * batch

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        gamma, beta = self.params["gamma"], self.params["beta"]
        ones = self._ones(grad)
        beta.grad[...] = _column_sums(ones, grad)
        gamma.grad[...] = _column_sums(ones, grad * self._normalized)
        if not need_input_grad:
            return None
        scale = gamma.value * self._inv_std
        if not self._batch_statistics:  # the moving statistics are constants
            return grad * scale
        # The batch mean and variance depend on every input of the batch. With
        # g' = g * gamma / std: dx = g' - mean(g') - x_hat * mean(g' * x_hat), and those two
        # means are the parameter gradients just computed, times gamma / std / count.
        count = ones.size
        dx = self._normalized * (gamma.grad / count)
        dx += beta.grad / count
        np.subtract(grad, dx, out=dx)
        dx *= scale
        return dx


def _column_sums(ones: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Per-feature sums of `x` over every axis but the last."""
    return ones @ x.reshape(ones.size, x.shape[-1])
