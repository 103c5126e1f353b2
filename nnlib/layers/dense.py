"""Fully connected layer: y = x W + b."""

from __future__ import annotations

import numpy as np

from .. import _validate
from ..initializers import INITIALIZERS, initialize
from .base import Layer, Param, Shape, SpecArg


class Dense(Layer):
    kind = "dense"
    not_splittable = ""
    aliases = ("fc",)
    spec_args = ("units", SpecArg("init", documented=False))
    description = (
        "fully connected; a flatten is inserted before it automatically after image layers"
    )
    cached = ("_x",)

    def __init__(self, units: int, init: str = "he", name: str | None = None) -> None:
        super().__init__(name)
        self.units = _validate.positive_int("Dense", "units", units)
        if init not in INITIALIZERS:
            raise ValueError(f"Dense: init must be one of {', '.join(INITIALIZERS)}, got {init!r}")
        self.init = init

    def build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        output = super().build(input_shape, rng)  # the shape is checked before allocating
        fan_in = input_shape[0]
        shapes = self.param_shapes(input_shape)
        weights = initialize(self.init, shapes["W"], fan_in, self.units, rng, self.dtype)
        self.params = {
            "W": Param.of(f"{self.name}.W", weights),
            "b": Param.of(f"{self.name}.b", np.zeros(shapes["b"], self.dtype), regularize=False),
        }
        return output

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 1:
            raise ValueError(
                f"{self.name}: Dense needs a flat input (features,), got "
                f"{input_shape}; put a Flatten layer before it"
            )
        return (self.units,)

    def param_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        return {"W": (input_shape[0], self.units), "b": (self.units,)}

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.check_input(x)
        self._x = x
        out = x @ self.params["W"].value
        out += self.params["b"].value
        return out

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        weights, bias = self.params["W"], self.params["b"]
        np.matmul(self._x.T, grad, out=weights.grad)
        np.sum(grad, axis=0, out=bias.grad)
        return grad @ weights.value.T if need_input_grad else None
