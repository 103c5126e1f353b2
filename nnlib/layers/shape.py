"""Layers that reshape or mask without parameters: Flatten and Dropout."""

from __future__ import annotations

import math

import numpy as np

from .. import _validate
from .base import Layer, Shape


class Flatten(Layer):
    kind = "flatten"
    not_splittable = ""
    description = "(height, width, channels) to one row of features"

    def __init__(self, name: str | None = None, implicit: bool = False) -> None:
        super().__init__(name)
        # An implicit Flatten was inserted by the spec builder before a Dense layer; it is
        # left out when the model writes its spec back.
        self.implicit = implicit

    def config(self) -> dict:
        return {"implicit": self.implicit} if self.implicit else {}

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (math.prod(input_shape),)  # exact for any size, where np.prod would wrap

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.check_input(x)
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        return grad.reshape(self._shape) if need_input_grad else None


class Dropout(Layer):
    """Inverted dropout: scales kept units by 1/(1-rate) in training, identity in eval."""

    kind = "dropout"
    not_splittable = (
        "its masks are drawn from one random stream in batch order, which parts trained at "
        "once would neither share nor draw in the same order"
    )
    spec_args = ("rate",)
    description = "inverted dropout, active in training mode only; rate in [0, 1)"
    cached = ("_mask",)

    def __init__(self, rate: float, name: str | None = None) -> None:
        super().__init__(name)
        self.rate = _validate.float_in("Dropout", "rate", rate, 0.0, 1.0)
        self.rng = np.random.default_rng(0)

    def build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        self.rng = np.random.default_rng(rng.integers(2**63))
        return super().build(input_shape, rng)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.check_input(x)
        if not self.training or self.rate == 0.0:
            self._mask = None
            return x
        keep = 1.0 - self.rate
        self._mask = (self.rng.random(x.shape, dtype=np.float32) < keep) * np.asarray(
            1.0 / keep, dtype=x.dtype
        )
        return x * self._mask

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        if not need_input_grad:
            return None
        return grad if self._mask is None else grad * self._mask
