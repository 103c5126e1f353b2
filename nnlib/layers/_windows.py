"""Sliding-window geometry shared by convolution and pooling (channels-last, NHWC)."""

from __future__ import annotations

import numpy as np

Pair = tuple[int, int]

#: Convolution and pooling run a batch in parts of at most this many samples, each through
#: every step of a pass before the next, so that a large batch's buffers stay as cache-sized
#: as a batch of 64: LeNet-5 at batch 256 spent 1.4x as long per sample in its convolutions
#: as at 64 (im2col buffers of 20 MiB instead of 5 fall out of the caches).
PART_SAMPLES = 64


def parts(batch: int, workers: int = 1) -> list[slice]:
    """The batch as slices of at most PART_SAMPLES samples, and at least `workers` of them
    (the batch workers of `nnlib.threads`: 64 samples on 2 workers are 2 parts of 32)."""
    size = min(PART_SAMPLES, max(1, -(-batch // workers)))
    return [slice(i, min(i + size, batch)) for i in range(0, batch, size)]


def pair(owner: str, name: str, value: object) -> Pair:
    """Accept 3 or (3, 5) and return a (height, width) pair of positive ints."""
    values = value if isinstance(value, tuple | list) else (value, value)
    if len(values) != 2 or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values
    ):
        raise ValueError(
            f"{owner}: {name} must be a positive integer or a pair of them, got {value!r}"
        )
    return int(values[0]), int(values[1])


def output_size(
    owner: str, size: Pair, window: Pair, stride: Pair, pads: tuple[int, int, int, int]
) -> Pair:
    """Output height and width of a strided window over a padded input.

    pads are (top, bottom, left, right). A window larger than the padded input is an error
    that names the owner and both shapes.
    """
    padded = (size[0] + pads[0] + pads[1], size[1] + pads[2] + pads[3])
    if window[0] > padded[0] or window[1] > padded[1]:
        padding = f" (padded from {size[0]}x{size[1]})" if any(pads) else ""
        raise ValueError(
            f"{owner}: window {window[0]}x{window[1]} is larger than its input "
            f"{padded[0]}x{padded[1]}{padding}"
        )
    return ((padded[0] - window[0]) // stride[0] + 1, (padded[1] - window[1]) // stride[1] + 1)


def window_slice(x: np.ndarray, i: int, j: int, stride: Pair, out: Pair) -> np.ndarray:
    """View of the input element at offset (i, j) of every window: shape (N, Ho, Wo, C)."""
    return x[
        :,
        i : i + stride[0] * (out[0] - 1) + 1 : stride[0],
        j : j + stride[1] * (out[1] - 1) + 1 : stride[1],
        :,
    ]


def windows(x: np.ndarray, window: Pair, stride: Pair, out: Pair) -> np.ndarray:
    """Read-only strided view (N, Ho, Wo, kh, kw, C) of every window, without copying."""
    s0, s1, s2, s3 = x.strides
    return np.lib.stride_tricks.as_strided(
        x,
        shape=(x.shape[0], out[0], out[1], window[0], window[1], x.shape[3]),
        strides=(s0, s1 * stride[0], s2 * stride[1], s1, s2, s3),
        writeable=False,
    )


def pad(x: np.ndarray, pads: tuple[int, int, int, int]) -> np.ndarray:
    """Zero-pad height and width; returns `x` itself when there is nothing to pad."""
    top, bottom, left, right = pads
    if not any(pads):
        return x
    n, h, w, c = x.shape
    padded = np.zeros((n, h + top + bottom, w + left + right, c), dtype=x.dtype)
    padded[:, top : top + h, left : left + w, :] = x
    return padded


def crop(x: np.ndarray, pads: tuple[int, int, int, int]) -> np.ndarray:
    """Undo `pad`."""
    top, bottom, left, right = pads
    return x[:, top : x.shape[1] - bottom, left : x.shape[2] - right, :]
