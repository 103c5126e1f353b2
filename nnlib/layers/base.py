"""The layer protocol: forward, backward, parameters and gradients side by side.

A layer is built once for a per-sample input shape (batch axis excluded), which fixes its
parameter shapes and its output shape. `forward` caches what `backward` needs; `backward`
takes dL/d(output) and fills `param.grad` for each parameter, returning dL/d(input).
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

Shape = tuple[int, ...]


@dataclass(eq=False)
class Param:
    """A trainable array and its gradient. Optimizers update `value` in place."""

    name: str
    value: np.ndarray
    grad: np.ndarray = field(repr=False)
    regularize: bool = True  # L2 weight decay applies to weights, not to biases

    @classmethod
    def of(cls, name: str, value: np.ndarray, regularize: bool = True) -> Param:
        return cls(name, value, np.zeros_like(value), regularize)


class Layer(ABC):
    """Base class. Subclasses set `kind` (the name prefix and spec token) and override
    `build`, `forward` and `backward`."""

    kind: ClassVar[str] = "layer"

    def __init__(self, name: str | None = None) -> None:
        self.name = name
        self.params: dict[str, Param] = {}
        self.input_shape: Shape | None = None
        self.output_shape: Shape | None = None
        self.training = True
        self.dtype = np.dtype(np.float32)

    # -- construction ---------------------------------------------------------------------
    def build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        """Fix parameter shapes for `input_shape` and return the output shape."""
        self.input_shape = tuple(input_shape)
        self.output_shape = self.compute_output_shape(self.input_shape)
        return self.output_shape

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        """The per-sample output shape for `input_shape` (unchanged, unless overridden).

        Raises ValueError for an input the layer cannot take. Allocates nothing: models walk
        every layer's shapes and sizes with it before building any of them."""
        return input_shape

    def param_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        """The shape of each parameter for `input_shape`, from the constructor arguments
        alone, so that sizes are known before anything is allocated."""
        return {}

    def param_count(self, input_shape: Shape) -> int:
        """Trainable values this layer will have once built for `input_shape`."""
        return sum(math.prod(shape) for shape in self.param_shapes(input_shape).values())

    def cache_size(self, input_shape: Shape) -> int:
        """Values per sample that a training step keeps beyond the layer's output (im2col
        rows, pooling planes, padded copies): part of the memory estimate before a build."""
        return 0

    def config(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this layer (used by save and by the spec)."""
        signature = inspect.signature(type(self).__init__)
        return {
            key: getattr(self, key) for key in signature.parameters if key not in ("self", "name")
        }

    def defaults(self) -> dict[str, Any]:
        """Constructor defaults, so the spec writes back only the arguments that differ."""
        signature = inspect.signature(type(self).__init__)
        return {
            key: p.default
            for key, p in signature.parameters.items()
            if p.default is not inspect.Parameter.empty and key != "name"
        }

    # -- computation ----------------------------------------------------------------------
    @abstractmethod
    def forward(self, x: np.ndarray) -> np.ndarray:
        """Compute the output for a batch and cache what backward needs."""

    @abstractmethod
    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """Fill parameter gradients from dL/d(output); return dL/d(input) if asked."""

    # -- helpers --------------------------------------------------------------------------
    def to(self, dtype: np.dtype | type) -> Layer:
        """Cast parameters (and the compute dtype) in place; gradcheck uses float64."""
        self.dtype = np.dtype(dtype)
        for param in self.params.values():
            param.value = param.value.astype(self.dtype)
            param.grad = np.zeros_like(param.value)
        return self

    def zero_grad(self) -> None:
        """Zero every gradient (the trainer does not need it: backward overwrites them)."""
        for param in self.params.values():
            param.grad[...] = 0

    @property
    def num_params(self) -> int:
        """Trainable values in this layer."""
        return sum(p.value.size for p in self.params.values())

    def check_input(self, x: np.ndarray) -> None:
        """Reject an input whose per-sample shape differs from the built one."""
        if self.input_shape is not None and tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"{self.name or type(self).__name__}: expected input of shape "
                f"(batch, {_dims(self.input_shape)}), got {tuple(x.shape)}"
            )

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args}) name={self.name!r}"


def _dims(shape: Shape) -> str:
    return ", ".join(str(d) for d in shape)
