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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import DTypeLike

from .base import (
    TASKS,
    Dataset,
    DatasetError,
    Locate,
    check_finite,
    class_names_for,
    row_locator,
)
from .idxfolder import ROLES, canonical_name, find_files, load_folder
from .preprocess import train_val_split
from .safeio import read_npz, read_regular

HOLDOUT = 0.2
LABEL_NAMES = ("label", "labels", "target", "class", "y")
#: The dtype of a Dataset's labels by task (class indices, regression targets).
LABEL_DTYPES = {"classification": np.int64, "regression": np.float32}
#: A split's (inputs, labels).
Pair = tuple[np.ndarray, np.ndarray]


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
    if task not in (None, *TASKS):
        raise DatasetError(f"task must be 'classification' or 'regression', got {task!r}")
    if image_shape is not None:
        image_shape = _check_image_shape(image_shape)
    if path.is_dir():
        return _load_idx_folder(path, cache, (label_column, image_shape, task))
    suffix = path.suffix.lower()
    loader = _FILE_LOADERS.get(suffix)
    if loader is None:
        raise DatasetError(
            f"{path}: unsupported file type {suffix or '(none)'}; use .npz, .csv "
            "or a folder of IDX files"
        )
    return loader(path, seed=seed, label_column=label_column, image_shape=image_shape, task=task)


def _load_idx_folder(path: Path, cache: bool, file_options: tuple[object, ...]) -> Dataset:
    """A folder of IDX files, which takes none of the options that describe a .csv/.npz's
    columns (`file_options`: label_column, image_shape, task)."""
    if any(option is not None for option in file_options):
        raise DatasetError(
            f"{path}: label_column, image_shape and task apply to .csv/.npz "
            "files, not to a folder of IDX files"
        )
    files = find_files(path)
    if not files:
        names = ", ".join(canonical_name(r) + "[.gz]" for r in ROLES)
        raise DatasetError(f"{path}: no IDX files found; expected {names}")
    return load_folder(path.name, path, files, title=f"IDX files in {path}", use_cache=cache)


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
    x = _sample_shaped(where, x, image_shape)
    if x.dtype == np.uint8:
        return x
    if x.ndim == 4 and x.dtype.kind in "iu" and _byte_valued(x):
        return x.astype(np.uint8)
    return x.astype(np.float32)


def _sample_shaped(where: str, x: np.ndarray, image_shape: tuple[int, ...] | None) -> np.ndarray:
    """`x` with the per-sample shape the Dataset holds: `image_shape` when given (which must
    hold every value of a row), (H, W, 1) for (N, H, W) images, (N, 1) for one value a row."""
    if image_shape is not None:
        per_sample = math.prod(x.shape[1:])
        needed = math.prod(image_shape)
        if per_sample != needed:
            raise DatasetError(
                f"{where}: image_shape {image_shape} needs {needed} values per "
                f"sample, but there are {per_sample}"
            )
        return x.reshape(len(x), *image_shape)
    return x[..., None] if x.ndim in (1, 3) else x


def _byte_valued(x: np.ndarray) -> bool:
    """Whether every value of `x` is an integer in 0..255, so that uint8 holds it exactly."""
    return x.size == 0 or bool(np.all(x == np.round(x)) and x.min() >= 0 and x.max() <= 255)


def _numeric(where: str, a: np.ndarray) -> np.ndarray:
    if a.dtype.kind not in "biuf":
        raise DatasetError(f"{where}: expected numbers, got an array of dtype {a.dtype}")
    return a


def _labels_from_numbers(
    where: str, y: np.ndarray, task: str | None, locate: Locate
) -> tuple[np.ndarray, str]:
    """(targets, task) from numeric labels; `locate(i)` turns row index i into a place name.

    Class labels come back whole but in their own dtype: `_finish` counts the classes (and
    refuses stray values) before anything is sized by them or cast."""
    if task is None:
        task = "classification" if y.dtype.kind in "biu" else "regression"
    if task == "regression":
        return y.astype(np.float32).reshape(len(y), math.prod(y.shape[1:])), task
    return _class_indices(where, y, locate), task


