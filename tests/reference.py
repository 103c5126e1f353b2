"""Plain-loop reference implementations of convolution and pooling (channels-last, NHWC).

Written straight from the textbook formulas with explicit Python loops, deliberately slow and
obvious, so the fast kernels in nnlib.layers can be checked against them. Nothing here
imports nnlib.
"""

from __future__ import annotations

import math

import numpy as np

Pads = tuple[int, int, int, int]  # (top, bottom, left, right)


def pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def conv_pads(
    padding: int | str, size: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int]
) -> Pads:
    """Zero padding per side. 'same' follows TensorFlow: the output is ceil(input / stride)
    and an odd total padding puts the extra row/column at the bottom/right."""
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        pads: list[int] = []
        for n, k, s in zip(size, kernel, stride, strict=True):
            out = math.ceil(n / s)
            total = max((out - 1) * s + k - n, 0)
            pads += [total // 2, total - total // 2]
        return (pads[0], pads[1], pads[2], pads[3])
    return (padding, padding, padding, padding)  # type: ignore[return-value]


def zero_pad(x: np.ndarray, pads: Pads) -> np.ndarray:
    top, bottom, left, right = pads
    n, h, w, c = x.shape
    out = np.zeros((n, h + top + bottom, w + left + right, c), dtype=x.dtype)
    for a in range(n):
        for i in range(h):
            for j in range(w):
                for k in range(c):
                    out[a, top + i, left + j, k] = x[a, i, j, k]
    return out


def output_size(size: int, window: int, stride: int) -> int:
    return (size - window) // stride + 1


def conv2d_forward(
    x: np.ndarray, weights: np.ndarray, bias: np.ndarray, stride: tuple[int, int], pads: Pads
) -> np.ndarray:
    """out[n,i,j,f] = b[f] + sum_{di,dj,c} xpad[n, i*s+di, j*s+dj, c] * W[di,dj,c,f]."""
    xpad = zero_pad(x, pads)
    kh, kw, channels, filters = weights.shape
    n, hp, wp, _ = xpad.shape
    ho, wo = output_size(hp, kh, stride[0]), output_size(wp, kw, stride[1])
    out = np.zeros((n, ho, wo, filters))
    for a in range(n):
        for i in range(ho):
            for j in range(wo):
                for f in range(filters):
                    total = bias[f]
                    for di in range(kh):
                        for dj in range(kw):
                            for c in range(channels):
                                total += (
                                    xpad[a, i * stride[0] + di, j * stride[1] + dj, c]
                                    * weights[di, dj, c, f]
                                )
                    out[a, i, j, f] = total
    return out


def conv2d_backward(
    x: np.ndarray, weights: np.ndarray, stride: tuple[int, int], pads: Pads, dout: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dx, dW, db) for the loss gradient `dout` of `conv2d_forward`."""
    xpad = zero_pad(x, pads)
    kh, kw, channels, filters = weights.shape
    n, ho, wo, _ = dout.shape
    dxpad = np.zeros(xpad.shape)
    dweights = np.zeros(weights.shape)
    dbias = np.zeros(filters)
    for a in range(n):
        for i in range(ho):
            for j in range(wo):
                for f in range(filters):
                    g = dout[a, i, j, f]
                    dbias[f] += g
                    for di in range(kh):
                        for dj in range(kw):
                            for c in range(channels):
                                row, col = i * stride[0] + di, j * stride[1] + dj
                                dweights[di, dj, c, f] += xpad[a, row, col, c] * g
                                dxpad[a, row, col, c] += weights[di, dj, c, f] * g
    top, _, left, _ = pads
    h, w = x.shape[1], x.shape[2]
    dx = np.zeros(x.shape)
    for a in range(n):
        for i in range(h):
            for j in range(w):
                for c in range(channels):
                    dx[a, i, j, c] = dxpad[a, top + i, left + j, c]
    return dx, dweights, dbias


def _window(pool: tuple[int, int], i: int, j: int, stride: tuple[int, int]):
    """The input positions of window (i, j), in row-major order."""
    for di in range(pool[0]):
        for dj in range(pool[1]):
            yield i * stride[0] + di, j * stride[1] + dj


def maxpool_forward(x: np.ndarray, pool: tuple[int, int], stride: tuple[int, int]) -> np.ndarray:
    n, h, w, channels = x.shape
    ho, wo = output_size(h, pool[0], stride[0]), output_size(w, pool[1], stride[1])
    out = np.zeros((n, ho, wo, channels), dtype=x.dtype)
    for a in range(n):
        for i in range(ho):
            for j in range(wo):
                for c in range(channels):
                    out[a, i, j, c] = max(x[a, r, q, c] for r, q in _window(pool, i, j, stride))
    return out


def maxpool_backward(
    x: np.ndarray, pool: tuple[int, int], stride: tuple[int, int], dout: np.ndarray
) -> np.ndarray:
    """Each output gradient goes to the FIRST maximum of its window (row-major order)."""
    n, ho, wo, channels = dout.shape
    dx = np.zeros(x.shape)
    for a in range(n):
        for i in range(ho):
            for j in range(wo):
                for c in range(channels):
                    best, where = -math.inf, None
                    for r, q in _window(pool, i, j, stride):
                        if x[a, r, q, c] > best:  # strict: a later tie does not win
                            best, where = x[a, r, q, c], (r, q)
                    dx[a, where[0], where[1], c] += dout[a, i, j, c]
    return dx


def avgpool_forward(x: np.ndarray, pool: tuple[int, int], stride: tuple[int, int]) -> np.ndarray:
    n, h, w, channels = x.shape
    ho, wo = output_size(h, pool[0], stride[0]), output_size(w, pool[1], stride[1])
    out = np.zeros((n, ho, wo, channels))
    for a in range(n):
        for i in range(ho):
            for j in range(wo):
                for c in range(channels):
                    total = 0.0
                    for r, q in _window(pool, i, j, stride):
                        total += x[a, r, q, c]
                    out[a, i, j, c] = total / (pool[0] * pool[1])
    return out


def avgpool_backward(
    x: np.ndarray, pool: tuple[int, int], stride: tuple[int, int], dout: np.ndarray
) -> np.ndarray:
    n, ho, wo, channels = dout.shape
    dx = np.zeros(x.shape)
    for a in range(n):
        for i in range(ho):
            for j in range(wo):
                for c in range(channels):
                    for r, q in _window(pool, i, j, stride):
                        dx[a, r, q, c] += dout[a, i, j, c] / (pool[0] * pool[1])
    return dx


def check_conv(
    layer, x: np.ndarray, stride: tuple[int, int], pads: Pads, rng, rtol=1e-10, atol=1e-12
):
    """One forward and backward of a convolution layer (anything with forward, backward and
    params W and b) on `x` against the plain loops above: the output, and dL/dx, dL/dW and
    dL/db for a random upstream gradient. Returns the output."""
    weights, bias = layer.params["W"].value.copy(), layer.params["b"].value.copy()
    out = layer.forward(x)
    np.testing.assert_allclose(
        out, conv2d_forward(x, weights, bias, stride, pads), rtol=rtol, atol=atol
    )
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    dx_ref, dw_ref, db_ref = conv2d_backward(x, weights, stride, pads, dout)
    np.testing.assert_allclose(dx, dx_ref, rtol=rtol, atol=atol)
    np.testing.assert_allclose(layer.params["W"].grad, dw_ref, rtol=rtol, atol=atol)
    np.testing.assert_allclose(layer.params["b"].grad, db_ref, rtol=rtol, atol=atol)
    return out
