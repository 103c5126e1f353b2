"""MNIST, Fashion-MNIST and KMNIST: find the IDX files, download missing ones, verify, cache.

Where the files are looked for, in order: `<data_dir>/<name>/`, then `<data_dir>/` itself (so a
folder that directly holds the files can be passed as data_dir). Downloads go to
`<data_dir>/<name>/`.

Network is used only when no complete split (images + labels) is on disk and download=True:
a folder with just the t10k files is used as it is (see idxfolder: 8,000 / 2,000 split).
A download is all or nothing: if any file fails, the files fetched by that call are removed.

Mirrors, first that works wins: the defaults below, replaced by the `mirrors=` option or the
environment variable NNLIB_<NAME>_MIRRORS (comma-separated base URLs; e.g. NNLIB_MNIST_MIRRORS,
NNLIB_FASHION_MNIST_MIRRORS). Checksums: md5 of the .gz files as published (the same values as
torchvision's mnist.py); `checksums={file name: md5}` replaces them, e.g. for a private mirror.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from .base import Builtin, Dataset, DatasetError, DatasetInfo, register
from .download import fetch_all
from .idxfolder import (
    PARTIAL_TRAIN_FRACTION,
    ROLES,
    canonical_name,
    complete_splits,
    file_md5,
    find_files,
    load_folder,
    missing_message,
)
from .paths import data_folder

T = TypeVar("T")


@dataclass(frozen=True)
class Family:
    """A downloadable dataset (the MNIST family, CIFAR-10): its published files, mirrors and
    class names."""

    name: str
    title: str
    class_names: tuple[str, ...]
    mirrors: tuple[str, ...]
    md5: dict[str, str]  # .gz file name -> md5

    @property
    def env_var(self) -> str:
        return "NNLIB_" + self.name.upper().replace("-", "_") + "_MIRRORS"

    def checksums(self, overrides: dict[str, str] | None) -> dict[str, str]:
        """The published md5 of each file, replaced by a user's `checksums=` where given."""
        return {**self.md5, **(overrides or {})}


def locate_or_download(
    family: Family,
    home: Path,
    locate: Callable[[], T | None],
    download: Callable[[], object] | None,
    how_to_get: str,
    missing_after: str,
) -> T:
    """What `locate` finds, after downloading the files when it finds nothing and `download`
    is given (None: download=False, so the error says how to get the files into `home`)."""
    found = locate()
    if found is not None:
        return found
    if download is None:
        raise DatasetError(
            f"{family.name}: files not found in {home}; {how_to_get}, or load it with download=True"
        )
    download()
    found = locate()
    if found is None:
        raise DatasetError(f"{family.name}: {missing_after} missing from {home}")
    return found