def _class_indices(where: str, y: np.ndarray, locate: Locate) -> np.ndarray:
    """Numeric class labels as one whole number a row ((N, 1) is taken as (N,)); anything
    else names the shape or the first label that is not a whole number."""
    if y.shape[1:] == (1,):
        y = y[:, 0]
    if y.ndim != 1:
        raise DatasetError(f"{where}: class labels must be one per row, got shape {y.shape}")
    if y.dtype.kind == "f":  # the other kinds _numeric lets through (b, i, u) are whole
        bad = np.flatnonzero(~(np.isfinite(y) & (y == np.round(y))))
        if bad.size:
            raise DatasetError(
                f"{locate(int(bad[0]))}: label {y[bad[0]]} is not an integer class index"
            )
    return y


def _finish(
    name: str,
    splits: dict[str, Pair],
    task: str,
    class_names: list[str] | None,
    description: str,
    seed: int,
    where: str,
    locate: dict[str, Locate],
) -> Dataset:
    """Count the classes, hold out a test split when the file has none, build the Dataset.

    `splits` holds (inputs, labels) by split, "train" and maybe "test"; `locate[split]`
    names a row of its labels in messages."""
    num_classes = None
    if task == "classification":
        parts = [(y, locate[split]) for split, (_, y) in splits.items()]
        class_names = class_names_for(where, parts, class_names)
        num_classes = len(class_names)
    train, test = splits["train"], splits.get("test")
    if test is None:
        train, test, held = _hold_out(train, task, seed)
        description += held
    (x, y), (x_test, y_test) = train, test
    label_dtype = LABEL_DTYPES[task]
    return Dataset(
        name=name,
        x_train=x,
        y_train=y.astype(label_dtype, copy=False),
        x_test=x_test,
        y_test=y_test.astype(label_dtype, copy=False),
        input_shape=x.shape[1:],
        task=task,
        num_classes=num_classes,
        class_names=class_names,
        description=description,
    )


def _hold_out(train: Pair, task: str, seed: int) -> tuple[Pair, Pair, str]:
    """A seeded HOLDOUT of the rows of a file without a test split, as (train, test) and
    the words the description adds to say so; stratified for class labels."""
    stratify = task == "classification"
    x, y, x_test, y_test = train_val_split(*train, HOLDOUT, seed=seed, stratify=stratify)
    how = "stratified " if stratify else ""
    held = (
        f"; no test split in the file, so a seeded {how}{HOLDOUT:.0%} of the "
        f"rows ({len(x_test)}) is held out as test"
    )
    return (x, y), (x_test, y_test), held


# ------------------------------------------------------------------------------------------ npz


def _load_npz(
    path: Path,
    *,
    seed: int,
    label_column: int | str | None,
    image_shape: tuple[int, ...] | None,
    task: str | None,
) -> Dataset:
    """A user's .npz: x_train, y_train and optionally x_test, y_test, class_names."""
    if label_column is not None:
        raise DatasetError(f"{path}: label_column applies to CSV files, not .npz")
    arrays = read_npz(path)
    has_test = _npz_has_test(path, arrays)
    x, y, task = _npz_split(path, arrays, "train", image_shape, task)
    splits = {"train": (x, y)}
    if has_test:
        x_test, y_test, task = _npz_split(path, arrays, "test", image_shape, task)
        splits = _train_and_test(path, (x, y), (x_test, y_test))
    return _finish(
        path.stem,
        splits,
        task,
        _npz_class_names(path, arrays, task),
        f"user data from {path}",
        seed,
        str(path),
        {s: _npz_locator(path, s) for s in ("train", "test")},
    )


