"""Small 2-D classification and regression sets, generated on the fly.

They are the quickest way to see a network learn: a decision boundary in 2-D can be drawn in a
terminal, and each set is generated in milliseconds, deterministically for a seed. Classes are
balanced (class k gets every K-th sample before shuffling).
"""

from __future__ import annotations

import numpy as np

from .base import Dataset, DatasetError, check_nonneg, check_sizes, generator, split_rngs


def _balanced_labels(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    return rng.permutation(np.arange(n, dtype=np.int64) % k)


def _classification(
    name: str, description: str, make, n_train: int, n_test: int, seed: int, num_classes: int
) -> Dataset:
    rng_train, rng_test = split_rngs(seed)
    x_train, y_train = make(rng_train, n_train)
    x_test, y_test = make(rng_test, n_test)
    return Dataset(
        name=name,
        x_train=x_train.astype(np.float32),
        y_train=y_train,
        x_test=x_test.astype(np.float32),
        y_test=y_test,
        input_shape=(2,),
        task="classification",
        num_classes=num_classes,
        class_names=[str(k) for k in range(num_classes)],
        description=description,
    )


@generator(
    "spirals",
    description="3 interleaved spiral arms in 2-D (needs a hidden layer)",
    task="classification",
    input_shape=(2,),
    num_classes=3,
)
def spirals(
    *,
    n_train: int = 1500,
    n_test: int = 500,
    noise: float = 0.2,
    arms: int = 3,
    turns: float = 0.875,
    seed: int = 0,
) -> Dataset:
    """Points along `arms` spiral arms of `turns` turns each; `noise` is the angular jitter in
    radians."""
    return _spirals("spirals", n_train, n_test, noise, arms, turns, seed)


def _spirals(
    name: str, n_train: int, n_test: int, noise: float, arms: int, turns: float, seed: int
) -> Dataset:
    check_sizes(name, n_train, n_test)
    noise = check_nonneg(name, "noise", noise)
    turns = check_nonneg(name, "turns", turns)
    if not isinstance(arms, (int, np.integer)) or arms < 2:
        raise DatasetError(f"{name}: arms must be an integer >= 2, got {arms!r}")
    if turns == 0:
        raise DatasetError(f"{name}: turns must be > 0, got {turns!r}")

    def make(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        y = _balanced_labels(rng, n, arms)
        r = rng.uniform(0.05, 1.0, n)
        theta = y * (2 * np.pi / arms) + r * (2 * turns) * np.pi + rng.normal(0, noise, n)
        return np.stack([r * np.sin(theta), r * np.cos(theta)], axis=1), y

    description = f"{arms} spiral arms of {turns:g} turns, angular noise {noise}"
    return _classification(name, description, make, n_train, n_test, seed, arms)


@generator(
    "moons",
    description="two interleaving half circles",
    task="classification",
    input_shape=(2,),
    num_classes=2,
)
def moons(*, n_train: int = 1500, n_test: int = 500, noise: float = 0.1, seed: int = 0) -> Dataset:
    """Two half moons (as in scikit-learn's make_moons), centred on the origin."""
    check_sizes("moons", n_train, n_test)
    noise = check_nonneg("moons", "noise", noise)

    def make(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        y = _balanced_labels(rng, n, 2)
        t = rng.uniform(0, np.pi, n)
        upper = np.stack([np.cos(t), np.sin(t)], axis=1)
        lower = np.stack([1 - np.cos(t), 0.5 - np.sin(t)], axis=1)
        x = np.where(y[:, None] == 0, upper, lower) - [0.5, 0.25]
        return x + rng.normal(0, noise, (n, 2)), y

    return _classification(
        "moons", f"two half moons, gaussian noise {noise}", make, n_train, n_test, seed, 2
    )


@generator(
    "circles",
    description="a small circle inside a large one",
    task="classification",
    input_shape=(2,),
    num_classes=2,
)
def circles(
    *,
    n_train: int = 1500,
    n_test: int = 500,
    noise: float = 0.08,
    factor: float = 0.5,
    seed: int = 0,
) -> Dataset:
    """Class 0 on the unit circle, class 1 on a circle of radius `factor` inside it."""
    check_sizes("circles", n_train, n_test)
    noise = check_nonneg("circles", "noise", noise)
    factor = check_nonneg("circles", "factor", factor)
    if not 0 < factor < 1:
        raise DatasetError(f"circles: factor must be between 0 and 1, got {factor}")

    def make(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        y = _balanced_labels(rng, n, 2)
        t = rng.uniform(0, 2 * np.pi, n)
        r = np.where(y == 0, 1.0, factor)
        x = np.stack([r * np.cos(t), r * np.sin(t)], axis=1)
        return x + rng.normal(0, noise, (n, 2)), y

    return _classification(
        "circles", f"two concentric circles, gaussian noise {noise}", make, n_train, n_test, seed, 2
    )


@generator(
    "xor",
    description="XOR of the signs of x and y (4 quadrants, 2 classes)",
    task="classification",
    input_shape=(2,),
    num_classes=2,
)
def xor(*, n_train: int = 1500, n_test: int = 500, noise: float = 0.05, seed: int = 0) -> Dataset:
    """Uniform points in [-1, 1]^2, class 1 where x*y > 0; `noise` jitters them after labelling."""
    check_sizes("xor", n_train, n_test)
    noise = check_nonneg("xor", "noise", noise)

    def make(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.uniform(-1, 1, (n, 2))
        y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)
        return x + rng.normal(0, noise, (n, 2)), y

    return _classification(
        "xor", f"XOR quadrants, gaussian noise {noise}", make, n_train, n_test, seed, 2
    )


@generator(
    "blobs",
    description="4 gaussian blobs (linearly separable-ish)",
    task="classification",
    input_shape=(2,),
    num_classes=4,
)
def blobs(
    *, n_train: int = 1500, n_test: int = 500, noise: float = 0.8, centers: int = 4, seed: int = 0
) -> Dataset:
    """`centers` isotropic gaussian blobs of std `noise`, centred evenly on a circle of radius 3."""
    check_sizes("blobs", n_train, n_test)
    noise = check_nonneg("blobs", "noise", noise)
    if not isinstance(centers, (int, np.integer)) or centers < 2:
        raise DatasetError(f"blobs: centers must be an integer >= 2, got {centers!r}")
    angles = 2 * np.pi * np.arange(centers) / centers + np.pi / 4
    means = 3.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)

    def make(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        y = _balanced_labels(rng, n, centers)
        return means[y] + rng.normal(0, noise, (n, 2)), y

    return _classification(
        "blobs", f"{centers} gaussian blobs, std {noise}", make, n_train, n_test, seed, centers
    )


@generator(
    "spirals-hard",
    description="2 spiral arms of 3 turns: 100+ epochs to learn with the default MLP",
    task="classification",
    input_shape=(2,),
    num_classes=2,
)
def spirals_hard(
    *,
    n_train: int = 1500,
    n_test: int = 500,
    noise: float = 0.05,
    arms: int = 2,
    turns: float = 3.0,
    seed: int = 0,
) -> Dataset:
    """The two-spirals problem: arms winding close together, so the boundary takes shape
    over a hundred epochs and more (measured in the README), not in the first few."""
    return _spirals("spirals-hard", n_train, n_test, noise, arms, turns, seed)


def _regression(name: str, description: str, make, n_train: int, n_test: int, seed: int) -> Dataset:
    rng_train, rng_test = split_rngs(seed)
    x_train, y_train = make(rng_train, n_train)
    x_test, y_test = make(rng_test, n_test)
    return Dataset(
        name=name,
        x_train=x_train.astype(np.float32),
        y_train=y_train.astype(np.float32),
        x_test=x_test.astype(np.float32),
        y_test=y_test.astype(np.float32),
        input_shape=(x_train.shape[1],),
        task="regression",
        num_classes=None,
        class_names=None,
        description=description,
    )


@generator(
    "sine",
    description="noisy sine wave: y = sin(x) + noise, x in [-pi, pi]",
    task="regression",
    input_shape=(1,),
    num_classes=None,
)
def sine(*, n_train: int = 1000, n_test: int = 300, noise: float = 0.1, seed: int = 0) -> Dataset:
    """1-D regression: x (N, 1) uniform in [-pi, pi], y (N, 1) = sin(x) + gaussian noise."""
    check_sizes("sine", n_train, n_test)
    noise = check_nonneg("sine", "noise", noise)

    def make(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.uniform(-np.pi, np.pi, (n, 1))
        return x, np.sin(x) + rng.normal(0, noise, (n, 1))

    return _regression("sine", f"y = sin(x) + N(0, {noise}^2)", make, n_train, n_test, seed)


@generator(
    "surface",
    description="2-D surface: y = sin(1.5 x1) cos(1.5 x2) + noise",
    task="regression",
    input_shape=(2,),
    num_classes=None,
)
def surface(
    *, n_train: int = 2000, n_test: int = 500, noise: float = 0.05, seed: int = 0
) -> Dataset:
    """2-D regression: x (N, 2) uniform in [-2, 2]^2, y (N, 1) a smooth bumpy surface."""
    check_sizes("surface", n_train, n_test)
    noise = check_nonneg("surface", "noise", noise)

    def make(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.uniform(-2, 2, (n, 2))
        y = np.sin(1.5 * x[:, :1]) * np.cos(1.5 * x[:, 1:])
        return x, y + rng.normal(0, noise, (n, 1))

    return _regression(
        "surface", f"y = sin(1.5 x1) cos(1.5 x2) + N(0, {noise}^2)", make, n_train, n_test, seed
    )
