"""Dataset containers, the error type and the registry of built-in datasets.

Every loader returns a `Dataset` whose arrays follow one convention (docs/ARCHITECTURE.md):
images are uint8 (N, H, W, C), tabular features float32 (N, D), class labels int64 (N,),
regression targets float32 (N, k). The constructor checks all of it, so a loader bug or a bad
user file fails here with a message that names the array, instead of deep inside training.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import SupportsFloat

import numpy as np

#: The form of y a task needs: (ndim, dtype, the words a message says it in).
_TARGETS = {
    "classification": (1, np.int64, "int64 class indices of shape (N,)"),
    "regression": (2, np.float32, "float32 targets of shape (N, k)"),
}
TASKS = tuple(_TARGETS)
#: At most this many classes: a confusion matrix and per-class metrics are K x K / K sized, so
#: one stray label (9999, or 2,000,000,000 from a damaged file) must not size them.
MAX_CLASSES = 1000


class DatasetError(ValueError):
    """A dataset cannot be loaded because of something the user can fix (file, folder, option)."""


class UnknownDataset(DatasetError):
    """The name is neither a built-in dataset nor an existing path (a usage error in the CLI)."""


def check_finite(name: str, x: np.ndarray) -> None:
    """Raise DatasetError naming `name` and the first row that holds NaN or inf."""
    if x.dtype.kind != "f":
        return
    finite = np.isfinite(x)
    if finite.all():  # an empty array too
        return
    rows = finite.reshape(len(x), -1).all(axis=1)
    row = int(np.argmin(rows))
    raise DatasetError(f"{name} holds NaN or inf values (first at row {row})")


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A train/test pair of arrays with the metadata a model and a UI need.

    Frozen so that a loaded dataset can be shared between the trainer and the UI safely;
    `nnlib.datasets.prepare` makes normalised float32 copies rather than editing it in place.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    input_shape: tuple[int, ...]
    task: str
    num_classes: int | None
    class_names: list[str] | None
    description: str = ""
    #: One-line notices a user should see when the data is used (the CLI prints them, the app
    #: shows them), e.g. that a partial MNIST folder was split into train and test.
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        if self.task not in TASKS:
            raise DatasetError(f"{self.name}: task must be one of {TASKS}, got {self.task!r}")
        for split in ("train", "test"):
            self._check_split(split)
        if len(self.x_train) == 0:
            raise DatasetError(f"{self.name}: the training set is empty")
        if self.task == "classification":
            self._check_classes()
        elif self.num_classes is not None or self.class_names is not None:
            raise DatasetError(f"{self.name}: a regression dataset has no num_classes/class_names")

    def _check_split(self, split: str) -> None:
        x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
        where = f"{self.name}: x_{split}"
        if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray):
            raise DatasetError(f"{where}/y_{split} must be numpy arrays")
        if x.shape[1:] != self.input_shape:
            raise DatasetError(
                f"{where} has per-sample shape {x.shape[1:]}, expected input_shape "
                f"{self.input_shape}"
            )
        if x.dtype not in (np.uint8, np.float32):
            raise DatasetError(f"{where} has dtype {x.dtype}, expected uint8 or float32")
        if len(x) != len(y):
            raise DatasetError(f"{where} has {len(x)} rows but y_{split} has {len(y)}")
        ndim, dtype, form = _TARGETS[self.task]
        if y.ndim != ndim or y.dtype != dtype:
            raise DatasetError(f"{self.name}: y_{split} must be {form}, got {y.dtype} {y.shape}")
        check_finite(f"{self.name}: x_{split}", x)
        check_finite(f"{self.name}: y_{split}", y)

    def _check_classes(self) -> None:
        k = self.num_classes
        if not isinstance(k, int) or not 1 <= k <= MAX_CLASSES:
            raise DatasetError(
                f"{self.name}: num_classes must be an int in 1..{MAX_CLASSES}, got {k!r}"
            )
        for split in ("train", "test"):
            y = getattr(self, f"y_{split}")
            bad = np.flatnonzero((y < 0) | (y >= k))
            if bad.size:
                raise DatasetError(
                    f"{self.name}: y_{split}[{bad[0]}] = {y[bad[0]]} is not a class index "
                    f"0..{k - 1}"
                )
        if self.class_names is not None and len(self.class_names) != k:
            raise DatasetError(f"{self.name}: {len(self.class_names)} class_names for {k} classes")

    @property
    def train_size(self) -> int:
        return len(self.x_train)

    @property
    def test_size(self) -> int:
        return len(self.x_test)

    @property
    def outputs(self) -> int:
        """Model outputs per sample: one logit per class, or one value per regression target."""
        if self.task == "regression":
            return int(self.y_train.shape[1])
        assert self.num_classes is not None, "__post_init__ checks a classification set's"
        return self.num_classes

    @property
    def is_image(self) -> bool:
        """True for (H, W, C) samples: tells a UI to draw them and a builder to offer convs."""
        return len(self.input_shape) == 3

    def __repr__(self) -> str:
        classes = f", num_classes={self.num_classes}" if self.num_classes else ""
        return (
            f"Dataset({self.name!r}, {self.task}, input_shape={self.input_shape}{classes}, "
            f"train={self.train_size}, test={self.test_size}, x dtype={self.x_train.dtype})"
        )


Locate = Callable[[int], str]


def row_locator(prefix: str, suffix: str = "") -> Locate:
    """The `Locate` that names row i as prefix + i + suffix ("data.npz: y_train[" 3 "]")."""
    return lambda i: f"{prefix}{i}{suffix}"


def count_classes(
    where: str,
    parts: Sequence[tuple[np.ndarray, Locate]],
    class_names: Sequence[str] | None = None,
) -> int:
    """The number of classes K of integer labels read from a file, checked before anything is
    sized by it: the one rule every loader uses.

    `parts` pairs each label array (whole numbers, any numeric dtype) with `locate(i)`, which
    names row i of it in messages. K is max label + 1 (or len(class_names) when the file names
    its classes) and must be <= MAX_CLASSES; without class names, more than half of the
    classes 0..K-1 having no sample means the labels are not class indices (ids, years,
    a damaged value), which is refused too rather than training a mostly empty K-way output.
    """
    top, top_at = _highest_label(parts)
    k = int(top) + 1
    if class_names is not None:
        return _named_classes(where, class_names, k, f"{_label(top)} ({top_at})")
    advice = "number the classes 0..K-1, or use task='regression' for numeric targets"
    if k > MAX_CLASSES:
        raise DatasetError(
            f"{top_at}: label {_label(top)} would make {k} classes; at most {MAX_CLASSES} "
            f"are supported ({advice})"
        )
    counts = sum(np.bincount(y.astype(np.int64), minlength=k) for y, _ in parts)
    present = int(np.count_nonzero(counts))
    if 2 * (k - present) > k:
        raise DatasetError(
            f"{top_at}: label {_label(top)} makes {k} classes 0..{k - 1} but only {present} "
            f"of them have a sample ({advice})"
        )
    return k


def class_names_for(
    where: str,
    parts: Sequence[tuple[np.ndarray, Locate]],
    class_names: Sequence[str] | None = None,
) -> list[str]:
    """The names of the K classes of labels read from a file (K checked by `count_classes`):
    the file's own `class_names`, else the class numbers "0".."K-1"."""
    k = count_classes(where, parts, class_names)
    return [str(c) for c in range(k)] if class_names is None else list(class_names)