def _train_and_test(path: Path, train: Pair, test: Pair) -> dict[str, Pair]:
    """An archive's two splits, whose input rows must have one shape; inputs of two dtypes
    both become float32."""
    (x, y), (x_test, y_test) = train, test
    if x.shape[1:] != x_test.shape[1:]:
        raise DatasetError(
            f"{path}: x_train rows have shape {x.shape[1:]} but x_test rows have {x_test.shape[1:]}"
        )
    if x.dtype != x_test.dtype:
        x, x_test = x.astype(np.float32), x_test.astype(np.float32)
    return {"train": (x, y), "test": (x_test, y_test)}


def _npz_locator(path: Path, split: str) -> Locate:
    """The `Locate` that names a row of the archive's y_train or y_test."""
    return row_locator(f"{path}: y_{split}[", "]")


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
    tests = {"x_test", "y_test"}
    present = tests & arrays.keys()
    if len(present) == 1:
        (given,) = present
        (missing,) = tests - present
        raise DatasetError(f"{path}: has {given} but not {missing}; give both or neither")
    return bool(present)


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
    if min(x.ndim, y.ndim) == 0 or len(x) != len(y):
        raise DatasetError(f"{path}: {xk} has {_rows(x)} rows but {yk} has {_rows(y)}")
    x = _as_images(f"{path}: {xk}", x, image_shape)
    check_finite(f"{path}: {xk}", x)
    check_finite(f"{path}: {yk}", y)
    labels, task = _labels_from_numbers(f"{path}: {yk}", y, task, _npz_locator(path, split))
    return x, labels, task


def _rows(a: np.ndarray) -> int:
    """How many rows an array has: a single value (0-d) has none."""
    return len(a) if a.ndim else 0


def _npz_class_names(path: Path, arrays: dict[str, np.ndarray], task: str) -> list[str] | None:
    """The archive's class_names, for class labels only (None when it has none)."""
    if "class_names" not in arrays:
        return None
    names = arrays["class_names"]
    if task != "classification" or names.ndim != 1 or names.dtype.kind not in "US":
        raise DatasetError(f"{path}: class_names must be a 1-D array of strings for class labels")
    if names.dtype.kind == "S":  # bytes: str() would name a class "b'cat'"
        try:
            names = np.char.decode(names, "utf-8")
        except UnicodeDecodeError:
            raise DatasetError(f"{path}: class_names are not UTF-8 text") from None
    return names.tolist()


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


def _cells(line: str, delimiter: str) -> list[str]:
    """A CSV line's cells without the spaces around them, as they are read as values."""
    return [cell.strip() for cell in _split_line(line, delimiter)]


def _header(lines: list[str], delimiter: str) -> list[str] | None:
    """The first line's cells when it is a header: not all numbers, and (when a second line
    follows) a number below at least one of its words."""
    row0 = _cells(lines[0], delimiter)
    if all(_is_number(c) for c in row0):
        return None
    if len(lines) == 1:
        return row0
    below = zip(row0, _cells(lines[1], delimiter), strict=False)
    return row0 if any(_is_number(b) and not _is_number(a) for a, b in below) else None


def _csv_inputs(
    table: _Table, label: int, x: np.ndarray, image_shape: tuple[int, ...] | None
) -> np.ndarray:
    """The feature columns `x` (all but column `label`) as the Dataset holds them: float32
    features, or images of `image_shape`, which must take every feature column (uint8 when
    every value is an integer in 0..255, else float32)."""
    if image_shape is None:
        x = x.astype(np.float32)
        check_finite(f"{table.path} (features as float32)", x)
        return x
    needed = math.prod(image_shape)
    if x.shape[1] != needed:
        raise DatasetError(
            f"{table.path}: image_shape {image_shape} needs {needed} pixel columns but there "
            f"are {x.shape[1]} ({table.ncols} columns minus the label {table.column_name(label)})"
        )
    x = x.reshape(len(x), *image_shape)
    return x.astype(np.uint8 if _byte_valued(x) else np.float32)


