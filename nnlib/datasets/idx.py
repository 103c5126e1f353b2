"""Reader and writer for the IDX format used by MNIST, Fashion-MNIST and KMNIST.

Format: 2 zero bytes, a type code, the number of dimensions, then one big-endian uint32 per
dimension and the payload. Files may be gzipped (detected by the gzip magic, not the name).
The reader checks everything it can, because a truncated download is the usual failure: the
error names the file and says how many bytes the header promised and how many were there.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from .._atomic import atomic_write
from .base import DatasetError

# IDX type code -> big-endian numpy dtype
DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dtype.newbyteorder("="): code for code, dtype in DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_exact(f, buf: memoryview) -> int:
    """Fill buf from f as far as the stream allows; returns how many bytes were read."""
    got = 0
    while got < len(buf):
        n = f.readinto(buf[got:])
        if not n:
            break
        got += n
    return got


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a native-endian array of its declared shape."""
    path = Path(path)
    try:
        with open(path, "rb") as raw:
            gz = raw.read(2) == _GZIP_MAGIC
        opener = gzip.open if gz else open
        with opener(path, "rb") as f:
            return _parse(path, f)
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file") from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise DatasetError(f"{path}: corrupt or truncated gzip data ({e})") from None
    except OSError as e:
        raise DatasetError(f"{path}: cannot read ({e.strerror or e})") from None


def _parse(path: Path, f) -> np.ndarray:
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
    count = int(np.prod(dims, dtype=np.int64))
    expected = count * dtype.itemsize
    out = np.empty(count, dtype=dtype)
    got = _read_exact(f, memoryview(out).cast("B"))
    shape = "x".join(map(str, dims))
    if got < expected:
        raise DatasetError(
            f"{path}: truncated: the header declares {shape} {dtype.name} values "
            f"({expected} bytes) but only {got} bytes follow"
        )
    if f.read(1):
        raise DatasetError(
            f"{path}: {shape} {dtype.name} values declared but extra bytes follow the payload"
        )
    return out.reshape(dims).astype(dtype.newbyteorder("="), copy=False)


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
