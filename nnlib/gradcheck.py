"""Numerical gradient checking by central differences in float64.

Works on a single layer (checked through a fixed random projection of its output, so every
output element matters) or on a whole model with a loss. The target is copied and cast to
float64, so the caller's float32 object is untouched.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
from numpy.random import Generator

from .layers import Layer
from .losses import Loss
from .model import Sequential, input_gradient

Target = TypeVar("Target", bound="Layer | Sequential")


def float64_copy(target: Target) -> Target:
    """A deep copy of a layer or model cast to float64: gradient checks and traces compute in
    float64 without touching the caller's (float32) object, its weights, caches and mode."""
    target = copy.deepcopy(target)
    target.to(np.float64)
    return target


@dataclass
class GradcheckResult:
    """Relative error per checked array ('input', 'dense_1.W', ...): the input and every
    trainable parameter."""

    errors: dict[str, float] = field(default_factory=dict)

    @property
    def max_error(self) -> float:
        return max(self.errors.values(), default=0.0)

    @property
    def worst(self) -> str:
        return max(self.errors, key=self.errors.__getitem__) if self.errors else ""

    def __str__(self) -> str:
        lines = [f"{name:>20s}  {error:.2e}" for name, error in self.errors.items()]
        return "\n".join([*lines, f"worst: {self.worst} {self.max_error:.2e}"])


def gradcheck(
    target: Layer | Sequential,
    x: np.ndarray,
    y: np.ndarray | None = None,
    loss: Loss | None = None,
    eps: float = 1e-6,
    wrt_input: bool = True,
    max_checks: int | None = None,
    seed: int = 0,
) -> GradcheckResult:
    """Compare analytic and numerical gradients; returns the relative error of each array.

    relative error = ||analytic - numeric|| / (||analytic|| + ||numeric||), the 2-norm over
    the checked entries (0 when both are zero). An entry-wise ratio would be dominated by
    rounding noise on entries whose true gradient is 0. `max_checks` samples that many
    entries per array (all when None) to bound the cost.
    """
    if loss is not None and y is None:
        raise ValueError("gradcheck: a loss needs the targets y")
    target = float64_copy(target)
    x = np.array(x, dtype=np.float64)
    if isinstance(target, Layer) and target.input_shape is None:
        target.build(x.shape[1:], np.random.default_rng(seed))
    rng = np.random.default_rng(seed)
    objective = _Objective(target, loss, y, rng)
    result = GradcheckResult()
    for name, (array, analytic) in _analytic(target, objective, x, wrt_input).items():
        flat = array.reshape(-1)
        indices = np.arange(flat.size)
        if max_checks is not None and flat.size > max_checks:
            indices = rng.choice(flat.size, max_checks, replace=False)
        numeric = _numeric(flat, indices, lambda: objective(x)[0], eps)
        result.errors[name] = _relative_error(analytic.reshape(-1)[indices], numeric)
    return result


def _relative_error(exact: np.ndarray, numeric: np.ndarray) -> float:
    """||exact - numeric|| / (||exact|| + ||numeric||), 0 when both are zero: one number per
    array, which rounding noise on entries whose true gradient is 0 does not dominate."""
    scale = np.linalg.norm(exact) + np.linalg.norm(numeric)
    return float(np.linalg.norm(exact - numeric) / scale) if scale else 0.0


class _Objective:
    """The scalar a check differentiates, with its gradient by the target's output: the loss,
    or for a layer without one, the output's sum weighted by a fixed random projection (so
    every output element matters). Dropout draws a mask per forward: every evaluation
    replays the masks of the first."""

    def __init__(
        self, target: Layer | Sequential, loss: Loss | None, y: np.ndarray | None, rng: Generator
    ) -> None:
        self.target, self.loss, self.y, self.rng = target, loss, y, rng
        layers = target.layers if isinstance(target, Sequential) else [target]
        self._randomness = [
            (layer, copy.deepcopy(layer.rng)) for layer in layers if hasattr(layer, "rng")
        ]
        self._projection: np.ndarray | None = None

    def __call__(self, inputs: np.ndarray) -> tuple[float, np.ndarray]:
        for layer, state in self._randomness:
            layer.rng = copy.deepcopy(state)
        out = self.target.forward(inputs)
        if self.loss is not None and self.y is not None:
            return self.loss.forward(out, self.y), self.loss.backward()
        if self._projection is None:
            self._projection = self.rng.standard_normal(out.shape)
        return float(np.sum(out * self._projection)), self._projection


def _analytic(
    target: Layer | Sequential, objective: _Objective, x: np.ndarray, wrt_input: bool
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The arrays to check, each with its analytic gradient from one backward pass: the
    input (`wrt_input`) and every trainable parameter (non-trainable state, such as moving
    statistics, has no gradient: its layer updates it itself)."""
    _, upstream = objective(x)
    if isinstance(target, Sequential):
        input_grad, params = target.backward(upstream), target.parameters()
    else:
        input_grad, params = input_gradient(target, upstream), list(target.params.values())
    arrays = {"input": (x, input_grad)} if wrt_input else {}
    arrays.update({p.name: (p.value, p.grad.copy()) for p in params if p.trainable})
    return arrays


def _numeric(
    flat: np.ndarray, indices: np.ndarray, value: Callable[[], float], eps: float
) -> np.ndarray:
    """Central differences of `value` by each entry of `flat` at `indices` (a view of the
    array `value` reads), each entry put back after."""
    numeric = np.empty(len(indices))
    for k, index in enumerate(indices):
        original = flat[index]
        flat[index] = original + eps
        plus = value()
        flat[index] = original - eps
        minus = value()
        flat[index] = original
        numeric[k] = (plus - minus) / (2 * eps)
    return numeric
