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
its events), 17.5 kB here (uint8, zlib); on MNIST-size LeNet-5, an epoch's 18 histograms
events were 68.5 kB of JSON and its sample predictions 36 kB (see README, Run logs).
"""

from __future__ import annotations

import itertools
import math
import os
import re
import struct
import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
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
    5: np.dtype("<f8"),
}
CODES = {dtype: code for code, dtype in DTYPES.items()}
ZLIB = 1
#: The most dimensions, and bytes, one block may hold (a feature map's block is ~10 kB).
MAX_DIMS = 4
MAX_BLOCK = 64 << 20
#: Keys of a reference in an event line.
REF_KEYS = frozenset({"file", "offset", "bytes"})
#: The largest integer a run log may hold (step, epoch, counts, a block's offset): an int64.
MAX_INT = 2**63 - 1


class ArrayFileError(ValueError):
    """A block of the side file that cannot be read: missing, truncated or damaged."""


def is_count(value: Any, top: int = MAX_INT) -> bool:
    """A non-negative integer up to `top`, not a boolean: the one test of the offsets, sizes
    and shapes in a line here and of an event's counts (nnlib.events.checks)."""
    return type(value) is int and 0 <= value <= top


def is_ref(value: Any) -> bool:
    """True for a reference to a block, as an event line holds it."""
    return (
        isinstance(value, dict)
        and value.keys() == REF_KEYS
        and value["file"] == ARRAYS_FILE
        and all(is_count(value[k]) for k in ("offset", "bytes"))
    )


def encode_block(array: np.ndarray) -> bytes:
    """One block: the header, the shape and the array's bytes, zlib-compressed (level 6:
    blocks are written a few times an epoch; against level 1 it saved 2% of an MNIST-size
    epoch's side file) when that saves at least an eighth."""
    dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
    code = CODES.get(dtype)
    if code is None or array.ndim > MAX_DIMS:
        raise ValueError(f"arrays: cannot store a {array.dtype} array of {array.ndim} dims")
    raw = np.ascontiguousarray(array, dtype=dtype).tobytes()
    stored, flags = zlib.compress(raw, 6), ZLIB
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
            self._fd = open_descriptor(self.path, flags, "run's arrays file")
            self._size = os.fstat(self._fd).st_size
        offset, written = self._size, 0
        while written < len(block):
            written += os.write(self._fd, block[written:])
        self._size += len(block)
        return {"file": ARRAYS_FILE, "offset": offset, "bytes": len(block)}

    def close(self) -> None:
        """Let the descriptor go (also when closing it fails: it is released all the same)."""
        descriptor, self._fd = self._fd, None
        if descriptor is not None:
            os.close(descriptor)


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
        return decode_block(self._block(offset, length, where), where)

    def _block(self, offset: int, length: int, where: str) -> bytes:
        """The `length` bytes at `offset`, which must be a block's size and in the file."""
        if not HEADER.size <= length <= MAX_BLOCK or offset + length > self._size:
            raise ArrayFileError(
                f"{where}: a block of {length:,} bytes is not in the file ({self._size:,} "
                "bytes; truncated, or not this run's)"
            )
        try:
            self._handle.seek(offset)
            return self._handle.read(length)
        except OSError as error:
            raise ArrayFileError(f"{where}: cannot read ({error.strerror or error})") from None


def decode_block(block: bytes, where: str) -> np.ndarray:
    """The array of one whole block (exactly its bytes), every field checked."""
    dtype, shape, compressed, crc, data = _block_parts(block, where)
    expected = dtype.itemsize * int(np.prod(shape, dtype=np.int64))
    raw = _inflated(data, expected, where) if compressed else data
    if len(raw) != expected:
        raise ArrayFileError(
            f"{where}: {len(raw):,} bytes of data for a {dtype} array of shape "
            f"{tuple(shape)} ({expected:,} bytes)"
        )
    if zlib.crc32(raw) != crc:
        raise ArrayFileError(f"{where}: damaged data (checksum mismatch)")
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def _block_parts(block: bytes, where: str) -> tuple[np.dtype, tuple[int, ...], bool, int, bytes]:
    """A block's header and shape, checked against the block's length: (dtype, shape,
    compressed, crc32 of the raw bytes, the stored data)."""
    code, flags, ndim, stored, crc = _header(block, where)
    start = HEADER.size + 4 * ndim
    if len(block) != start + stored:
        raise ArrayFileError(
            f"{where}: the block holds {len(block) - start:,} bytes of data, its header says "
            f"{stored:,}"
        )
    shape = struct.unpack_from(f"<{ndim}I", block, HEADER.size)
    return DTYPES[code], shape, bool(flags & ZLIB), crc, block[start:]


