"""CIFAR-10 from its official binary archive: find it, download it, verify it, read it without
extracting it, cache it.

Where it is looked for, in order: `<data_dir>/cifar10/`, then `<data_dir>/` itself. In each, an
extracted `cifar-10-batches-bin/` folder holding all six batch files wins over the archive
`cifar-10-binary.tar.gz`. A download goes to `<data_dir>/cifar10/cifar-10-binary.tar.gz` and is
read in place: nothing named by the archive is ever written to disk.

Format (https://www.cs.toronto.edu/~kriz/cifar.html): `data_batch_1.bin` .. `data_batch_5.bin`
(train) and `test_batch.bin`, 10,000 records each. A record is one label byte, then 3,072 pixel
bytes: the 1,024 red values of the 32x32 image row by row, then the green, then the blue.
The files have no header, so a file's size must be a whole number of 3,073-byte records (at
most 10,000); that is checked before anything is read. Images come out channels-last.

Mirrors, checksum, cache and offline behaviour are those of the MNIST family (see mnist.py):
the `mirrors=` option or NNLIB_CIFAR10_MIRRORS, `checksums={"cifar-10-binary.tar.gz": md5}` for
a private mirror; the md5 below is the one published on the dataset's page.
"""

from __future__ import annotations

import functools
import os
import tarfile
import zlib
from pathlib import Path

import numpy as np

from .base import Builtin, Dataset, DatasetError, DatasetInfo, count_classes, register
from .download import fetch_all
from .idxfolder import read_arrays
from .mnist import Family, locate_or_download, mirrors_for
from .paths import data_folder
from .safeio import file_size, open_regular, read_payload

ARCHIVE = "cifar-10-binary.tar.gz"
FOLDER = "cifar-10-batches-bin"
TRAIN_BATCHES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_BATCH = "test_batch.bin"
BATCHES = (*TRAIN_BATCHES, TEST_BATCH)
#: The archive's other files: allowed, not read (the class names are fixed below).
EXTRAS = ("batches.meta.txt", "readme.html")
IMAGE_SHAPE = (32, 32, 3)
RECORD_BYTES = 1 + 32 * 32 * 3
MAX_RECORDS = 10_000
FULL_SIZES = (50_000, 10_000)

CIFAR10 = Family(
    name="cifar10",
    title="CIFAR-10 tiny colour photos (Krizhevsky, Nair, Hinton)",
    class_names=(
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ),
    mirrors=("https://www.cs.toronto.edu/~kriz/",),
    md5={ARCHIVE: "c32a1d4ab5d03f1284b67883e8d87530"},
)

# tarfile, gzip and zlib raise all of these on damaged archives (gzip.BadGzipFile is an OSError)
_TAR_ERRORS = (tarfile.TarError, zlib.error, EOFError, OSError, ValueError, OverflowError)


def missing_message(folder: Path) -> str:
    """The sentence that tells a user exactly which files to put where."""
    return (
        f"put {ARCHIVE} in {folder}{os.sep}, or the folder {FOLDER}{os.sep} extracted from it "
        f"({', '.join(BATCHES)})"
    )


def _locate(data_dir: Path) -> dict[str, Path] | None:
    """The files to read: an extracted folder's six batches, else the archive, looked for in
    <data_dir>/cifar10, then in <data_dir>."""
    for folder in (data_dir / CIFAR10.name, data_dir):
        batches = folder / FOLDER
        if all((batches / name).is_file() for name in BATCHES):
            return {name: batches / name for name in BATCHES}
        if (folder / ARCHIVE).is_file():
            return {ARCHIVE: folder / ARCHIVE}
    return None


def _record_count(size: int, where: str) -> int:
    """How many records `size` bytes hold; raises unless it is 1 to MAX_RECORDS whole ones."""
    records, rest = divmod(size, RECORD_BYTES)
    if rest or not records:
        raise DatasetError(
            f"{where}: {size:,} bytes is not a whole number of {RECORD_BYTES:,}-byte records "
            "(one label byte, then 32x32 red, green and blue bytes); it is damaged or not a "
            "CIFAR-10 batch"
        )
    if records > MAX_RECORDS:
        raise DatasetError(
            f"{where}: {records:,} records, more than the {MAX_RECORDS:,} of a CIFAR-10 batch"
        )
    return records


