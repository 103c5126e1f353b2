"""Reading payloads whose size a file's own header declares, without trusting that header,
for the dataset readers: `nnlib._files` and `nnlib._npy` with DatasetError.

A header is a claim: one flipped bit in an IDX dimension or a .npy shape asks for hundreds of
GiB. The readers check the claim against what the file can really hold before they
allocate, and read compressed streams in bounded chunks, so memory grows with the bytes a file
actually delivers, never with what its header says. Only regular files are read
(`nnlib._files.open_regular`). Every failure is a DatasetError naming the file and the field.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, BinaryIO

import numpy as np

from .. import _files, _npy
from .base import DatasetError

deflate_bound = _files.deflate_bound
file_size = _files.file_size


def open_regular(path: str | os.PathLike, what: str = "file") -> BinaryIO:
    """`path` opened for reading if it is a regular file (see `nnlib._files`)."""
    return _files.open_regular(path, what, DatasetError)


def read_regular(path: str | os.PathLike, what: str = "file") -> bytes:
    """The whole of a regular file that fits in memory (see `nnlib._files`)."""
    return _files.read_regular(path, what, DatasetError)


def read_payload(f: IO[bytes], nbytes: int, where: str, what: str) -> bytearray:
    """Exactly `nbytes` from `f`, then its end (see `nnlib._files.read_payload`)."""
    return _files.read_payload(f, nbytes, where, what, DatasetError)


def check_memory(nbytes: int, subject: str) -> None:
    """Refuse `nbytes` that do not fit in the free memory (`nnlib._files.check_memory`)."""
    _files.check_memory(nbytes, subject, DatasetError)


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an .npz archive (np.savez / np.savez_compressed), checked member by member
    against the archive's real size before any is allocated (`nnlib._npy.read_npz`)."""
    return _npy.read_npz(path, DatasetError)
