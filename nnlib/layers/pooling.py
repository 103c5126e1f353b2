"""Max and average pooling over strided slices: one numpy op per window offset.

Windows may overlap (3x3 with stride 2). Max pooling routes each gradient to the first
maximum of its window, as the textbook argmax does.
"""

from __future__ import annotations

import numpy as np

from . import _windows as win
from .base import Layer, Shape


class _Pool2D(Layer):
    def __init__(self, pool_size: int | tuple[int, int] = 2,
                 stride: int | tuple[int, int] | None = None, name: str | None = None) -> None:
        super().__init__(name)
        owner = type(self).__name__
        self.pool_size = pool_size
        self.stride = stride
        self._window = win.pair(owner, "pool_size", pool_size)
        self._stride = self._window if stride is None else win.pair(owner, "stride", stride)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise ValueError(f"{self.name}: pooling needs an image input (height, width, "
                             f"channels), got {input_shape}")
        self._out = win.output_size(self.name or type(self).__name__, input_shape[:2],
                                    self._window, self._stride, (0, 0, 0, 0))
        return (*self._out, input_shape[2])

    def _offsets(self) -> list[tuple[int, int]]:
        return [(i, j) for i in range(self._window[0]) for j in range(self._window[1])]


class MaxPool2D(_Pool2D):
    kind = "maxpool"

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.check_input(x)
        self._x_shape = x.shape
        offsets = self._offsets()
        out = win.window_slice(x, *offsets[0], self._stride, self._out).copy()
        self._argmax = np.zeros(out.shape, dtype=np.uint8)
        for k, (i, j) in enumerate(offsets[1:], start=1):
            candidate = win.window_slice(x, i, j, self._stride, self._out)
            greater = candidate > out
            np.maximum(out, candidate, out=out)
            self._argmax[greater] = k
        return out

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        if not need_input_grad:
            return None
        dx = np.zeros(self._x_shape, dtype=grad.dtype)
        for k, (i, j) in enumerate(self._offsets()):
            win.window_slice(dx, i, j, self._stride, self._out)[...] += np.where(
                self._argmax == k, grad, 0)
        return dx


class AvgPool2D(_Pool2D):
    kind = "avgpool"

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.check_input(x)
        self._x_shape = x.shape
        offsets = self._offsets()
        out = win.window_slice(x, *offsets[0], self._stride, self._out).copy()
        for i, j in offsets[1:]:
            out += win.window_slice(x, i, j, self._stride, self._out)
        out *= 1.0 / len(offsets)
        return out

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        if not need_input_grad:
            return None
        dx = np.zeros(self._x_shape, dtype=grad.dtype)
        share = grad * (1.0 / (self._window[0] * self._window[1]))
        for i, j in self._offsets():
            win.window_slice(dx, i, j, self._stride, self._out)[...] += share
        return dx
