"""One sample through the network: every layer's input, output and gradients, in float64.

`trace(model, x, y, loss)` runs a float64 copy of the model (made as gradient checks make
theirs, `nnlib.gradcheck.float64_copy`), so the caller's model — its weights, its mode, its
BatchNorm statistics — is untouched, and every number is exact to float64 rounding.

The copy runs in evaluation mode: BatchNorm normalises with its moving statistics and Dropout
passes everything through, as at prediction time. (In training mode a batch of one has zero
variance, so BatchNorm would output beta whatever the input, and dropout would draw a mask.)
A ReLU that the model fuses into the max-pool after it (`nnlib.layers.pooling.fuse_relu_pool`)
is unfused in the copy, so each layer's record holds what that layer computes on its own.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .gradcheck import float64_copy
from .layers.pooling import fuse_relu_pool
from .losses import Loss
from .model import Sequential

#: The readable summary's width: it fits a terminal of 80 columns, however large the layers.
SUMMARY_WIDTH = 80
NUMBER_WIDTH = 12  # "-1.2345e+00" and a space
NAME_WIDTH = 16  # a longer layer name (a model file may hold any) is cut


@dataclass(frozen=True)
class LayerTrace:
    """One layer's part of a trace (float64 arrays, the batch axis first): its parameters,
    its input and output, dL/d(output) and dL/d(input), and dL/d(parameter) for each
    trainable parameter (BatchNorm's moving statistics are parameters without gradients)."""

    name: str
    kind: str
    params: dict[str, np.ndarray]
    input: np.ndarray
    output: np.ndarray
    grad_output: np.ndarray
    grad_input: np.ndarray
    grads: dict[str, np.ndarray]

    def to_dict(self) -> dict:
        """The JSON form: arrays as nested lists, non-finite values as null."""
        return {
            "name": self.name,
            "kind": self.kind,
            "params": {key: _nested(value) for key, value in self.params.items()},
            "input": _nested(self.input),
            "output": _nested(self.output),
            "grad_output": _nested(self.grad_output),
            "grad_input": _nested(self.grad_input),
            "grads": {key: _nested(value) for key, value in self.grads.items()},
        }

    def parameter_rows(self) -> list[tuple[str, np.ndarray]]:
        """Each parameter and, where it has one, its gradient, by a short label."""
        rows = []
        for key, value in self.params.items():
            rows.append((key, value))
            if key in self.grads:
                rows.append((f"grad {key}", self.grads[key]))
        return rows


@dataclass(frozen=True)
class Trace:
    """The loss of a batch and every layer's record, first layer first."""

    loss: float
    layers: tuple[LayerTrace, ...]

    def to_dict(self) -> dict:
        """`{"loss": float, "layers": [...]}` as `nnlib trace --json` prints it."""
        return {
            "loss": self.loss if math.isfinite(self.loss) else None,
            "layers": [layer.to_dict() for layer in self.layers],
        }

    def summary(self) -> str:
        """Shape, min, max and mean of every array (`_rows`), one line each, within 80
        columns: its length grows with the number of layers, never with their size."""
        rows = self._rows()
        name_width = min(_width("layer", (row[0] for row in rows)), NAME_WIDTH)
        label_width = _width("array", (row[1] for row in rows))
        # The numbers always show: a shape too long for what is left of the line is cut.
        shape_width = min(
            _width("shape", (_shape(row[2]) for row in rows)),
            SUMMARY_WIDTH - name_width - label_width - 2 - 3 * NUMBER_WIDTH,
        )
        titles = ("layer", "array", "shape", "min", "max", "mean")
        lines = [f"loss {self.loss:.6g}", _row(titles, name_width, label_width, shape_width)]
        for name, label, value in rows:
            with np.errstate(over="ignore", invalid="ignore"):  # inf and nan show as such
                numbers = [f"{number:.4e}" for number in (value.min(), value.max(), value.mean())]
            cells = (name, label, _shape(value), *numbers)
            lines.append(_row(cells, name_width, label_width, shape_width))
        return "\n".join(lines)

    def _rows(self) -> list[tuple[str, str, np.ndarray]]:
        """Every array of the trace once, as (layer name on its first row, label, array): a
        layer's input is the previous layer's output and its grad_output the next layer's
        grad_input, so only the first layer's input and the last layer's grad_output (the
        loss gradient) have rows of their own."""
        rows: list[tuple[str, str, np.ndarray]] = []
        last = len(self.layers) - 1
        for position, layer in enumerate(self.layers):
            arrays = [("input", layer.input)] if position == 0 else []
            arrays.append(("output", layer.output))
            if position == last:
                arrays.append(("grad_output", layer.grad_output))
            arrays += [("grad_input", layer.grad_input), *layer.parameter_rows()]
            rows += [(layer.name if k == 0 else "", *row) for k, row in enumerate(arrays)]
        return rows


def trace(model: Sequential, x: np.ndarray, y: np.ndarray, loss: Loss) -> Trace:
    """Run the batch `x` (labels or targets `y`) through a float64 copy of `model` in
    evaluation mode and back from `loss`, recording each layer's input, output, gradients and
    parameters. For one sample pass a batch of one: `x[i : i + 1]`, `y[i : i + 1]`.
    Values that overflow are recorded as they are (inf, nan), without a numpy warning."""
    twin, loss = float64_copy(model), copy.deepcopy(loss)  # the caller's keep their state
    twin.eval()
    fuse_relu_pool(twin.layers, enabled=False)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        # Each array is copied: a layer may hand back a view of its input or of a buffer it
        # reuses.
        activations = [np.array(x, dtype=np.float64)]
        for layer in twin.layers:
            activations.append(np.array(layer.forward(activations[-1])))
        value = loss.forward(activations[-1], y)
        gradients = [np.array(loss.backward())]  # dL/d(output), last layer first
        for layer in reversed(twin.layers):
            gradients.append(np.array(layer.backward(gradients[-1])))
    gradients.reverse()  # gradients[k]: dL/d(input of layer k); the last: dL/d(model output)
    return Trace(
        loss=float(value),
        layers=tuple(
            LayerTrace(
                name=layer.name,
                kind=layer.kind,
                params={key: p.value.copy() for key, p in layer.params.items()},
                input=activations[k],
                output=activations[k + 1],
                grad_output=gradients[k + 1],
                grad_input=gradients[k],
                grads={key: p.grad.copy() for key, p in layer.params.items() if p.trainable},
            )
            for k, layer in enumerate(twin.layers)
        ),
    )


def fit(line: str, width: int = SUMMARY_WIDTH) -> str:
    """`line` cut to `width` characters, the cut marked with an ellipsis."""
    return line if len(line) <= width else line[: width - 1] + "…"


def _row(cells: tuple[str, ...], name_width: int, label_width: int, shape_width: int) -> str:
    """One line of the summary: name and label left-aligned, shape and numbers right."""
    name, label, shape, *numbers = cells
    return (
        f"{fit(name, name_width):<{name_width}} {label:<{label_width}} "
        f"{fit(shape, shape_width):>{shape_width}}"
        + "".join(f"{number:>{NUMBER_WIDTH}}" for number in numbers)
    )


def _width(title: str, cells: Iterable[str]) -> int:
    """A column's width: that of its longest cell, or of its title."""
    return max(len(text) for text in [title, *cells])


def _shape(value: np.ndarray) -> str:
    return "x".join(map(str, value.shape))


def _nested(value: np.ndarray) -> list:
    """Nested lists of Python floats (exact: json writes a float's shortest repr), with None
    where a value is NaN or infinite, which JSON cannot hold."""
    if np.isfinite(value).all():
        return value.tolist()
    nested = value.astype(object)
    nested[~np.isfinite(value)] = None
    return nested.tolist()
