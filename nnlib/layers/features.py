"""InputFeatures: TensorFlow Playground's input features of a 2-D point, as a layer.

Put first in a spec, `features(x1, x2, x1sq, x2sq, x1x2, sinx1, sinx2)` (any subset, in any
order) turns each point (x1, x2) into the chosen features, so a run can give the network
x1² or sin x1 as inputs instead of making it learn them. The model still takes the 2-D
plane as its input (the Boundary view draws over it as before); the features are part of
the architecture, so they show in `model.spec` and the summary and come back with a saved
model. No parameters: backward returns the input gradient through each feature's
derivative.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .base import Layer, Shape, SpecArg

_Column = Callable[[np.ndarray, np.ndarray], np.ndarray | float]

#: Each feature of the columns x1 and x2 (a, b): its value, and its derivatives d/dx1 and
#: d/dx2 (None where the feature does not depend on that input).
FEATURES: dict[str, tuple[_Column, _Column | None, _Column | None]] = {
    "x1": (lambda a, b: a, lambda a, b: 1.0, None),
    "x2": (lambda a, b: b, None, lambda a, b: 1.0),
    "x1sq": (lambda a, b: a * a, lambda a, b: 2 * a, None),
    "x2sq": (lambda a, b: b * b, None, lambda a, b: 2 * b),
    "x1x2": (lambda a, b: a * b, lambda a, b: b, lambda a, b: a),
    "sinx1": (lambda a, b: np.sin(a), lambda a, b: np.cos(a), None),
    "sinx2": (lambda a, b: np.sin(b), None, lambda a, b: np.cos(b)),
}


class InputFeatures(Layer):
    """The chosen features of each point (x1, x2), one output column per feature in the
    order given."""

    kind = "features"
    not_splittable = ""
    spec_args = (SpecArg("names", hint="|".join(FEATURES), variadic=True),)
    description = (
        "TensorFlow Playground's input features of a 2-D point (x1, x2): any of x1, x2, their "
        "squares x1sq and x2sq, their product x1x2, sinx1 and sinx2, in the order given; put "
        "it first"
    )
    cached = ("_x",)

    def __init__(self, names: Sequence[str], name: str | None = None) -> None:
        super().__init__(name)
        if isinstance(names, str) or not isinstance(names, Sequence) or not names:
            raise ValueError(
                f"InputFeatures: names must be a non-empty list of features such as "
                f"('x1', 'x2'), got {names!r}"
            )
        for feature in names:
            if not isinstance(feature, str) or feature not in FEATURES:
                raise ValueError(
                    f"InputFeatures: unknown feature {feature!r} (the features are "
                    f"{', '.join(FEATURES)})"
                )
        repeated = next((f for k, f in enumerate(names) if f in names[:k]), None)
        if repeated is not None:
            raise ValueError(f"InputFeatures: feature {repeated!r} is given twice")
        self.names = tuple(names)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if tuple(input_shape) != (2,):
            raise ValueError(
                f"{self.name}: features are made from a 2-D point (x1, x2), "
                f"but the input has shape {tuple(input_shape)}"
            )
        return (len(self.names),)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.check_input(x)
        self._x = x
        a, b = x[:, 0], x[:, 1]
        return np.stack([FEATURES[name][0](a, b) for name in self.names], axis=1)

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        if not need_input_grad:
            return None
        a, b = self._x[:, 0], self._x[:, 1]
        result = np.zeros_like(self._x)
        for column, name in enumerate(self.names):
            for axis, derivative in enumerate(FEATURES[name][1:]):
                if derivative is not None:
                    result[:, axis] += grad[:, column] * derivative(a, b)
        return result