def _load_csv(
    path: Path,
    *,
    seed: int,
    label_column: int | str | None,
    image_shape: tuple[int, ...] | None,
    task: str | None,
) -> Dataset:
    """A user's .csv: a label column and feature columns, with or without a header line."""
    table = _read_table(path)
    label = _resolve_label_column(path, label_column, table.header, table.ncols)
    features = [c for c in range(table.ncols) if c != label]
    x = table.numbers(features)
    labels = _columns(table.lines, str, [label], table.delimiter).reshape(len(table.lines))
    y, task, class_names = _csv_labels(labels, task, image_shape, table.locator(label))
    return _finish(
        path.stem,
        {"train": (_csv_inputs(table, label, x, image_shape), y)},
        task,
        class_names,
        f"user data from {path} (label {table.column_name(label)})",
        seed,
        str(path),
        {"train": table.locator(label)},
    )


@dataclass(frozen=True)
class _Table:
    """A CSV file's data lines, with what a message needs to name one of its cells: the
    file, the line's number in it and the column's header."""

    path: Path
    lines: list[str]
    line_numbers: list[int]  # 1-based, in the file, of each of `lines`
    delimiter: str
    header: list[str] | None
    ncols: int

    def column_name(self, c: int) -> str:
        return f"column {c}" + (f" ({self.header[c]!r})" if self.header is not None else "")

    def place(self, i: int, c: int) -> str:
        """Row i, column c, as a user finds it in the file."""
        return f"{self.path} line {self.line_numbers[i]}, {self.column_name(c)}"

    def locator(self, c: int) -> Locate:
        """The `Locate` that names row i of column c."""
        return lambda i: self.place(i, c)

    def check_ragged(self) -> None:
        """Refuse the first line whose number of cells differs from the header's (or the
        first row's); quotes are parsed only when there are any."""
        quoted = any('"' in line for line in self.lines)
        first = "the header" if self.header is not None else "the first row"
        for line, number in zip(self.lines, self.line_numbers, strict=True):
            n = len(_split_line(line, self.delimiter)) if quoted else line.count(self.delimiter) + 1
            if n != self.ncols:
                raise DatasetError(
                    f"{self.path} line {number}: {n} columns, but {first} has {self.ncols}"
                )

    def numbers(self, columns: list[int]) -> np.ndarray:
        """The cells of `columns` as finite float64 (rows, len(columns)); an error names the
        first cell that is not a number, or that is NaN or infinite."""
        try:
            x = _columns(self.lines, np.float64, columns, self.delimiter)
        except ValueError as e:
            _raise_first_bad_cell(self.lines, self.delimiter, columns, self.place)
            raise DatasetError(f"{self.path}: cannot parse the numbers ({e})") from None
        x = x.reshape(len(self.lines), len(columns))
        bad = np.argwhere(~np.isfinite(x))
        if bad.size:
            i, j = bad[0]
            raise DatasetError(
                f"{self.place(i, columns[j])}: {x[i, j]} value (NaN/inf not allowed)"
            )
        return x


def _read_table(path: Path) -> _Table:
    """The lines of a CSV file split into a header (when the first line is one) and data
    rows of one number of columns, at least 2 (a label and a feature)."""
    lines, numbers = _read_lines(path)
    delimiter = max((",", ";", "\t"), key=lines[0].count)
    ncols = len(_split_line(lines[0], delimiter))  # the header's, or the first row's
    header = _header(lines, delimiter)
    if header is not None:
        lines, numbers = lines[1:], numbers[1:]
    if not lines:
        raise DatasetError(f"{path}: only a header line, no data rows")
    if ncols < 2:
        raise DatasetError(
            f"{path}: need at least 2 columns (a label and a feature), found {ncols}"
        )
    table = _Table(path, lines, numbers, delimiter, header, ncols)
    table.check_ragged()
    return table


