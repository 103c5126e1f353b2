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
        shapes = self.param_shapes(self.input_shape)
        ones, zeros = np.ones(shapes["gamma"], self.dtype), np.zeros(shapes["beta"], self.dtype)
        # gamma first: it is the weight the dashboard shows (`monitored_weights`).
        self.params = {
            "gamma": Param.of(f"{self.name}.gamma", ones.copy(), regularize=False),
            "beta": Param.of(f"{self.name}.beta", zeros.copy(), regularize=False),
            "moving_mean": Param.of(f"{self.name}.moving_mean", zeros, trainable=False),
            "moving_variance": Param.of(f"{self.name}.moving_variance", ones, trainable=False),
        }
        return output

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.check_input(x)
        axes = tuple(range(x.ndim - 1))
        if self.training:
            mean = x.mean(axis=axes)
            centered = x - mean
            variance = np.mean(centered * centered, axis=axes)
            self._update_moving(mean, variance)
        else:
            mean = self.params["moving_mean"].value
            variance = self.params["moving_variance"].value
            centered = x - mean
        self._batch_statistics = self.training
        self._inv_std = 1.0 / np.sqrt(variance + self.epsilon)
        self._normalized = centered * self._inv_std
        return self._normalized * self.params["gamma"].value + self.params["beta"].value

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
        axes = tuple(range(grad.ndim - 1))
        gamma, beta = self.params["gamma"], self.params["beta"]
        np.sum(grad * self._normalized, axis=axes, out=gamma.grad)
        np.sum(grad, axis=axes, out=beta.grad)
        if not need_input_grad:
            return None
        scaled = grad * (gamma.value * self._inv_std)
        if not self._batch_statistics:  # the moving statistics are constants
            return scaled
        # The batch mean and variance depend on every input of the batch:
        # dx = (g*gamma/std) - mean(g*gamma/std) - x_hat * mean(g*gamma/std * x_hat).
        return (
            scaled
            - scaled.mean(axis=axes)
            - self._normalized * np.mean(scaled * self._normalized, axis=axes)
        )