def _header(block: bytes, where: str) -> tuple[int, int, int, int, int]:
    """The fields of a block's header (dtype code, flags, ndim, stored bytes, crc32), each
    one a writer here gives."""
    if len(block) < HEADER.size:
        raise ArrayFileError(f"{where}: truncated block ({len(block)} bytes)")
    magic, code, flags, ndim, reserved, stored, crc = HEADER.unpack_from(block)
    if magic != MAGIC or reserved or flags & ~ZLIB or code not in DTYPES or ndim > MAX_DIMS:
        raise ArrayFileError(f"{where}: not an arrays block (damaged header)")
    return code, flags, ndim, stored, crc


def _inflated(data: bytes, expected: int, where: str) -> bytes:
    """A compressed block's raw bytes, inflated to at most one byte more than `expected`
    (a damaged or hostile length inflates no further), its zlib stream ending exactly there."""
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(data, expected + 1)
    except zlib.error:
        raise ArrayFileError(f"{where}: damaged data (not a zlib stream)") from None
    if not inflater.eof or inflater.unconsumed_tail:
        raise ArrayFileError(f"{where}: damaged data (its zlib stream does not end there)")
    return raw


# -- big event fields as blocks (schema 2) ---------------------------------------------------------
def is_packed(value: Any, name: str) -> bool:
    """True for a field that `name`'s packer stored in the side file, as its line holds it."""
    if not (isinstance(value, dict) and value.get("packed") == name):
        return False
    blocks = value.get("blocks")
    return isinstance(blocks, list) and all(map(_is_block, blocks))


def _is_block(value: Any) -> bool:
    """[offset, bytes]: how a packed field's line gives each of its blocks."""
    return isinstance(value, list) and len(value) == 2 and all(map(is_count, value))


class Packer(ABC):
    """How one big event field goes into blocks of the side file: `pack` gives the small JSON
    its line keeps (`meta`) and the arrays (None: the value stays in the line), `unpack` the
    value back from them, checking that they fit together (ArrayFileError, one line, else).
    `unpack(*pack(value))` is the value a record holds (`canonical`): what is stored is what
    the run's live views are shown. `empty` is the field's value when its blocks cannot be
    read."""

    name = ""
    empty: Any = None

    @abstractmethod
    def pack(self, value: Any) -> tuple[dict[str, Any], list[np.ndarray]] | None: ...

    @abstractmethod
    def unpack(self, meta: Mapping[str, Any], arrays: list[np.ndarray]) -> Any: ...

    def canonical(self, value: Any) -> Any:
        packed = self.pack(value)
        return value if packed is None else self.unpack(*packed)

    def store(self, value: Any, writer: ArrayWriter) -> Any:
        """The field as its line holds it: its arrays appended as blocks first."""
        packed = self.pack(value)
        if packed is None:
            return value
        meta, arrays = packed
        blocks = [[ref["offset"], ref["bytes"]] for ref in map(writer.append, arrays)]
        return {"packed": self.name, **meta, "blocks": blocks}

    def load(self, stored: Mapping[str, Any], reader: ArrayReader) -> Any:
        """The field back from its line's JSON and its blocks; ArrayFileError if they cannot
        be read or do not fit together."""
        arrays = [
            reader.read({"file": ARRAYS_FILE, "offset": offset, "bytes": size})
            for offset, size in stored["blocks"]
        ]
        meta = {k: v for k, v in stored.items() if k not in ("packed", "blocks")}
        return self.unpack(meta, arrays)


def _misfit(what: str) -> ArrayFileError:
    return ArrayFileError(f"{what} do not fit their blocks (damaged, or not this run's)")


def _meta_values(meta: Mapping[str, Any], what: str, **types: type) -> list[Any]:
    """The values of a packed line's own keys, which must be exactly `types`'s, each of its
    exact type (JSON's: a boolean is no int); else the misfit error for `what`."""
    if set(meta) != set(types) or any(type(meta[key]) is not t for key, t in types.items()):
        raise _misfit(what)
    return [meta[key] for key in types]