def _highest_label(parts: Sequence[tuple[np.ndarray, Locate]]) -> tuple[float, str | None]:
    """The highest label of all parts and where it is (-1, None when there is none); a
    negative label anywhere is refused first, since no K counts it."""
    top, top_at = -1, None
    for y, locate in parts:
        if not y.size:
            continue
        low = int(np.argmin(y))
        if y[low] < 0:
            raise DatasetError(
                f"{locate(low)}: label {_label(y[low])} is negative; class labels must be 0..K-1"
            )
        high = int(np.argmax(y))
        if y[high] > top:
            top, top_at = y[high], locate(high)
    return top, top_at


def _named_classes(where: str, class_names: Sequence[str], k: int, highest: str) -> int:
    """K of a file that names its classes: len(class_names), which must cover the labels
    (`k`, from the `highest` label, shown as value and place) and stay within MAX_CLASSES."""
    if len(class_names) > MAX_CLASSES:
        raise DatasetError(
            f"{where}: {len(class_names)} class_names; at most {MAX_CLASSES} classes are supported"
        )
    if k > len(class_names):
        raise DatasetError(f"{where}: {len(class_names)} class_names but labels go up to {highest}")
    return len(class_names)


def _label(value: SupportsFloat) -> str:
    """A label value as written in the file: 9999, not 9999.0 or 1e+04."""
    number = float(value)
    return str(int(number)) if number.is_integer() else f"{number:g}"


