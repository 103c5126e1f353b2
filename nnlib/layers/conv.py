"""2-D convolution, channels-last, as one GEMM over an im2col window view.

Forward copies every receptive field into a (N*Ho*Wo, kh*kw*C) matrix and multiplies by the
kernel reshaped to (kh*kw*C, F). Backward reuses that matrix for dL/dW and scatters
dL/d(columns) back onto the input with a short loop over the kh*kw kernel offsets, which was
measured 3-9x faster than `np.add.at`.
"""

from __future__ import annotations

import numpy as np

from .. import _validate
from ..initializers import INITIALIZERS, initialize
from . import _windows as win
from .base import Layer, Param, Shape


class Conv2D(Layer):
    kind = "conv"

    def __init__(self, filters: int, kernel_size: int | tuple[int, int], stride: int = 1,
                 padding: int | str = 0, init: str = "he", name: str | None = None) -> None:
        super().__init__(name)
        self.filters = _validate.positive_int("Conv2D", "filters", filters)
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self._kernel = win.pair("Conv2D", "kernel_size", kernel_size)
        self._stride = win.pair("Conv2D", "stride", stride)
        if not (padding in ("same", "valid")
                or (isinstance(padding, int) and not isinstance(padding, bool) and padding >= 0)):
            raise ValueError(f"Conv2D: padding must be a non-negative integer, 'same' or "
                             f"'valid', got {padding!r}")
        if init not in INITIALIZERS:
            raise ValueError(f"Conv2D: init must be one of {', '.join(INITIALIZERS)}, got {init!r}")
        self.init = init

    def _pads(self, height: int, width: int) -> tuple[int, int, int, int]:
        if self.padding == "valid":
            return (0, 0, 0, 0)
        if self.padding == "same":
            # TensorFlow's rule: output = ceil(input / stride), extra padding at the bottom/right.
            pads = []
            for size, k, s in ((height, self._kernel[0], self._stride[0]),
                               (width, self._kernel[1], self._stride[1])):
                total = max((-(-size // s) - 1) * s + k - size, 0)
                pads += [total // 2, total - total // 2]
            return tuple(pads)  # type: ignore[return-value]
        p = int(self.padding)
        return (p, p, p, p)

    def build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        if len(input_shape) != 3:
            raise ValueError(f"{self.name}: Conv2D needs an image input (height, width, "
                             f"channels), got {input_shape}")
        channels = input_shape[2]
        kh, kw = self._kernel
        fan_in, fan_out = kh * kw * channels, kh * kw * self.filters
        kernel = initialize(self.init, (kh, kw, channels, self.filters), fan_in, fan_out, rng,
                            self.dtype)
        self.params = {"W": Param.of(f"{self.name}.W", kernel),
                       "b": Param.of(f"{self.name}.b", np.zeros(self.filters, self.dtype),
                                     regularize=False)}
        return super().build(input_shape, rng)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        height, width = input_shape[0], input_shape[1]
        self._pad = self._pads(height, width)
        self._out = win.output_size(self.name or "Conv2D", (height, width), self._kernel,
                                    self._stride, self._pad)
        return (*self._out, self.filters)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.check_input(x)
        n = x.shape[0]
        kernel = self.params["W"].value
        padded = win.pad(x, self._pad)
        self._padded_shape = padded.shape
        self._cols = win.windows(padded, self._kernel, self._stride, self._out).reshape(
            n * self._out[0] * self._out[1], -1)
        out = self._cols @ kernel.reshape(-1, self.filters)
        out += self.params["b"].value
        return out.reshape(n, *self._out, self.filters)

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        kernel, bias = self.params["W"], self.params["b"]
        grad2d = grad.reshape(-1, self.filters)
        np.matmul(self._cols.T, grad2d, out=kernel.grad.reshape(-1, self.filters))
        np.sum(grad2d, axis=0, out=bias.grad)
        if not need_input_grad:
            return None
        kh, kw = self._kernel
        dcols = (grad2d @ kernel.value.reshape(-1, self.filters).T).reshape(
            grad.shape[0], *self._out, kh, kw, -1)
        dpadded = np.zeros(self._padded_shape, dtype=grad.dtype)
        for i in range(kh):
            for j in range(kw):
                target = win.window_slice(dpadded, i, j, self._stride, self._out)
                target += dcols[:, :, :, i, j]
        return win.crop(dpadded, self._pad)