def _blocks(arrays: list[np.ndarray], what: str, *forms: tuple[int, str]) -> list[np.ndarray]:
    """`arrays`, when there is one per form and each has its form's (dims, dtype): the dtype
    as its kind letter ("u", "f") or that and its size ("u1": uint8); else the misfit error
    for `what`."""
    if len(arrays) != len(forms) or any(
        array.ndim != ndim or not array.dtype.str[1:].startswith(dtype)
        for array, (ndim, dtype) in zip(arrays, forms, strict=True)
    ):
        raise _misfit(what)
    return arrays


def _uint_array(values: list[int]) -> np.ndarray | None:
    """Non-negative integers in the smallest unsigned dtype that holds them (None: none does)."""
    top = max(values, default=0)
    for dtype in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(dtype).max:
            return np.asarray(values, dtype=dtype)
    return None


def _float_array(values: Sequence[float | None]) -> np.ndarray:
    """Floats (None as NaN), each rounded to float32 where it fits (a display needs no
    more), as float32 where that keeps every one of them, else float64."""
    wide = np.array([np.nan if v is None else float32(v) for v in values], dtype=np.float64)
    with np.errstate(over="ignore"):
        narrow = wide.astype(np.float32)
    return narrow if np.array_equal(narrow, wide, equal_nan=True) else wide


def _floats(array: np.ndarray) -> list[float | None]:
    return [None if v != v else v for v in array.astype(np.float64).tolist()]


def float32(value: float) -> float:
    """`value` rounded to float32 where it fits (a finite value beyond float32 stays)."""
    return float(np.float32(value)) if abs(value) <= F32_MAX else value


#: The largest finite float32.
F32_MAX = float(np.finfo(np.float32).max)


class UintsPacker(Packer):
    """A list of non-negative integers (sample predictions, confidences) as one block of the
    smallest unsigned dtype: 6,000 predictions were 36 kB of JSON a line."""

    name = "uints"
    empty: list[int] = []

    def pack(self, value: Any) -> tuple[dict[str, Any], list[np.ndarray]] | None:
        array = _uint_array(value) if isinstance(value, list) else None
        return None if array is None else ({}, [array])

    def unpack(self, meta: Mapping[str, Any], arrays: list[np.ndarray]) -> Any:
        _meta_values(meta, "a list of integers")
        (array,) = _blocks(arrays, "a list of integers", (1, "u"))
        return array.tolist()


#: A layer's entry in a packed histograms event: what it holds, in this order, one letter
#: each: weights, grads (upper case: with a count of non-finite values), grad_norm,
#: update_ratio, dead_fraction.
_LAYOUT = re.compile(r"[wW]?[gG]?n?u?d?")
_HISTOGRAMS = (("weights", "w"), ("grads", "g"))
_SCALARS = (("grad_norm", "n"), ("update_ratio", "u"), ("dead_fraction", "d"))
_HISTOGRAM_KEYS = frozenset({"lo", "hi", "counts", "percentiles", "nonfinite"})
_LAYER_KEYS = frozenset(key for key, _ in (*_HISTOGRAMS, *_SCALARS))


class HistogramsPacker(Packer):
    """A histograms event's layers as two blocks: every histogram's counts (and non-finite
    count) as rows of one unsigned array, and its bounds and percentiles, then each layer's
    gradient norm, update ratio and dead fraction, as one float array (None as NaN). Floats
    are kept as float32 (within float32's range): a display of 30 bins needs no more. The
    line keeps each layer's name and a letter per item it holds (see _LAYOUT)."""

    name = "histograms"
    empty: dict[str, Any] = {}

    def pack(self, value: Any) -> tuple[dict[str, Any], list[np.ndarray]] | None:
        layout = {name: _layer_code(entry) for name, entry in value.items()}
        if None in layout.values():
            return None  # a shape this packer does not know: the line keeps it
        histograms = [histogram for entry in value.values() for histogram in _histograms(entry)]
        bins, width = _one_length(histograms, "counts"), _one_length(histograms, "percentiles")
        if bins is None or width is None:
            return None  # histograms of other sizes: the blocks hold rows of one length
        counts = _count_rows(histograms, bins)
        if counts is None:
            return None
        meta = {"layout": layout, "percentiles": width}
        return meta, [counts, _float_array(_layer_floats(value.values()))]

    def unpack(self, meta: Mapping[str, Any], arrays: list[np.ndarray]) -> Any:
        layout, width = _meta_values(meta, "histograms", layout=dict, percentiles=int)
        codes = _layout_codes(layout)
        counts, floats = _blocks(arrays, "histograms", (2, "u"), (1, "f"))
        histograms = sum(map(codes.lower().count, "wg"))
        expected = histograms * (2 + width) + sum(map(codes.count, "nud"))
        if counts.shape[1] < 1 or len(counts) != histograms or len(floats) != expected:
            raise _misfit("histograms")
        return _unpacked_layers(layout, counts.tolist(), _floats(floats), width)


