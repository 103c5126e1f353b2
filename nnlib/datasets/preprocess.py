"""From a Dataset to float32 arrays a model can train on: subset, validation split, normalisation.

Normalisation statistics always come from the training rows only (after the validation rows are
taken out), so validation and test scores are honest. `Prepared.normalization` records what was
done, and `Prepared.transform` applies the same thing to new inputs (e.g. a digit drawn in a UI).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import Dataset, DatasetError, check_finite

NORMALIZE = ("auto", "scale", "standardize", None)


def shuffle(x: np.ndarray, y: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The same random permutation of x and y (copies), reproducible for a seed."""
    if len(x) != len(y):
        raise DatasetError(f"shuffle: x has {len(x)} rows but y has {len(y)}")
    perm = np.random.default_rng(seed).permutation(len(x))
    return x[perm], y[perm]


def held_out(fraction: float, n: int) -> int:
    """Rows a validation split of `fraction` holds out of `n`: round(fraction * n)."""
    return int(round(fraction * n))


def split_indices(
    y: np.ndarray, fraction: float, *, seed: int = 0, stratify: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted row indices (kept, held_out) with round(fraction * N) rows held out.

    Stratified: each class gives its share, the rounding remainder going to the classes with
    the largest fractional share, so class proportions match as closely as integers allow.
    """
    n = len(y)
    if not 0 <= fraction < 1:
        raise DatasetError(f"validation fraction must be in [0, 1), got {fraction!r}")
    n_out = held_out(fraction, n)
    if n_out and n - n_out < 1:
        raise DatasetError(f"a {fraction} split of {n} rows leaves no training rows")
    rng = np.random.default_rng(seed)
    if n_out == 0:
        return np.arange(n), np.arange(0)
    if not stratify:
        held = rng.permutation(n)[:n_out]
    else:
        classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
        share = fraction * counts
        quota = np.floor(share).astype(int)
        extra = n_out - quota.sum()
        order = np.lexsort((rng.random(len(classes)), -(share - quota)))
        quota[order[:extra]] += 1
        held = np.concatenate(
            [rng.permutation(np.flatnonzero(inverse == k))[:q] for k, q in enumerate(quota)]
        )
    mask = np.zeros(n, dtype=bool)
    mask[held] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def _is_class_labels(y: np.ndarray) -> bool:
    return y.ndim == 1 and y.dtype.kind in "iub"


def train_val_split(
    x: np.ndarray, y: np.ndarray, fraction: float, *, seed: int = 0, stratify: bool | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_val, y_val) with `fraction` of the rows held out for validation.

    stratify=None means: stratified for integer class labels, random otherwise (regression).
    Rows keep their original order within each part.
    """
    if len(x) != len(y):
        raise DatasetError(f"train_val_split: x has {len(x)} rows but y has {len(y)}")
    if stratify is None:
        stratify = _is_class_labels(y)
    keep, held = split_indices(y, fraction, seed=seed, stratify=stratify)
    return x[keep], y[keep], x[held], y[held]


def _feature_axes(x: np.ndarray) -> tuple[int, ...]:
    # statistics per feature for (N, D), per channel for images (N, H, W, C)
    return tuple(range(x.ndim - 1))


def _stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(x) == 0:
        raise DatasetError("standardize: cannot compute statistics of an empty array")
    axes = _feature_axes(x)
    x32 = x.astype(np.float32, copy=False)
    mean = x32.mean(axis=axes, dtype=np.float64).astype(np.float32)
    spread = x32 - mean  # one float32 temporary, squared in place (np.std would make a float64)
    spread *= spread
    std = np.sqrt(spread.mean(axis=axes, dtype=np.float64)).astype(np.float32)
    std[std == 0] = 1.0
    return mean, std


def standardize(
    x: np.ndarray, mean: np.ndarray | None = None, std: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """((x - mean) / std as float32, mean, std); mean/std are computed from x when not given.

    Per feature for (N, D) data, per channel for images. A constant feature gets std 1 so it
    maps to 0 instead of dividing by zero.
    """
    if mean is None or std is None:
        mean, std = _stats(x)
    mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    return (x.astype(np.float32, copy=False) - mean) / std, mean, std


def _scale_factor(x: np.ndarray) -> float:
    if x.dtype == np.uint8:
        return 255.0
    peak = float(np.abs(x).max()) if x.size else 0.0
    return peak or 1.0


def scale(x: np.ndarray, factor: float | None = None) -> tuple[np.ndarray, float]:
    """(x / factor as float32, factor); default factor 255 for uint8, else max |x| (-> [-1, 1])."""
    factor = _scale_factor(x) if factor is None else float(factor)
    return x.astype(np.float32) / np.float32(factor), factor


def _fit(x: np.ndarray, kind: str | None) -> dict:
    """The normalisation record for `kind`, with statistics taken from x (the train rows)."""
    if kind == "auto":
        kind = "scale" if x.dtype == np.uint8 else "standardize"
    if kind == "scale":
        return {"kind": "scale", "factor": _scale_factor(x)}
    if kind == "standardize":
        mean, std = _stats(x)
        return {"kind": "standardize", "mean": mean.tolist(), "std": std.tolist()}
    return {"kind": "none"}


def _apply(norm: dict, x: np.ndarray) -> np.ndarray:
    if norm["kind"] == "scale":
        return scale(x, norm["factor"])[0]
    if norm["kind"] == "standardize":
        return standardize(x, norm["mean"], norm["std"])[0]
    return x.astype(np.float32)


@dataclass(eq=False, repr=False)
class Prepared:
    """Model-ready arrays: float32 x, labels as in the Dataset, plus what normalisation did."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    dataset: Dataset
    normalization: dict  # {"kind": "scale", "factor": f} | {"kind": "standardize", ...} | none
    input_shape: tuple[int, ...]
    task: str
    num_classes: int | None
    class_names: list[str] | None

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Apply the recorded normalisation to new raw inputs (float32 out)."""
        return _apply(self.normalization, np.asarray(x))

    def __repr__(self) -> str:
        return (
            f"Prepared({self.dataset.name!r}, train={len(self.x_train)}, "
            f"val={len(self.x_val)}, test={len(self.x_test)}, "
            f"normalization={self.normalization['kind']})"
        )


def prepare(
    ds: Dataset,
    *,
    normalize: str | None = "auto",
    validation_split: float = 0.0,
    subset: int | None = None,
    seed: int = 0,
) -> Prepared:
    """Subset (first N training rows), validation split, then normalise with train statistics.

    normalize: "auto" scales uint8 images to [0, 1] and standardises float features; "scale",
    "standardize" or None (float32 cast only) force a choice.
    """
    if normalize not in NORMALIZE:
        raise DatasetError(f"normalize must be one of {NORMALIZE}, got {normalize!r}")
    x, y = ds.x_train, ds.y_train
    for split in ("train", "test"):
        check_finite(f"{ds.name}: x_{split}", getattr(ds, f"x_{split}"))
    if subset is not None:
        if isinstance(subset, bool) or not isinstance(subset, (int, np.integer)) or subset < 1:
            raise DatasetError(f"subset must be a positive integer, got {subset!r}")
        if subset > len(x):
            raise DatasetError(
                f"subset={subset} is larger than the {len(x)} training rows of {ds.name}"
            )
        x, y = x[:subset], y[:subset]
    x_train, y_train, x_val, y_val = train_val_split(
        x, y, validation_split, seed=seed, stratify=ds.task == "classification"
    )
    norm = _fit(x_train, normalize)
    return Prepared(
        x_train=_apply(norm, x_train),
        y_train=y_train,
        x_val=_apply(norm, x_val),
        y_val=y_val,
        x_test=_apply(norm, ds.x_test),
        y_test=ds.y_test,
        dataset=ds,
        normalization=norm,
        input_shape=ds.input_shape,
        task=ds.task,
        num_classes=ds.num_classes,
        class_names=list(ds.class_names) if ds.class_names is not None else None,
    )
