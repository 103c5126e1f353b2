"""A user's own data, passed to `load` as a path: .npz, .csv, or a folder of IDX files.

Task inference (unless task="classification"/"regression" is given): integer (or, in a CSV,
integer-valued) labels mean classification with num_classes = max label + 1 (checked by
`base.count_classes`: at most MAX_CLASSES, and no more than half of them empty); float targets
mean regression; a CSV label column of words ("cat", "dog") means classes named by the sorted
words. Files without a test split get a seeded 20% of their rows held out as test (stratified
for classification), and the description says so.

CSV: header auto-detected; delimiter one of , ; tab (from the first line). The label column
defaults to the header column called label/labels/target/class/y when there is one, else
column 0 (the MNIST-in-CSV convention: label first). `image_shape=(28, 28, 1)` turns the
remaining columns into images; 0..255 integer pixels become uint8.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
from numpy.typing import DTypeLike

from .base import Dataset, DatasetError, Locate, check_finite, count_classes, row_locator
from .idxfolder import ROLES, canonical_name, find_files, load_folder
from .preprocess import train_val_split
from .safeio import read_npz, read_regular

HOLDOUT = 0.2
LABEL_NAMES = ("label", "labels", "target", "class", "y")


def load_path(
    path: Path,
    *,
    seed: int = 0,
    label_column: int | str | None = None,
    image_shape: tuple[int, ...] | None = None,
    task: str | None = None,
    cache: bool = True,
) -> Dataset:
    """Dispatch on the kind of path: folder of IDX files, .npz or .csv."""
    if task not in (None, "classification", "regression"):
        raise DatasetError(f"task must be 'classification' or 'regression', got {task!r}")
    if image_shape is not None:
        image_shape = _check_image_shape(image_shape)
    if path.is_dir():
        if label_column is not None or image_shape is not None or task is not None:
            raise DatasetError(
                f"{path}: label_column, image_shape and task apply to .csv/.npz "
                "files, not to a folder of IDX files"
            )
        files = find_files(path)
        if not files:
            names = ", ".join(canonical_name(r) + "[.gz]" for r in ROLES)
            raise DatasetError(f"{path}: no IDX files found; expected {names}")
        return load_folder(path.name, path, files, title=f"IDX files in {path}", use_cache=cache)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        if label_column is not None:
            raise DatasetError(f"{path}: label_column applies to CSV files, not .npz")
        return _load_npz(path, seed=seed, image_shape=image_shape, task=task)
    if suffix in (".csv", ".tsv", ".txt"):
        return _load_csv(
            path, seed=seed, label_column=label_column, image_shape=image_shape, task=task
        )
    raise DatasetError(
        f"{path}: unsupported file type {suffix or '(none)'}; use .npz, .csv "
        "or a folder of IDX files"
    )


def _check_image_shape(shape) -> tuple[int, ...]:
    try:
        shape = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        raise DatasetError(f"image_shape must be a tuple like (28, 28, 1), got {shape!r}") from None
    if len(shape) != 3 or min(shape) < 1:
        raise DatasetError(
            f"image_shape must be (height, width, channels) with positive sizes, got {shape}"
        )
    return shape


# ---------------------------------------------------------------------------- inputs and labels


def _as_images(where: str, x: np.ndarray, image_shape: tuple[int, ...] | None) -> np.ndarray:
    """Reshape flat rows to image_shape; (N, H, W) gets a channel axis; 0..255 ints -> uint8."""
    if image_shape is not None:
        per_sample = math.prod(x.shape[1:])
        needed = math.prod(image_shape)
        if per_sample != needed:
            raise DatasetError(
                f"{where}: image_shape {image_shape} needs {needed} values per "
                f"sample, but there are {per_sample}"
            )
        x = x.reshape(len(x), *image_shape)
    elif x.ndim == 3:
        x = x[..., None]
    if x.ndim == 1:
        x = x[:, None]
    if x.dtype == np.uint8:
        return x
    if x.ndim == 4 and x.dtype.kind in "iu" and (x.size == 0 or (x.min() >= 0 and x.max() <= 255)):
        return x.astype(np.uint8)
    return x.astype(np.float32)


def _numeric(where: str, a: np.ndarray) -> np.ndarray:
    if a.dtype.kind not in "biuf":
        raise DatasetError(f"{where}: expected numbers, got an array of dtype {a.dtype}")
    return a


def _labels_from_numbers(
    where: str, y: np.ndarray, task: str | None, locate: Locate | None = None
) -> tuple[np.ndarray, str]:
    """(targets, task) from numeric labels; `locate(i)` turns row index i into a place name.

    Class labels come back whole but in their own dtype: `_finish` counts the classes (and
    refuses stray values) before anything is sized by them or cast."""
    locate = locate or (lambda i: f"{where}[{i}]")
    if y.ndim == 2 and y.shape[1] == 1 and task != "regression":
        y = y[:, 0]
    whole = np.ones(y.shape, bool) if y.dtype.kind in "biu" else np.isfinite(y) & (y == np.round(y))
    if task is None:
        task = "classification" if y.dtype.kind in "biu" else "regression"
    if task == "regression":
        y = y.astype(np.float32)
        return (y[:, None] if y.ndim == 1 else y.reshape(len(y), -1)), task
    if y.ndim != 1:
        raise DatasetError(f"{where}: class labels must be one per row, got shape {y.shape}")
    if not whole.all():
        bad = int(np.flatnonzero(~whole)[0])
        raise DatasetError(f"{locate(bad)}: label {y[bad]} is not an integer class index")
    return y, task


def _finish(
    name: str,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray] | None,
    task: str,
    class_names: list[str] | None,
    description: str,
    seed: int,
    where: str,
    locate: dict[str, Locate],
) -> Dataset:
    """Count the classes, hold out a test split when the file has none, build the Dataset.

    `train` and `test` are (inputs, labels); `locate["train"]` / `locate["test"]` name a row
    of their labels in messages."""
    x, y = train
    num_classes = None
    if task == "classification":
        parts = [(y, locate["train"])] + ([(test[1], locate["test"])] if test is not None else [])
        num_classes = count_classes(where, parts, class_names)
        class_names = class_names or [str(k) for k in range(num_classes)]
        y = y.astype(np.int64)
        test = None if test is None else (test[0], test[1].astype(np.int64))
    if test is None:
        x, y, x_test, y_test = train_val_split(
            x, y, HOLDOUT, seed=seed, stratify=task == "classification"
        )
        how = "stratified " if task == "classification" else ""
        description += (
            f"; no test split in the file, so a seeded {how}{HOLDOUT:.0%} of the "
            f"rows ({len(x_test)}) is held out as test"
        )
    else:
        x_test, y_test = test
    return Dataset(
        name=name,
        x_train=x,
        y_train=y,
        x_test=x_test,
        y_test=y_test,
        input_shape=x.shape[1:],
        task=task,
        num_classes=num_classes,
        class_names=class_names,
        description=description,
    )


# ------------------------------------------------------------------------------------------ npz


def _load_npz(
    path: Path, *, seed: int, image_shape: tuple[int, ...] | None, task: str | None
) -> Dataset:
    """A user's .npz: x_train, y_train and optionally x_test, y_test, class_names."""
    arrays = read_npz(path)
    has_test = _npz_has_test(path, arrays)
    x, y, task = _npz_split(path, arrays, "train", image_shape, task)
    test = None
    if has_test:
        x_test, y_test, task = _npz_split(path, arrays, "test", image_shape, task)
        if x.shape[1:] != x_test.shape[1:]:
            raise DatasetError(
                f"{path}: x_train rows have shape {x.shape[1:]} but x_test "
                f"rows have {x_test.shape[1:]}"
            )
        if x.dtype != x_test.dtype:
            x, x_test = x.astype(np.float32), x_test.astype(np.float32)
        test = (x_test, y_test)
    return _finish(
        path.stem,
        (x, y),
        test,
        task,
        _npz_class_names(path, arrays, task),
        f"user data from {path}",
        seed,
        str(path),
        {s: row_locator(f"{path}: y_{s}[", "]") for s in ("train", "test")},
    )