FAMILIES = {
    "mnist": Family(
        name="mnist",
        title="MNIST handwritten digits (LeCun, Cortes, Burges)",
        class_names=tuple(str(d) for d in range(10)),
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        md5={
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
    ),
    "fashion-mnist": Family(
        name="fashion-mnist",
        title="Fashion-MNIST clothing images (Zalando Research)",
        class_names=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        mirrors=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
        ),
        md5={
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
    ),
    "kmnist": Family(
        name="kmnist",
        title="Kuzushiji-MNIST cursive hiragana (ROIS-DS CODH)",
        class_names=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
        mirrors=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
        md5={
            "train-images-idx3-ubyte.gz": "bdb82020997e1d708af4cf47b453dcf7",
            "train-labels-idx1-ubyte.gz": "e144d726b3acfaa3e44228e80efcd344",
            "t10k-images-idx3-ubyte.gz": "5c965bf0a639b31b8f53240b1b52f4d7",
            "t10k-labels-idx1-ubyte.gz": "7320c461ea6c1c855c0b718fb2a4b134",
        },
    ),
}
FULL_SIZES = (60000, 10000)


def _family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise DatasetError(
            f"unknown MNIST-family dataset {name!r}; known: {', '.join(FAMILIES)}"
        ) from None


def mirrors_for(family: Family, mirrors: list[str] | None = None) -> list[str]:
    """The base URLs to try: the `mirrors` argument, else the env variable, else the defaults."""
    if mirrors is None:
        env = os.environ.get(family.env_var, "")
        mirrors = [m.strip() for m in env.split(",") if m.strip()] or list(family.mirrors)
    if isinstance(mirrors, str):
        mirrors = [mirrors]
    return [m if m.endswith("/") else m + "/" for m in mirrors]


def _locate(
    family: Family, data_dir: Path, md5: dict[str, str]
) -> tuple[Path, dict[str, Path]] | None:
    """The first folder holding a complete split: <data_dir>/<name>, then <data_dir>.

    Files directly in data_dir carry no dataset name, so gzipped ones there must also match
    this dataset's checksums (MNIST and Fashion-MNIST use the same file names).
    """
    for folder in (data_dir / family.name, data_dir):
        files = find_files(folder)
        if folder == data_dir:
            files = {
                r: p for r, p in files.items() if p.name not in md5 or file_md5(p) == md5[p.name]
            }
        if complete_splits(files):
            return folder, files
    return None


def download_files(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    mirrors: list[str] | None = None,
    checksums: dict[str, str] | None = None,
    timeout: float = 30.0,
    retries: int = 2,
) -> Path:
    """Download the missing .gz files of `name` into `<data_dir>/<name>/`; returns that folder.

    All or nothing: when a file cannot be fetched or fails its checksum, the files this call
    fetched are removed (and the folder, if this call created it) before the error is raised.
    """
    family = _family(name)
    md5 = family.checksums(checksums)
    folder = data_folder(data_dir) / family.name
    bases = mirrors_for(family, mirrors)
    existing = find_files(folder)
    jobs = [
        ([b + filename for b in bases], folder / filename, md5.get(filename))
        for filename in (canonical_name(role) + ".gz" for role in ROLES if role not in existing)
    ]
    fetch_all(
        name,
        jobs,
        folder,
        how_to_get=f"{missing_message(folder)}; they are published at {bases[0]}",
        timeout=timeout,
        retries=retries,
    )
    return folder


def _build(
    family: Family,
    *,
    seed: int = 0,
    data_dir: Path | None = None,
    download: bool = True,
    mirrors: list[str] | None = None,
    checksums: dict[str, str] | None = None,
    timeout: float = 30.0,
    retries: int = 2,
    cache: bool = True,
) -> Dataset:
    """Load a family member: local files if any complete split exists, else download."""
    data_dir = data_folder(data_dir)
    md5 = family.checksums(checksums)
    home = data_dir / family.name
    fetch = functools.partial(
        download_files,
        family.name,
        data_dir,
        mirrors=mirrors,
        checksums=checksums,
        timeout=timeout,
        retries=retries,
    )
    folder, files = locate_or_download(
        family,
        home,
        lambda: _locate(family, data_dir, md5),
        fetch if download else None,
        missing_message(home),
        "downloaded files",
    )
    return load_folder(
        family.name,
        folder,
        files,
        title=family.title,
        class_names=list(family.class_names),
        md5s=md5,
        use_cache=cache,
    )


def _info(family: Family, data_dir: Path) -> DatasetInfo:
    found = _locate(family, data_dir, family.md5)
    splits = complete_splits(found[1]) if found else []
    if len(splits) == 1:
        n = FULL_SIZES[0] if splits == ["train"] else FULL_SIZES[1]
        cut = round(n * PARTIAL_TRAIN_FRACTION)
        sizes = (cut, n - cut)
    else:
        sizes = FULL_SIZES
    return DatasetInfo(
        name=family.name,
        description=family.title,
        task="classification",
        input_shape=(28, 28, 1),
        num_classes=len(family.class_names),
        train_size=sizes[0],
        test_size=sizes[1],
        on_disk=found is not None,
        source="download",
    )


def _register(family: Family) -> None:
    register(
        Builtin(
            name=family.name,
            build=functools.partial(_build, family),
            info=lambda d: _info(family, d),
            options=("mirrors", "checksums", "timeout", "retries", "cache"),
        )
    )


for _f in FAMILIES.values():
    _register(_f)