def _decode(data: bytearray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 32, 32, 3) uint8, labels (N,) uint8) from whole records."""
    records = np.frombuffer(data, np.uint8).reshape(-1, RECORD_BYTES)
    labels = records[:, 0].copy()
    count_classes(where, [(labels, lambda i: f"{where} record {i}")], CIFAR10.class_names)
    planes = records[:, 1:].reshape(-1, IMAGE_SHAPE[2], *IMAGE_SHAPE[:2])
    return np.ascontiguousarray(planes.transpose(0, 2, 3, 1)), labels


def _read_batch_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    where = str(path)
    try:
        with open_regular(path, "CIFAR-10 batch file") as f:
            size = file_size(f)
            claim = f"its size says {_record_count(size, where)} records"
            return _decode(read_payload(f, size, where, claim), where)
    except OSError as e:
        raise DatasetError(f"{path}: cannot read ({e.strerror or e})") from None


def _member_kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return "symbolic link"
    if member.islnk():
        return "hard link"
    return "directory" if member.isdir() else "special file"


#: The archive's members that are read, by path in the archive, to the batch they hold.
_MEMBERS = {f"{FOLDER}/{name}": name for name in BATCHES}
_ALLOWED = {*_MEMBERS, *(f"{FOLDER}/{name}" for name in EXTRAS)}


def _batch_name(member: tarfile.TarInfo, where: str) -> str | None:
    """The batch a member of the archive holds, None for one that is passed over (the
    folder, a file beside the batches); a member that is not part of CIFAR-10, by its name or
    by its kind (a link, a directory, a device), is refused: only regular files are read."""
    if member.name == FOLDER and member.isdir():
        return None
    if member.name not in _ALLOWED:
        raise DatasetError(
            f"{where} is not part of CIFAR-10; the archive may hold only {FOLDER}/ "
            f"with {', '.join(BATCHES + EXTRAS)}"
        )
    if not member.isreg():
        raise DatasetError(f"{where} is a {_member_kind(member)}, expected a regular file")
    return _MEMBERS.get(member.name)


def _read_archive(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The batches of the archive, every one of them; a damaged archive is one DatasetError
    that says to delete it."""
    try:
        found = _stream_batches(path)
    except DatasetError:
        raise
    except _TAR_ERRORS as e:
        raise DatasetError(
            f"{path}: not a readable .tar.gz archive ({type(e).__name__}: {e}); delete it to "
            "download it again"
        ) from None
    missing = [f"{FOLDER}/{name}" for name in BATCHES if name not in found]
    if missing:
        raise DatasetError(
            f"{path}: the archive lacks {', '.join(missing)}; it is truncated or not the "
            "CIFAR-10 binary version"
        )
    return found


def _stream_batches(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The batches found in the archive, read as a stream (one pass over the gzip data):
    only the expected member names, regular files only, each size checked before it is
    read."""
    found: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    with (
        open_regular(path, "CIFAR-10 archive") as raw,
        tarfile.open(fileobj=raw, mode="r|gz") as archive,
    ):
        for member in archive:
            where = f"{path}: member {member.name!r}"
            name = _batch_name(member, where)
            if name is None:
                continue
            if name in found:
                raise DatasetError(f"{where} appears twice in the archive")
            handle = archive.extractfile(member)
            assert handle is not None, "_batch_name lets only regular files through"
            claim = f"the archive says it holds {_record_count(member.size, where)} records"
            found[name] = _decode(read_payload(handle, member.size, where, claim), where)
    return found


def _read(files: dict[str, Path]) -> dict[str, np.ndarray]:
    """The train and test arrays (labels uint8) of the located files."""
    if ARCHIVE in files:
        batches = _read_archive(files[ARCHIVE])
    else:
        batches = {name: _read_batch_file(path) for name, path in files.items()}
    train = [batches.pop(name) for name in TRAIN_BATCHES]
    x_test, y_test = batches.pop(TEST_BATCH)
    return {
        "x_train": np.concatenate([x for x, _ in train]),
        "y_train": np.concatenate([y for _, y in train]),
        "x_test": x_test,
        "y_test": y_test,
    }


def download_files(
    data_dir: str | os.PathLike | None = None,
    *,
    mirrors: list[str] | None = None,
    checksums: dict[str, str] | None = None,
    timeout: float = 30.0,
    retries: int = 2,
) -> Path:
    """Download the archive into `<data_dir>/cifar10/` (atomically; nothing is left behind
    when it fails); returns that folder."""
    md5 = CIFAR10.checksums(checksums)
    folder = data_folder(data_dir) / CIFAR10.name
    bases = mirrors_for(CIFAR10, mirrors)
    fetch_all(
        CIFAR10.name,
        [([b + ARCHIVE for b in bases], folder / ARCHIVE, md5[ARCHIVE])],
        folder,
        how_to_get=f"{missing_message(folder)}; it is published at {CIFAR10.mirrors[0]}",
        timeout=timeout,
        retries=retries,
    )
    return folder


def _build(
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
    """Load CIFAR-10 from disk, downloading the archive first when it is not there."""
    data_dir = data_folder(data_dir)
    home = data_dir / CIFAR10.name
    fetch = functools.partial(
        download_files,
        data_dir,
        mirrors=mirrors,
        checksums=checksums,
        timeout=timeout,
        retries=retries,
    )
    files = locate_or_download(
        CIFAR10,
        home,
        lambda: _locate(data_dir),
        fetch if download else None,
        missing_message(home),
        "the downloaded archive is",
    )
    arrays, notes = read_arrays(
        CIFAR10.name, files, CIFAR10.checksums(checksums), cache, read=_read
    )
    source = files.get(ARCHIVE) or files[TEST_BATCH].parent
    return Dataset(
        name=CIFAR10.name,
        x_train=arrays["x_train"],
        y_train=arrays["y_train"].astype(np.int64),
        x_test=arrays["x_test"],
        y_test=arrays["y_test"].astype(np.int64),
        input_shape=IMAGE_SHAPE,
        task="classification",
        num_classes=len(CIFAR10.class_names),
        class_names=list(CIFAR10.class_names),
        description=f"{CIFAR10.title}, read from {source}",
        notes=tuple(notes),
    )


def _info(data_dir: Path) -> DatasetInfo:
    return DatasetInfo(
        name=CIFAR10.name,
        description=CIFAR10.title,
        task="classification",
        input_shape=IMAGE_SHAPE,
        num_classes=len(CIFAR10.class_names),
        train_size=FULL_SIZES[0],
        test_size=FULL_SIZES[1],
        on_disk=_locate(data_dir) is not None,
        source="download",
    )


register(
    Builtin(
        name=CIFAR10.name,
        build=_build,
        info=_info,
        options=("mirrors", "checksums", "timeout", "retries", "cache"),
    )
)