def _npz_has_test(path: Path, arrays: dict[str, np.ndarray]) -> bool:
    """Whether the archive holds a test split; DatasetError unless it holds both train arrays
    and both or neither test array."""
    for key in ("x_train", "y_train"):
        if key not in arrays:
            raise DatasetError(
                f"{path}: missing array {key!r} (found: "
                f"{', '.join(sorted(arrays)) or 'none'}); expected x_train, "
                "y_train and optionally x_test, y_test, class_names"
            )
    has_test = [k in arrays for k in ("x_test", "y_test")]
    if any(has_test) and not all(has_test):
        missing = "y_test" if has_test[0] else "x_test"
        raise DatasetError(
            f"{path}: has {'x_test' if has_test[0] else 'y_test'} but not "
            f"{missing}; give both or neither"
        )
    return all(has_test)


def _npz_split(
    path: Path,
    arrays: dict[str, np.ndarray],
    split: str,
    image_shape: tuple[int, ...] | None,
    task: str | None,
) -> tuple[np.ndarray, np.ndarray, str]:
    """One split's inputs and labels, checked, and the task its labels show."""
    xk, yk = f"x_{split}", f"y_{split}"
    x = _numeric(f"{path}: {xk}", arrays[xk])
    y = _numeric(f"{path}: {yk}", arrays[yk])
    if x.ndim == 0 or y.ndim == 0 or len(x) != len(y):
        raise DatasetError(
            f"{path}: {xk} has {len(x) if x.ndim else 0} rows but {yk} has "
            f"{len(y) if y.ndim else 0}"
        )
    x = _as_images(f"{path}: {xk}", x, image_shape)
    check_finite(f"{path}: {xk}", x)
    check_finite(f"{path}: {yk}", y)
    labels, task = _labels_from_numbers(f"{path}: {yk}", y, task)
    return x, labels, task


