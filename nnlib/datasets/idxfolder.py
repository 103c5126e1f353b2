"""A folder of MNIST-layout IDX files -> Dataset, with checksums, an .npz cache and the
partial-folder rule.

File names (gzipped or not; `train-images.idx3-ubyte` with a dot is accepted too):
    train-images-idx3-ubyte  train-labels-idx1-ubyte  t10k-images-idx3-ubyte  t10k-labels-idx1-ubyte

Partial folder: when only one split's pair (images + labels) is present, e.g. just the official
t10k files, that split is divided into train/test in file order: the first 80% train, the last
20% test (10,000 t10k images -> 8,000 / 2,000). The description says so and so does a note on
the Dataset (`notes`, printed by the CLI and shown by the app), so nobody mistakes it for the
full dataset.

Cache: after the first read the raw arrays are saved to `cache_dir()/<name>-<key>.npz`, keyed by
the source folder; it stores the source files' sizes and mtimes and is ignored (and rewritten)
when they change. Writing it is best effort: a read-only or full disk only costs speed (and
adds a note).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from .._atomic import atomic_write
from .._npy import write_npz
from .base import Dataset, DatasetError, class_names_for, row_locator
from .idx import IdxFile
from .paths import cache_dir
from .safeio import check_memory, open_regular, read_npz

ROLES = {
    "train_images": ("train", "images", 3),
    "train_labels": ("train", "labels", 1),
    "test_images": ("t10k", "images", 3),
    "test_labels": ("t10k", "labels", 1),
}
PARTIAL_TRAIN_FRACTION = 0.8


def canonical_name(role: str) -> str:
    """The standard uncompressed file name of a role, e.g. 't10k-images-idx3-ubyte'."""
    split, kind, ndim = ROLES[role]
    return f"{split}-{kind}-idx{ndim}-ubyte"


def find_files(folder: Path) -> dict[str, Path]:
    """The IDX files present in `folder`, by role; see `_file_names` for which one of a
    role's names is taken when there are several."""
    found = {}
    for role in ROLES:
        present = (folder / name for name in _file_names(role) if (folder / name).is_file())
        path = next(present, None)
        if path is not None:
            found[role] = path
    return found


def _file_names(role: str) -> tuple[str, ...]:
    """The names a role's file may have, the preferred first: the standard name before the
    dotted one (`train-images.idx3-ubyte`), each gzipped before raw."""
    standard = canonical_name(role)
    dotted = standard.replace("-idx", ".idx")
    return standard + ".gz", standard, dotted + ".gz", dotted


def complete_splits(files: dict[str, Path]) -> list[str]:
    """Which of 'train'/'test' have both their images and labels file."""
    return [s for s in ("train", "test") if {f"{s}_images", f"{s}_labels"} <= files.keys()]


_md5_memo: dict[tuple[str, int, int], str] = {}


def file_md5(path: Path) -> str:
    """md5 of a file, remembered per (path, size, mtime) so listing datasets stays cheap."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _md5_memo:
        digest = hashlib.md5(usedforsecurity=False)
        with open_regular(path, "dataset file") as f:
            while block := f.read(1 << 20):
                digest.update(block)
        _md5_memo[key] = digest.hexdigest()
    return _md5_memo[key]


def check_checksums(name: str, files: dict[str, Path], md5s: dict[str, str]) -> None:
    """Compare each file that has a published md5 (the .gz files) with it; raise on mismatch."""
    for path in files.values():
        expected = md5s.get(path.name)
        if expected is not None and (actual := file_md5(path)) != expected:
            raise DatasetError(
                f"{path}: md5 {actual} does not match the published {name} file ({expected}); "
                "it is damaged or from another dataset. Delete it to download it again."
            )


def _fingerprint(files: dict[str, Path]) -> str:
    parts = []
    for role in sorted(files):
        st = files[role].stat()
        parts.append(f"{role}={files[role].name}:{st.st_size}:{st.st_mtime_ns}")
    return ";".join(parts)


def cache_path(name: str, folder: Path) -> Path:
    """Where the cache of `name` read from `folder` lives (one file per source folder)."""
    key = hashlib.sha1(str(folder.resolve()).encode(), usedforsecurity=False).hexdigest()[:12]
    return cache_dir() / f"{name}-{key}.npz"


def _read_cache(path: Path, fingerprint: str) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None when the cache is missing (read_npz names that too),
    damaged or stale."""
    try:
        arrays = read_npz(path)
    except DatasetError:
        return None
    # A stamp that is not a text array never reads as a fingerprint ("role=name:size:mtime").
    if str(arrays.pop("fingerprint", "")) != fingerprint:
        return None
    return arrays


def _write_cache(path: Path, arrays: dict[str, np.ndarray], fingerprint: str) -> list[str]:
    """Write the cache; the notes for the user: one when it cannot be written."""
    try:
        atomic_write(
            path,
            lambda f: write_npz(f, {"fingerprint": np.str_(fingerprint), **arrays}),
        )
    except OSError as e:
        return [f"could not write the dataset cache {path} ({e}); loading works but stays slower"]
    return []


def _read_idx_files(files: dict[str, Path]) -> dict[str, np.ndarray]:
    """Each file's array by role. Every header is read first: each split's images and labels
    must agree and all of them must fit in the free memory before any payload is read (a
    small gzip pair can declare gigabytes)."""
    with ExitStack() as stack:
        opened = {role: stack.enter_context(IdxFile(path)) for role, path in files.items()}
        for split in complete_splits(files):
            images, labels = opened[f"{split}_images"], opened[f"{split}_labels"]
            _check_pair(split, (images.dims, images.dtype), (labels.dims, labels.dtype), files)
        folder = next(iter(files.values())).parent
        check_memory(sum(idx.nbytes for idx in opened.values()), f"{folder}: the IDX files")
        return {role: idx.read() for role, idx in opened.items()}