def _layout_codes(layout: Mapping[str, Any]) -> str:
    """Every layer's letters of a packed histograms line, one after the other, each layer's
    checked against _LAYOUT."""
    if not all(isinstance(c, str) and _LAYOUT.fullmatch(c) for c in layout.values()):
        raise _misfit("histograms")
    return "".join(layout.values())


def _layer_code(entry: Any) -> str | None:
    """A layer entry's letters (see _LAYOUT), or None when it holds anything else."""
    if not _keyed_within(entry, _LAYER_KEYS):
        return None
    code = ""
    for key, letter in _HISTOGRAMS:
        histogram = entry.get(key)
        if histogram is not None:
            if not _keyed_within(histogram, _HISTOGRAM_KEYS):
                return None
            code += letter.upper() if "nonfinite" in histogram else letter
    return code + "".join(letter for key, letter in _SCALARS if key in entry)


def _keyed_within(value: Any, keys: frozenset[str]) -> bool:
    """An object with no key but `keys`: a layer entry or a histogram this packer knows every
    item of (an unknown one stays in the line)."""
    return isinstance(value, dict) and set(value) <= keys


def _one_length(histograms: list[dict[str, Any]], key: str) -> int | None:
    """The one length of every histogram's `key` list (its bins, its percentiles), 0 when
    there are none; None when they differ (the line keeps them)."""
    lengths = {len(histogram[key]) for histogram in histograms}
    return None if len(lengths) > 1 else max(lengths, default=0)


