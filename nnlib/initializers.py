"""Weight initializers: He, Glorot and plain normal, all drawn from a seeded Generator.

The model owns one `numpy.random.Generator` seeded by the user and hands it to each layer in
order, so the same seed and architecture always give the same weights.
"""

from __future__ import annotations

import numpy as np

INITIALIZERS = ("he", "glorot", "normal")


def initialize(
    kind: str,
    shape: tuple[int, ...],
    fan_in: int,
    fan_out: int,
    rng: np.random.Generator,
    dtype: np.dtype,
) -> np.ndarray:
    """Draw a weight array of `shape`.

    he:     N(0, 2/fan_in), suited to ReLU networks (He et al. 2015).
    glorot: U(-a, a) with a = sqrt(6/(fan_in+fan_out)), suited to tanh/sigmoid (Glorot 2010).
    normal: N(0, 0.01^2), the classic small-random start.
    """
    if kind == "he":
        weights = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
    elif kind == "glorot":
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        weights = rng.uniform(-limit, limit, size=shape)
    elif kind == "normal":
        weights = rng.standard_normal(shape) * 0.01
    else:
        raise ValueError(f"unknown initializer {kind!r}; expected one of {', '.join(INITIALIZERS)}")
    return weights.astype(dtype)
