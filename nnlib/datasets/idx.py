"""Reader and writer for the IDX format used by MNIST, Fashion-MNIST and KMNIST.

Format: 2 zero bytes, a type code, the number of dimensions, then one big-endian uint32 per
dimension and the payload. Files may be gzipped (detected by the gzip magic, not the name).
The reader checks everything it can, because a truncated download is the usual failure: the
error names the file and says how many bytes the header promised and how many were there.
A header is never trusted to size an allocation: see `nnlib.datasets.safeio`.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .._atomic import atomic_write
from .base import DatasetError
from .safeio import deflate_bound, file_size, open_regular, read_payload

# IDX type code -> big-endian numpy dtype
DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dtype.newbyteorder("="): code for code, dtype in DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


class IdxFile:
    """An IDX file (optionally gzipped) opened with its header read and checked against
    what the file can hold, before any of its data is read: a folder's files are all
    opened and their headers compared (`idxfolder`) before the first payload is read.
    Use as a context manager."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._raw = open_regular(self.path, "IDX file")
        try:
            with self._errors():
                size = file_size(self._raw)
                gz = self._raw.read(2) == _GZIP_MAGIC
                self._raw.seek(0)
                self._stream: BinaryIO = (
                    gzip.GzipFile(fileobj=self._raw, mode="rb") if gz else self._raw  # type: ignore[assignment]
                )
                self.dtype, self.dims = _parse_header(
                    self.path, self._stream, deflate_bound(size) if gz else size
                )
        except BaseException:
            self._raw.close()
            raise

    @property
    def nbytes(self) -> int:
        """The payload's size as the (checked) header declares it."""
        return math.prod(self.dims) * self.dtype.itemsize

    def read(self) -> np.ndarray:
        """The payload as a native-endian array of the declared shape."""
        shape = "x".join(map(str, self.dims))
        claim = f"the header declares {shape} {self.dtype.name} values"
        with self._errors():
            buf = read_payload(self._stream, self.nbytes, str(self.path), claim)
        array = np.frombuffer(buf, dtype=self.dtype).reshape(self.dims)
        return array.astype(self.dtype.newbyteorder("="), copy=False)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """A damaged stream as a DatasetError naming the file."""
        try:
            yield
        except (EOFError, gzip.BadGzipFile, zlib.error) as e:
            raise DatasetError(f"{self.path}: corrupt or truncated gzip data ({e})") from None
        except OSError as e:
            raise DatasetError(f"{self.path}: cannot read ({e.strerror or e})") from None

    def close(self) -> None:
        self._stream.close()
        self._raw.close()

    def __enter__(self) -> IdxFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a native-endian array of its declared shape.

    The header's dimensions are checked against the file before anything is allocated: a raw
    file must hold exactly the declared bytes, a gzipped one is read in bounded chunks (its
    decompressed size is whatever the stream really holds, never the header's word).
    """
    with IdxFile(path) as idx:
        return idx.read()


def _parse_header(path: Path, f: BinaryIO, most: int) -> tuple[np.dtype, tuple[int, ...]]:
    """(dtype, dimensions) from the header of stream `f`, which can hold at most `most`
    bytes in all; the stream is left at the payload."""
    head = f.read(4)
    if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in DTYPES or head[3] == 0:
        raise DatasetError(
            f"{path}: not an IDX file (bad magic number {head.hex() or 'empty'}; expected "
            "00 00 <type 08/09/0b/0c/0d/0e> <ndim>)"
        )
    dtype, ndim = DTYPES[head[2]], head[3]
    dims_raw = f.read(4 * ndim)
    if len(dims_raw) < 4 * ndim:
        raise DatasetError(f"{path}: truncated IDX header ({ndim} dimensions declared)")
    dims = struct.unpack(f">{ndim}I", dims_raw)
    expected = math.prod(dims) * dtype.itemsize
    shape = "x".join(map(str, dims))
    room = most - 4 - 4 * ndim
    if expected > room:
        raise DatasetError(
            f"{path}: truncated, or a damaged header: its dimensions field declares {shape} "
            f"{dtype.name} values ({expected} bytes) but the file can hold at most "
            f"{max(room, 0)} bytes after the header"
        )
    return dtype, dims


def write_idx(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write `array` as an IDX file (gzipped when the name ends in .gz), atomically.

    Used to convert data into the MNIST layout and by the tests to build small fixtures.
    """
    path = Path(path)
    array = np.asarray(array)
    code = _CODES.get(array.dtype.newbyteorder("="))
    if code is None or array.ndim == 0 or array.ndim > 255:
        raise DatasetError(
            f"{path}: cannot store a {array.dtype} array of shape {array.shape} "
            "as IDX (types: uint8, int8, int16, int32, float32, float64)"
        )
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(DTYPES[code], copy=False).tobytes()
    if path.suffix == ".gz":
        payload = gzip.compress(payload, mtime=0)
    return atomic_write(path, lambda f: f.write(payload))