def _histograms(entry: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A layer entry's histograms, in _HISTOGRAMS's order."""
    return [entry[key] for key, _ in _HISTOGRAMS if key in entry]


def _count_rows(histograms: list[dict[str, Any]], bins: int) -> np.ndarray | None:
    """Each histogram's `bins` counts and its non-finite count as a row of one unsigned
    array; None when a count is beyond uint32 (the line keeps them)."""
    counts = _uint_array([n for h in histograms for n in (*h["counts"], h.get("nonfinite", 0))])
    return None if counts is None else counts.reshape(len(histograms), bins + 1)


def _layer_floats(layers: Iterable[Mapping[str, Any]]) -> list[float | None]:
    """The layers' floats in the order their block holds them: per layer, each histogram's
    bounds and percentiles, then its scalars (what `_unpacked_layers` reads back)."""
    floats: list[float | None] = []
    for entry in layers:
        for histogram in _histograms(entry):
            floats += [histogram["lo"], histogram["hi"], *histogram["percentiles"]]
        floats += [entry[key] for key, _ in _SCALARS if key in entry]
    return floats


def _unpacked_layers(
    layout: Mapping[str, str], rows: list[list[int]], floats: list[float | None], width: int
) -> dict[str, Any]:
    """The layers of a histograms event from its unpacked blocks, in `layout`'s order."""
    row, value = iter(rows), iter(floats)
    return {name: _unpacked_entry(code, row, value, width) for name, code in layout.items()}


def _unpacked_entry(
    code: str, rows: Iterator[list[int]], floats: Iterator[float | None], width: int
) -> dict[str, Any]:
    """A layer's entry of the items its `code` names, taking its histograms' rows and its
    floats from where the layers before it left off."""
    entry: dict[str, Any] = {}
    for key, letter in _HISTOGRAMS:
        if letter in code.lower():
            entry[key] = _unpacked_histogram(next(rows), floats, width, letter.upper() in code)
    for key, letter in _SCALARS:
        if letter in code:
            entry[key] = next(floats)
    return entry


def _unpacked_histogram(
    row: list[int], floats: Iterator[float | None], width: int, nonfinite: bool
) -> dict[str, Any]:
    """A histogram from its row of counts (the non-finite count last, kept when `nonfinite`)
    and its bounds and `width` percentiles, the next floats."""
    *counts, count = row
    lo, hi, *percentiles = itertools.islice(floats, 2 + width)
    histogram = {"lo": lo, "hi": hi, "counts": counts, "percentiles": percentiles}
    return {**histogram, "nonfinite": count} if nonfinite else histogram


class MapsPacker(Packer):
    """A feature_maps event's images (each {index, layers}: maps records {name, shape, lo, hi,
    data}) as two blocks: every record's uint8 pixels, and every record's per-channel lo then
    hi (float32 where it fits). The line keeps each image's index and each record's name and
    shape: [[index, [[name, C, H, W], ...]], ...]. (Schema 1 kept lo and hi in the line, 7.6
    kB a LeNet-5 event, and a reference per record.)"""

    name = "maps"
    empty: Any = []

    def pack(self, value: Any) -> tuple[dict[str, Any], list[np.ndarray]] | None:
        layout, pixels, scales = [], [], []
        for image in value:
            if set(image) != {"index", "layers"}:
                return None
            shapes = []
            for record in image["layers"]:
                if set(record) != {"name", "shape", "lo", "hi", "data"} or is_ref(record["data"]):
                    return None
                shapes.append([record["name"], *record["shape"]])
                pixels += record["data"]
                scales += [*record["lo"], *record["hi"]]
            layout.append([image["index"], shapes])
        arrays = [np.asarray(pixels, dtype=np.uint8), _float_array(scales)]
        return {"images": layout}, arrays

    def unpack(self, meta: Mapping[str, Any], arrays: list[np.ndarray]) -> Any:
        (layout,) = _meta_values(meta, "feature maps", images=list)
        pixels, scales = _blocks(arrays, "feature maps", (1, "u1"), (1, "f"))
        flat, values = pixels.tolist(), _floats(scales)
        images, at, scale_at = [], 0, 0
        for entry in layout:
            index, shapes = _image_entry(entry)
            layers = []
            for name, *shape in shapes:
                size, channels = math.prod(shape), shape[0]
                lo = values[scale_at : scale_at + channels]
                hi = values[scale_at + channels : scale_at + 2 * channels]
                data = flat[at : at + size]
                layers.append({"name": name, "shape": shape, "lo": lo, "hi": hi, "data": data})
                at, scale_at = at + size, scale_at + 2 * channels
            images.append({"index": index, "layers": layers})
        if at != len(flat) or scale_at != len(values):
            raise _misfit("feature maps")
        return images


def _image_entry(entry: Any) -> tuple[int, list[list[Any]]]:
    """[index, [[name, C, H, W], ...]] of a packed feature maps line, checked."""
    ok = (
        isinstance(entry, list)
        and len(entry) == 2
        and type(entry[0]) is int
        and isinstance(entry[1], list)
        and all(map(_is_named_shape, entry[1]))
    )
    if not ok:
        raise _misfit("feature maps")
    return entry[0], entry[1]


def _is_named_shape(value: Any) -> bool:
    """[name, C, H, W]: how a packed feature maps line names a record and gives its shape
    (each size below 2**32, as a block's header holds it)."""
    return (
        isinstance(value, list)
        and len(value) == 4
        and isinstance(value[0], str)
        and all(is_count(n, 1 << 32) for n in value[1:])
    )


class FiltersPacker(MapsPacker):
    """The first conv layer's filters (one maps record) as MapsPacker stores one image."""

    name = "filters"
    empty = None

    def pack(self, value: Any) -> tuple[dict[str, Any], list[np.ndarray]] | None:
        return super().pack([{"index": 0, "layers": [value]}])

    def unpack(self, meta: Mapping[str, Any], arrays: list[np.ndarray]) -> Any:
        images = super().unpack(meta, arrays)
        if len(images) != 1 or len(images[0]["layers"]) != 1:
            raise _misfit("filters")
        return images[0]["layers"][0]


HISTOGRAMS = HistogramsPacker()
UINTS = UintsPacker()
MAPS = MapsPacker()
FILTERS = FiltersPacker()
