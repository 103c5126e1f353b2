"""Numerical gradient checking by central differences in float64.

Works on a single layer (checked through a fixed random projection of its output, so every
output element matters) or on a whole model with a loss. The target is copied and cast to
float64, so the caller's float32 object is untouched.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

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
    layers = target.layers if isinstance(target, Sequential) else [target]
    # Dropout draws a mask per forward; replay the same mask for every evaluation.
    random_layers = [layer for layer in layers if hasattr(layer, "rng")]
    states = [copy.deepcopy(layer.rng) for layer in random_layers]

    def restore_randomness() -> None:
        for layer, state in zip(random_layers, states, strict=True):
            layer.rng = copy.deepcopy(state)

    projection: np.ndarray | None = None

    def objective(inputs: np.ndarray) -> tuple[float, np.ndarray]:
        nonlocal projection
        restore_randomness()
        out = target.forward(inputs)
        if loss is not None and y is not None:
            return loss.forward(out, y), loss.backward()
        if projection is None:
            projection = rng.standard_normal(out.shape)
        return float(np.sum(out * projection)), projection

    _, upstream = objective(x)
    if isinstance(target, Sequential):
        input_grad = target.backward(upstream)
    else:
        input_grad = input_gradient(target, upstream)
    arrays = {"input": (x, input_grad)} if wrt_input else {}
    params = target.parameters() if isinstance(target, Sequential) else list(target.params.values())
    # Non-trainable state (moving statistics) has no gradient: its layer updates it itself.
    arrays.update({p.name: (p.value, p.grad.copy()) for p in params if p.trainable})

    result = GradcheckResult()
    for name, (array, analytic) in arrays.items():
        flat = array.reshape(-1)
        indices = np.arange(flat.size)
        if max_checks is not None and flat.size > max_checks:
            indices = rng.choice(flat.size, max_checks, replace=False)
        numeric = np.empty(len(indices))
        for k, index in enumerate(indices):
            original = flat[index]
            flat[index] = original + eps
            plus, _ = objective(x)
            flat[index] = original - eps
            minus, _ = objective(x)
            flat[index] = original
            numeric[k] = (plus - minus) / (2 * eps)
        exact = analytic.reshape(-1)[indices]
        scale = np.linalg.norm(exact) + np.linalg.norm(numeric)
        result.errors[name] = float(np.linalg.norm(exact - numeric) / scale) if scale else 0.0
    return result
