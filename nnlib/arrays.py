"""The run's side file of arrays, `arrays.bin`: the big arrays of a few events (a feature
map's pixels) go there, so that events.jsonl stays small and quick to tail. An event line
keeps its small fields and, in place of an array, a reference `{"file": "arrays.bin",
"offset": N, "bytes": M}` to one block of the side file.

The file is append-only, written by the run's logger before the line that refers to it. A
block is a fixed header, the array's shape and its bytes:

    magic b"NNA1" | dtype code (u8) | flags (u8: 1 = zlib) | ndim (u8) | 0 (u8)
    | stored bytes (u32) | crc32 of the raw bytes (u32) | shape (ndim x u32) | stored bytes

little-endian. A reader checks all of it (the block inside the file and of the size the
reference says, the header, the length against the shape, the checksum); anything wrong is
one ArrayFileError naming the file and the offset, and the event's view says its data is
unreadable, while the rest of the run still shows. A log copied without its side file
reads the same way. Readers of summaries (the runs table, its index) never open it.

Why a side file: a LeNet-5 epoch's feature maps were 113 kB of JSON numbers a line (78% of
its events), 17.5 kB here (uint8, zlib).
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ._files import file_size, open_descriptor, open_regular

ARRAYS_FILE = "arrays.bin"
MAGIC = b"NNA1"
#: magic, dtype code, flags, ndim, reserved, stored bytes, crc32 of the raw bytes.
HEADER = struct.Struct("<4sBBBBII")
#: The dtype of each code (little-endian); a reader refuses any other code.
DTYPES: dict[int, np.dtype] = {
    1: np.dtype("u1"),
    2: np.dtype("<u2"),
    3: np.dtype("<u4"),
    4: np.dtype("<f4"),
}
CODES = {dtype: code for code, dtype in DTYPES.items()}
ZLIB = 1
#: The most dimensions, and bytes, one block may hold (a feature map's block is ~10 kB).
MAX_DIMS = 4
MAX_BLOCK = 64 << 20
#: Keys of a reference in an event line.
REF_KEYS = frozenset({"file", "offset", "bytes"})


class ArrayFileError(ValueError):
    """A block of the side file that cannot be read: missing, truncated or damaged."""


def is_ref(value: Any) -> bool:
    """True for a reference to a block, as an event line holds it."""
    return (
        isinstance(value, dict)
        and value.keys() == REF_KEYS
        and value["file"] == ARRAYS_FILE
        and all(type(value[k]) is int and 0 <= value[k] <= 2**63 - 1 for k in ("offset", "bytes"))
    )


def encode_block(array: np.ndarray) -> bytes:
    """One block: the header, the shape and the array's bytes, zlib-compressed when that
    saves at least an eighth."""
    dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
    code = CODES.get(dtype)
    if code is None or array.ndim > MAX_DIMS:
        raise ValueError(f"arrays: cannot store a {array.dtype} array of {array.ndim} dims")
    raw = np.ascontiguousarray(array, dtype=dtype).tobytes()
    stored, flags = zlib.compress(raw, 1), ZLIB
    if len(stored) > len(raw) - len(raw) // 8:
        stored, flags = raw, 0
    header = HEADER.pack(MAGIC, code, flags, array.ndim, 0, len(stored), zlib.crc32(raw))
    return header + struct.pack(f"<{array.ndim}I", *array.shape) + stored


class ArrayWriter:
    """Appends blocks to a run's side file (made on the first block; a resumed run's file
    grows on). Not thread-safe: the logger calls it holding its lock."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.path = Path(run_dir) / ARRAYS_FILE
        self._fd: int | None = None
        self._size = 0

    def append(self, array: np.ndarray) -> dict[str, Any]:
        """Write one block; its reference for the event line. Raises OSError (or ValueError
        for a side file that is a link or not a regular file)."""
        block = encode_block(array)
        if self._fd is None:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
            self._fd = open_descriptor(self.path, flags, "run's arrays file", mode=0o644)
            self._size = os.fstat(self._fd).st_size
        offset, written = self._size, 0
        while written < len(block):
            written += os.write(self._fd, block[written:])
        self._size += len(block)
        return {"file": ARRAYS_FILE, "offset": offset, "bytes": len(block)}

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class ArrayReader:
    """Reads referenced blocks of one run's side file, opened once (only a regular file,
    not a link) and sized first."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.path = Path(run_dir) / ARRAYS_FILE
        self._handle: Any = None
        self._size = 0

    def __enter__(self) -> ArrayReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def read(self, ref: Mapping[str, Any]) -> np.ndarray:
        """The array a reference points to; ArrayFileError, one line, if it cannot be had."""
        if not is_ref(ref):
            raise ArrayFileError(f"{self.path}: not a reference to a block ({ref!r:.60})")
        offset, length = ref["offset"], ref["bytes"]
        where = f"{self.path} at byte {offset:,}"
        if self._handle is None:
            self._handle = open_regular(self.path, "run's arrays file", ArrayFileError)
        self._size = file_size(self._handle)  # it may have grown since
        if not HEADER.size <= length <= MAX_BLOCK or offset + length > self._size:
            raise ArrayFileError(
                f"{where}: a block of {length:,} bytes is not in the file ({self._size:,} "
                "bytes; truncated, or not this run's)"
            )
        try:
            self._handle.seek(offset)
            block = self._handle.read(length)
        except OSError as error:
            raise ArrayFileError(f"{where}: cannot read ({error.strerror or error})") from None
        return decode_block(block, where)


def decode_block(block: bytes, where: str) -> np.ndarray:
    """The array of one whole block (exactly its bytes), every field checked."""
    if len(block) < HEADER.size:
        raise ArrayFileError(f"{where}: truncated block ({len(block)} bytes)")
    magic, code, flags, ndim, reserved, stored, crc = HEADER.unpack_from(block)
    if magic != MAGIC or reserved or flags & ~ZLIB or code not in DTYPES or ndim > MAX_DIMS:
        raise ArrayFileError(f"{where}: not an arrays block (damaged header)")
    start = HEADER.size + 4 * ndim
    if len(block) != start + stored:
        raise ArrayFileError(
            f"{where}: the block holds {len(block) - start:,} bytes of data, its header says "
            f"{stored:,}"
        )
    shape = struct.unpack_from(f"<{ndim}I", block, HEADER.size)
    dtype = DTYPES[code]
    expected = dtype.itemsize * int(np.prod(shape, dtype=np.int64))
    data = block[start:]
    if flags & ZLIB:
        try:
            inflater = zlib.decompressobj()
            raw = inflater.decompress(data, expected + 1)
        except zlib.error:
            raise ArrayFileError(f"{where}: damaged data (not a zlib stream)") from None
        if not inflater.eof or inflater.unconsumed_tail:
            raise ArrayFileError(f"{where}: damaged data (its zlib stream does not end there)")
    else:
        raw = data
    if len(raw) != expected:
        raise ArrayFileError(
            f"{where}: {len(raw):,} bytes of data for a {dtype} array of shape "
            f"{tuple(shape)} ({expected:,} bytes)"
        )
    if zlib.crc32(raw) != crc:
        raise ArrayFileError(f"{where}: damaged data (checksum mismatch)")
    return np.frombuffer(raw, dtype=dtype).reshape(shape)