#: The loader of each file type `load_path` reads, by suffix.
_FILE_LOADERS = {".npz": _load_npz, ".csv": _load_csv, ".tsv": _load_csv, ".txt": _load_csv}


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


def _resolve_label_column(
    path: Path, label_column: int | str | None, header: list[str] | None, ncols: int
) -> int:
    """The index of the label column: as given (a header name or an index from either end),
    else the one header column named like a label, else column 0."""
    if label_column is None:
        return _default_label_column(header)
    if isinstance(label_column, str) and not label_column.lstrip("-").isdigit():
        return _named_column(path, label_column, header)
    c = int(label_column)
    if not -ncols <= c < ncols:
        raise DatasetError(f"{path}: label_column {c} is out of range for {ncols} columns")
    return c % ncols


def _default_label_column(header: list[str] | None) -> int:
    """The one header column named like a label (LABEL_NAMES), else column 0: the
    MNIST-in-CSV convention, label first."""
    matches = [c for c, h in enumerate(header or []) if h.lower() in LABEL_NAMES]
    return matches[0] if len(matches) == 1 else 0


def _named_column(path: Path, name: str, header: list[str] | None) -> int:
    """The index of the header column called `name`; an error lists the columns there are."""
    if header is None:
        raise DatasetError(
            f"{path}: label_column {name!r} is a name but the file has no header line"
        )
    if name not in header:
        raise DatasetError(
            f"{path}: no column named {name!r} (columns: "
            f"{', '.join(header[:20])}{', ...' if len(header) > 20 else ''})"
        )
    return header.index(name)


def _raise_first_bad_cell(
    lines: list[str], delimiter: str, features: list[int], place: Callable[[int, int], str]
) -> None:
    """Slow path after a failed fast parse: find and name the first cell that is not a number."""
    for i, line in enumerate(lines):
        cells = _cells(line, delimiter)
        for c in features:
            cell = cells[c]
            if not _is_number(cell):
                what = "empty cell" if not cell else f"{cell[:30]!r} is not a number"
                raise DatasetError(f"{place(i, c)}: {what}")


def _csv_labels(
    labels: np.ndarray, task: str | None, image_shape: tuple[int, ...] | None, locate: Locate
) -> tuple[np.ndarray, str, list[str] | None]:
    """Labels as numbers (classification or regression) or words (classes named by them)."""
    labels = np.char.strip(labels)
    numeric = np.array([_is_number(s) for s in labels])
    if not numeric.all():
        return _word_labels(labels, numeric, task, locate)
    values = labels.astype(np.float64)
    non_finite = np.flatnonzero(~np.isfinite(values))
    if non_finite.size:
        first = int(non_finite[0])
        raise DatasetError(f"{locate(first)}: label {labels[first]} (NaN/inf not allowed)")
    if task is None:
        task = _csv_task(values, image_shape)
    y, task = _labels_from_numbers("labels", values, task, locate)
    return y, task, None


def _csv_task(values: np.ndarray, image_shape: tuple[int, ...] | None) -> str:
    """The task of numeric CSV labels (read as floats): whole numbers, or the labels of
    images, are classes; other numbers are regression targets."""
    integral = bool(np.all(values == np.round(values)))
    return "classification" if integral or image_shape is not None else "regression"


def _word_labels(
    labels: np.ndarray, numeric: np.ndarray, task: str | None, locate: Locate
) -> tuple[np.ndarray, str, list[str] | None]:
    """Class labels written as words, the classes named by the sorted words; refused when
    some labels are numbers (`numeric`) or the task is regression, naming the first word."""
    if numeric.any() or task == "regression":
        bad = int(np.flatnonzero(~numeric)[0])
        cell = str(labels[bad])
        what = f"label {cell!r} is not a number" if cell else "empty label"
        raise DatasetError(f"{locate(bad)}: {what}")
    names, y = np.unique(labels, return_inverse=True)
    return y.astype(np.int64), "classification", [str(n) for n in names]
