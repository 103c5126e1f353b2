"""Datasets for nnlib: generated toy sets, an offline digit set, the MNIST family, CIFAR-10,
user files.

    import nnlib.datasets as nds
    ds = nds.load("spirals")                     # or "glyphs", "mnist", "data/my.npz", ...
    prep = nds.prepare(ds, validation_split=0.1)  # float32, normalised with train statistics

Only numpy and the standard library are imported here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from . import cifar as _cifar  # noqa: F401  (registers "cifar10")
from . import glyphs as _glyphs  # noqa: F401  (registers "glyphs")
from . import mnist as _mnist  # noqa: F401  (registers the MNIST family)
from . import synthetic as _synthetic  # noqa: F401  (registers the 2-D and regression sets)
from .base import REGISTRY, Dataset, DatasetError, DatasetInfo, UnknownDataset
from .files import load_path
from .idx import read_idx, write_idx
from .mnist import download_files
from .paths import data_folder, default_data_dir
from .preprocess import Prepared, prepare, scale, shuffle, standardize, train_val_split

__all__ = [
    "Dataset",
    "DatasetError",
    "DatasetInfo",
    "Prepared",
    "available",
    "default_data_dir",
    "download_files",
    "load",
    "names",
    "prepare",
    "resolve",
    "read_idx",
    "scale",
    "shuffle",
    "standardize",
    "train_val_split",
    "UnknownDataset",
    "write_idx",
]


def _listing_order(info: DatasetInfo) -> tuple:
    # 2-D toys first, then regression, then images; downloads last
    return (info.source == "download", len(info.input_shape) == 3, info.task == "regression")


def names() -> list[str]:
    """The built-in dataset names, in listing order."""
    return [info.name for info in available()]


def _builtin_name(name_or_path: str | os.PathLike) -> str | None:
    if not isinstance(name_or_path, str):
        return None
    key = name_or_path.strip().lower().replace("_", "-")
    return key if key in REGISTRY else None


def load(
    name_or_path: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    seed: int = 0,
    download: bool = True,
    label_column: int | str | None = None,
    image_shape: tuple[int, ...] | None = None,
    **generator_kwargs: Any,
) -> Dataset:
    """Load a built-in dataset by name, or a user's .npz / .csv file or IDX folder by path.

    Built-in generators take their own options (n_train, n_test, noise, ...); the MNIST family
    and CIFAR-10 take mirrors, checksums, timeout, retries and cache. Relative paths are looked
    up in the current folder, then in the data folder. Raises DatasetError for anything a user
    can fix.
    """
    found = resolve(name_or_path, data_dir)
    if isinstance(found, str):
        name, entry = found, REGISTRY[found]
        if label_column is not None or image_shape is not None:
            raise DatasetError(
                f"{name}: label_column and image_shape apply to user files, not "
                "to built-in datasets"
            )
        unknown = sorted(set(generator_kwargs) - set(entry.options))
        if unknown:
            raise DatasetError(
                f"{name}: unknown option(s) {', '.join(unknown)}; valid: "
                f"{', '.join(entry.options) or 'none'}"
            )
        return entry.build(
            seed=seed,
            data_dir=Path(data_dir) if data_dir else None,
            download=download,
            **generator_kwargs,
        )
    path = found
    unknown = sorted(set(generator_kwargs) - {"task", "cache"})
    if unknown:
        raise DatasetError(
            f"{path}: unknown option(s) {', '.join(unknown)}; valid for files: "
            "label_column, image_shape, task, cache"
        )
    return load_path(
        path, seed=seed, label_column=label_column, image_shape=image_shape, **generator_kwargs
    )


def resolve(
    name_or_path: str | os.PathLike, data_dir: str | os.PathLike | None = None
) -> str | Path:
    """What `load` reads for this name: a built-in dataset's registry name, or the existing
    file or folder it names (a relative path is looked up in the current folder, then in the
    data folder). Every front end resolves a dataset here, so they all find the same data.

    Raises UnknownDataset: "no such file: <path>" when the name looks like a path (it has a
    folder part or a file extension), else "unknown dataset" with the built-in names.
    """
    name = _builtin_name(name_or_path)
    if name is not None:
        return name
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path
    folder = data_folder(data_dir)
    if not path.is_absolute() and (folder / path).exists():
        return folder / path
    text = str(name_or_path)
    if not isinstance(name_or_path, str) or path.suffix or len(path.parts) > 1 or text[:1] in "~.":
        where = "" if path.is_absolute() else f" (nor in the data folder {folder})"
        raise UnknownDataset(f"no such file: {path}{where}")
    raise UnknownDataset(
        f"unknown dataset {text!r}: not a built-in name ({', '.join(REGISTRY)}) and no such "
        "file or folder"
    )


def available(data_dir: str | os.PathLike | None = None) -> list[DatasetInfo]:
    """Every built-in dataset with its shape, sizes and whether it can be loaded offline."""
    folder = data_folder(data_dir)
    return sorted((entry.info(folder) for entry in REGISTRY.values()), key=_listing_order)