def read_arrays(
    name: str,
    files: dict[str, Path],
    md5s: dict[str, str],
    use_cache: bool = True,
    read: Callable[[dict[str, Path]], dict[str, np.ndarray]] = _read_idx_files,
) -> tuple[dict[str, np.ndarray], list[str]]:
    """The raw arrays `read(files)` returns (by default each IDX file's array, by role), from
    the cache when it is fresh, and any notes for the user. Files with a published md5 are
    checked before they are read."""
    fingerprint = _fingerprint(files)
    path = cache_path(name, next(iter(files.values())).parent)
    if use_cache and (arrays := _read_cache(path, fingerprint)) is not None:
        return arrays, []
    check_checksums(name, files, md5s)
    arrays = read(files)
    return arrays, _write_cache(path, arrays, fingerprint) if use_cache else []


Layout = tuple[tuple[int, ...], np.dtype]


def _check_pair(split: str, images: Layout, labels: Layout, files: dict[str, Path]) -> None:
    """Raise unless (shape, dtype) `images` and `labels` make a split: uint8 images
    (N, H, W[, C]) and N integer labels. Checked on the IDX headers before their data is
    read, and on the arrays from the cache."""
    img_file, lbl_file = files[f"{split}_images"], files[f"{split}_labels"]
    (img_shape, img_dtype), (lbl_shape, lbl_dtype) = images, labels
    if len(img_shape) not in (3, 4) or img_dtype != np.uint8:
        raise DatasetError(
            f"{img_file}: expected uint8 images (N, H, W), got {img_dtype} {img_shape}"
        )
    if len(lbl_shape) != 1 or lbl_dtype.kind not in "iu":
        raise DatasetError(f"{lbl_file}: expected integer labels (N,), got {lbl_dtype} {lbl_shape}")
    if img_shape[0] != lbl_shape[0]:
        raise DatasetError(
            f"{img_file} has {img_shape[0]} images but {lbl_file} has {lbl_shape[0]} labels"
        )


def _split_arrays(
    split: str, arrays: dict[str, np.ndarray], files: dict[str, Path]
) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, H, W, C), int64 labels) of a split, checked."""
    images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
    _check_pair(split, (images.shape, images.dtype), (labels.shape, labels.dtype), files)
    return (images[..., None] if images.ndim == 3 else images), labels.astype(np.int64)


def load_folder(
    name: str,
    folder: Path,
    files: dict[str, Path],
    *,
    title: str,
    class_names: list[str] | None = None,
    md5s: dict[str, str] | None = None,
    use_cache: bool = True,
) -> Dataset:
    """Build the Dataset from a folder with at least one complete split (see module docs)."""
    pairs, class_names, notes = _read_splits(
        name, folder, files, class_names, md5s or {}, use_cache
    )
    description = f"{title}, read from {folder}"
    if len(pairs) == 1:
        ((split, pair),) = pairs.items()
        pairs, note = _divided(name, folder, split, pair)
        description = f"{title} ({note})"
        notes.insert(0, f"{name}: {note}")
    (x_train, y_train), (x_test, y_test) = pairs["train"], pairs["test"]
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DatasetError(
            f"{folder}: train images are {x_train.shape[1:]} but test images are {x_test.shape[1:]}"
        )
    return Dataset(
        name=name,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        input_shape=x_train.shape[1:],
        task="classification",
        num_classes=len(class_names),
        class_names=class_names,
        description=description,
        notes=tuple(notes),
    )


Pair = tuple[np.ndarray, np.ndarray]


def _read_splits(
    name: str,
    folder: Path,
    files: dict[str, Path],
    class_names: list[str] | None,
    md5s: dict[str, str],
    use_cache: bool,
) -> tuple[dict[str, Pair], list[str], list[str]]:
    """The complete splits of `files` as (images, int64 labels) by split, the names of the
    classes their labels make, and the notes for the user: everything read and checked
    before the splits are arranged into a Dataset."""
    splits = complete_splits(files)
    if not splits:  # the callers found at least one file
        raise DatasetError(
            f"{folder}: no complete pair of IDX images + labels files "
            f"(found: {', '.join(p.name for p in files.values())})"
        )
    used = {role: p for role, p in files.items() if role.split("_")[0] in splits}
    arrays, notes = read_arrays(name, used, md5s, use_cache)
    pairs = {s: _split_arrays(s, arrays, used) for s in splits}
    parts = [(pairs[s][1], row_locator(f"{used[f'{s}_labels']} item ")) for s in splits]
    return pairs, class_names_for(str(folder), parts, class_names), notes


def _divided(name: str, folder: Path, split: str, pair: Pair) -> tuple[dict[str, Pair], str]:
    """The partial-folder rule: the one `split` present, cut into train and test in file
    order (PARTIAL_TRAIN_FRACTION), and the note that says so and which files are missing."""
    x, y = pair
    cut = int(round(len(x) * PARTIAL_TRAIN_FRACTION))
    missing = "train" if split == "test" else "t10k"
    note = (
        f"partial: only the {split} files are in {folder} ({len(x)} images); "
        f"using the first {cut} as train and the last {len(x) - cut} as test. "
        f"Add the {missing}-* files there for the full {name}."
    )
    return {"train": (x[:cut], y[:cut]), "test": (x[cut:], y[cut:])}, note


def missing_message(folder: Path) -> str:
    """The sentence that tells a user exactly which files to put where."""
    names = ", ".join(canonical_name(r) + ".gz" for r in ROLES)
    return f"put these files in {folder}{os.sep}: {names} (gzipped or not)"