@dataclass(frozen=True)
class DatasetInfo:
    """What `available()` reports about a dataset without loading it (cheap for a picker UI)."""

    name: str
    description: str
    task: str
    input_shape: tuple[int, ...]
    num_classes: int | None
    train_size: int
    test_size: int
    on_disk: bool
    source: str  # "generated" or "download"
    #: A generated set's default `noise` (in the generator's own unit); None: it has none.
    noise: float | None = None


@dataclass(frozen=True)
class Builtin:
    """A registry entry: how to build a named dataset and how to describe it cheaply."""

    name: str
    build: Callable[..., Dataset]
    info: Callable[[Path], DatasetInfo]
    options: tuple[str, ...]  # keyword options `load` may pass on to `build`


REGISTRY: dict[str, Builtin] = {}


def register(entry: Builtin) -> None:
    """Add a built-in dataset; names are unique so `load(name)` is unambiguous."""
    if entry.name in REGISTRY:
        raise ValueError(f"dataset {entry.name!r} is already registered")
    REGISTRY[entry.name] = entry


def generator(
    name: str,
    *,
    description: str,
    task: str,
    input_shape: tuple[int, ...],
    num_classes: int | None,
) -> Callable[[Callable[..., Dataset]], Callable[..., Dataset]]:
    """Register a keyword-only generator function `fn(*, n_train, n_test, seed, ...)` by name.

    The default sizes shown by `available()` are read from the function's own defaults, so the
    listing cannot drift from what `load(name)` produces.
    """

    def wrap(fn: Callable[..., Dataset]) -> Callable[..., Dataset]:
        params = inspect.signature(fn).parameters
        defaults = {p.name: p.default for p in params.values()}
        info = DatasetInfo(
            name=name,
            description=description,
            task=task,
            input_shape=input_shape,
            num_classes=num_classes,
            train_size=defaults["n_train"],
            test_size=defaults["n_test"],
            on_disk=True,
            source="generated",
            noise=defaults.get("noise"),
        )

        def build(
            *, seed: int = 0, data_dir: Path | None = None, download: bool = True, **kwargs: object
        ) -> Dataset:
            return fn(seed=seed, **kwargs)

        options = tuple(p for p in params if p != "seed")
        register(Builtin(name=name, build=build, info=lambda _dir: info, options=options))
        return fn

    return wrap


def check_sizes(name: str, n_train: int, n_test: int) -> None:
    """Reject sizes that would build an empty or negative split with a message naming them."""
    for option, value, least in (("n_train", n_train, 1), ("n_test", n_test, 0)):
        if not isinstance(value, (int, np.integer)) or value < least:
            raise DatasetError(f"{name}: {option} must be an integer >= {least}, got {value!r}")


def check_nonneg(name: str, option: str, value: float) -> float:
    """Validate a non-negative float option (noise levels and the like)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise DatasetError(f"{name}: {option} must be a number, got {value!r}") from None
    if not 0 <= value < np.inf:  # NaN fails every comparison
        raise DatasetError(f"{name}: {option} must be a finite number >= 0, got {value!r}")
    return value


def split_rngs(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent generators for train and test, so the test set does not move with n_train."""
    root = np.random.SeedSequence(seed)
    a, b = root.spawn(2)
    return np.random.default_rng(a), np.random.default_rng(b)