def _npz_class_names(path: Path, arrays: dict[str, np.ndarray], task: str) -> list[str] | None:
    """The archive's class_names, for class labels only (None when it has none)."""
    if "class_names" not in arrays:
        return None
    names = arrays["class_names"]
    if task != "classification" or names.ndim != 1 or names.dtype.kind not in "US":
        raise DatasetError(f"{path}: class_names must be a 1-D array of strings for class labels")
    return [str(n) for n in names]


# ------------------------------------------------------------------------------------------ csv


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _read_lines(path: Path) -> tuple[list[str], list[int]]:
    """Non-blank lines and their 1-based line numbers in the file."""
    data = read_regular(path, "CSV file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    lines, numbers = [], []
    for i, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            lines.append(line)
            numbers.append(i)
    if not lines:
        raise DatasetError(f"{path}: the file is empty")
    return lines, numbers


def _split_line(line: str, delimiter: str) -> list[str]:
    return next(csv.reader([line], delimiter=delimiter))


def _header(lines: list[str], delimiter: str) -> list[str] | None:
    """The first line's cells when it is a header: not all numbers, and (when a second line
    follows) a number below at least one of its words."""
    row0 = [c.strip() for c in _split_line(lines[0], delimiter)]
    row1 = [c.strip() for c in _split_line(lines[1], delimiter)] if len(lines) > 1 else None
    numeric0 = [_is_number(c) for c in row0]
    if all(numeric0):
        return None
    if row1 is None or any(not a and _is_number(b) for a, b in zip(numeric0, row1, strict=False)):
        return row0
    return None


def _csv_inputs(path: Path, x: np.ndarray, image_shape: tuple[int, ...] | None) -> np.ndarray:
    """The feature columns as the Dataset holds them: float32 features, or images of
    `image_shape` (uint8 when every value is an integer in 0..255, else float32)."""
    if image_shape is None:
        x = x.astype(np.float32)
        check_finite(f"{path} (features as float32)", x)
        return x
    integral = x.size > 0 and np.all(x == np.round(x)) and x.min() >= 0 and x.max() <= 255
    x = x.reshape(len(x), *image_shape)
    return x.astype(np.uint8) if integral else x.astype(np.float32)


def _load_csv(
    path: Path,
    *,
    seed: int,
    label_column: int | str | None,
    image_shape: tuple[int, ...] | None,
    task: str | None,
) -> Dataset:
    """A user's .csv: a label column and feature columns, with or without a header line."""
    lines, numbers = _read_lines(path)
    delimiter = max((",", ";", "\t"), key=lines[0].count)
    header = _header(lines, delimiter)
    if header is not None:
        lines, numbers = lines[1:], numbers[1:]
    if not lines:
        raise DatasetError(f"{path}: only a header line, no data rows")
    ncols = len(header) if header is not None else len(_split_line(lines[0], delimiter))
    if ncols < 2:
        raise DatasetError(
            f"{path}: need at least 2 columns (a label and a feature), found {ncols}"
        )

    def col_name(c: int) -> str:
        return f"column {c}" + (f" ({header[c]!r})" if header is not None else "")

    def place(i: int, c: int) -> str:
        return f"{path} line {numbers[i]}, {col_name(c)}"

    _check_ragged(path, lines, numbers, delimiter, ncols, header is not None)
    label = _resolve_label_column(path, label_column, header, ncols)
    features = [c for c in range(ncols) if c != label]
    try:
        x = _columns(lines, np.float64, features, delimiter).reshape(len(lines), len(features))
    except ValueError as e:
        _raise_first_bad_cell(lines, delimiter, features, place)
        raise DatasetError(f"{path}: cannot parse the numbers ({e})") from None
    bad = np.argwhere(~np.isfinite(x))
    if bad.size:
        i, j = bad[0]
        raise DatasetError(f"{place(i, features[j])}: {x[i, j]} value (NaN/inf not allowed)")
    labels = _columns(lines, str, [label], delimiter).reshape(len(lines))
    y, task, class_names = _csv_labels(labels, task, image_shape, lambda i: place(i, label))
    if image_shape is not None and len(features) != int(np.prod(image_shape)):
        raise DatasetError(
            f"{path}: image_shape {image_shape} needs {int(np.prod(image_shape))} pixel "
            f"columns but there are {len(features)} ({ncols} columns minus the label "
            f"{col_name(label)})"
        )
    return _finish(
        path.stem,
        (_csv_inputs(path, x, image_shape), y),
        None,
        task,
        class_names,
        f"user data from {path} (label {col_name(label)})",
        seed,
        str(path),
        {"train": lambda i: place(i, label)},
    )


def _columns(lines: list[str], dtype: DTypeLike, columns: list[int], delimiter: str) -> np.ndarray:
    """The cells of `columns` in CSV `lines` as one `dtype` array (quoted cells allowed; no
    comment lines, so a '#' in a cell is data)."""
    return np.loadtxt(
        lines,
        dtype=dtype,
        usecols=columns,
        delimiter=delimiter,
        quotechar='"',
        ndmin=1,
        comments=None,
    )


def _check_ragged(
    path: Path, lines: list[str], numbers: list[int], delimiter: str, ncols: int, has_header: bool
) -> None:
    quoted = any('"' in line for line in lines)
    for i, line in enumerate(lines):
        n = len(_split_line(line, delimiter)) if quoted else line.count(delimiter) + 1
        if n != ncols:
            first = "the header" if has_header else "the first row"
            raise DatasetError(f"{path} line {numbers[i]}: {n} columns, but {first} has {ncols}")


def _resolve_label_column(
    path: Path, label_column: int | str | None, header: list[str] | None, ncols: int
) -> int:
    if label_column is None:
        if header is not None:
            matches = [c for c, h in enumerate(header) if h.lower() in LABEL_NAMES]
            if len(matches) == 1:
                return matches[0]
        return 0
    if isinstance(label_column, str) and not label_column.lstrip("-").isdigit():
        if header is None:
            raise DatasetError(
                f"{path}: label_column {label_column!r} is a name but the file has no header line"
            )
        if label_column not in header:
            raise DatasetError(
                f"{path}: no column named {label_column!r} (columns: "
                f"{', '.join(header[:20])}{', ...' if len(header) > 20 else ''})"
            )
        return header.index(label_column)
    c = int(label_column)
    if not -ncols <= c < ncols:
        raise DatasetError(f"{path}: label_column {c} is out of range for {ncols} columns")
    return c % ncols


def _raise_first_bad_cell(lines: list[str], delimiter: str, features: list[int], place) -> None:
    """Slow path after a failed fast parse: find and name the first cell that is not a number."""
    for i, line in enumerate(lines):
        cells = _split_line(line, delimiter)
        for c in features:
            cell = cells[c].strip()
            if not _is_number(cell):
                what = "empty cell" if not cell else f"{cell[:30]!r} is not a number"
                raise DatasetError(f"{place(i, c)}: {what}")


def _csv_labels(
    labels: np.ndarray, task: str | None, image_shape: tuple[int, ...] | None, locate
) -> tuple[np.ndarray, str, list[str] | None]:
    """Labels as numbers (classification or regression) or words (classes named by them)."""
    labels = np.char.strip(labels)
    numeric = np.array([_is_number(s) for s in labels])
    if not numeric.all():
        if numeric.any() or task == "regression":
            bad = int(np.flatnonzero(~numeric)[0])
            cell = str(labels[bad])
            what = f"label {cell!r} is not a number" if cell else "empty label"
            raise DatasetError(f"{locate(bad)}: {what}")
        names, y = np.unique(labels, return_inverse=True)
        return y.astype(np.int64), "classification", [str(n) for n in names]
    values = labels.astype(np.float64)
    non_finite = np.flatnonzero(~np.isfinite(values))
    if non_finite.size:
        first = int(non_finite[0])
        raise DatasetError(f"{locate(first)}: label {labels[first]} (NaN/inf not allowed)")
    if task is None:
        integral = bool(np.all(values == np.round(values)))
        task = "classification" if integral or image_shape is not None else "regression"
    y, task = _labels_from_numbers("labels", values, task, locate)
    return y, task, None
