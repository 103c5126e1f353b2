"""Reading payloads whose size a file's own header declares, without trusting that header.

A header is a claim: one flipped bit in an IDX dimension or a .npy shape asks for hundreds of
GiB. The readers here check the claim against what the file can really hold before they
allocate, and read compressed streams in bounded chunks, so memory grows with the bytes a file
actually delivers, never with what its header says. Every failure is a DatasetError naming
the file and the field.
"""

from __future__ import annotations

import math
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .._npy import read_header
from .base import DatasetError

CHUNK = 1 << 20
#: deflate cannot expand data by more than about 1032:1, so a compressed stream of n bytes
#: holds at most this many times n bytes (plus a little slack for tiny streams).
MAX_DEFLATE_RATIO = 1032
_SLACK = 1024


def deflate_bound(compressed_bytes: int) -> int:
    """The most bytes a deflate (gzip, zip) stream of this size can decompress to."""
    return compressed_bytes * MAX_DEFLATE_RATIO + _SLACK


def read_payload(f: BinaryIO, nbytes: int, where: str, what: str) -> bytearray:
    """Exactly `nbytes` from stream `f`, then its end.

    Read in chunks, so a header that promises more than the stream holds costs only the bytes
    that are really there. `what` describes the claim in messages ("the header declares ...").
    """
    buf = bytearray()
    while len(buf) < nbytes:
        chunk = f.read(min(CHUNK, nbytes - len(buf)))
        if not chunk:
            raise DatasetError(
                f"{where}: truncated: {what} ({nbytes} bytes) but only {len(buf)} bytes follow"
            )
        buf += chunk
    if f.read(1):
        raise DatasetError(f"{where}: {what} ({nbytes} bytes) but extra bytes follow the payload")
    return buf


# zipfile, zlib and numpy's .npy header parser raise all of these on damaged archives
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    NotImplementedError,
    RuntimeError,
    ValueError,
    SyntaxError,
    OverflowError,
    TypeError,
    KeyError,
    IndexError,
)


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an .npz archive (np.savez / np.savez_compressed), checked member by member
    against the archive's real size before any is allocated. Pickled objects are refused."""
    try:
        size = path.stat().st_size
        with zipfile.ZipFile(path) as archive:
            return {
                info.filename[: -len(".npy")]: _read_member(path, size, archive, info)
                for info in archive.infolist()
                if info.filename.endswith(".npy")
            }
    except DatasetError:
        raise
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file") from None
    except _ZIP_ERRORS as e:
        raise DatasetError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from None


def _read_member(
    path: Path, size: int, archive: zipfile.ZipFile, info: zipfile.ZipInfo
) -> np.ndarray:
    key = info.filename[: -len(".npy")]
    where = f"{path}: array {key!r}"
    if info.compress_type == zipfile.ZIP_STORED:
        most = min(info.compress_size, size)
    elif info.compress_type == zipfile.ZIP_DEFLATED:
        most = deflate_bound(min(info.compress_size, size))
    else:
        raise DatasetError(
            f"{where}: zip compression method {info.compress_type} is not supported; save "
            "with np.savez or np.savez_compressed"
        )
    if info.file_size > most:
        raise DatasetError(
            f"{where}: the archive says it holds {info.file_size} bytes, more than its "
            f"{info.compress_size} stored bytes can hold"
        )
    with archive.open(info) as f:
        shape, fortran, dtype = read_header(f, where, DatasetError)
        if dtype.hasobject:
            raise DatasetError(
                f"{where} holds Python objects; save plain numeric arrays (pickled data is "
                "not loaded)"
            )
        count = math.prod(shape)
        nbytes = count * dtype.itemsize
        shape_text = "x".join(map(str, shape)) or "scalar"
        claim = f"the header declares {shape_text} {dtype}"
        available = info.file_size - f.tell()
        if nbytes != available:
            raise DatasetError(
                f"{where}: {claim} ({nbytes} bytes) but the archive holds {available} bytes for it"
            )
        buf = read_payload(f, nbytes, where, claim)
    array = np.frombuffer(buf, dtype=dtype, count=count) if count else np.empty(0, dtype)
    return array.reshape(shape, order="F" if fortran else "C")
