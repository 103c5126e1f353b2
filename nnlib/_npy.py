"""The .npy members of every archive the project reads (users' .npz datasets and dataset
caches, model files, checkpoints, samples files), read header first so that nothing is
decompressed or allocated for an array that would be refused.

The header is parsed here, strictly, not by numpy: numpy evaluates it as a Python literal
after running it through `tokenize`, so a damaged header escapes as TokenError,
SyntaxError, MemoryError or RecursionError. Here it must be exactly the dictionary numpy
writes ('descr', 'fortran_order' and 'shape', nothing else), and every way it can be wrong
is one `error` naming the file and the member.
"""

from __future__ import annotations

import math
import os
import re
import struct
import zipfile
import zlib
from collections.abc import Callable, Mapping
from typing import IO, Any, cast

import numpy as np

from ._files import check_memory, deflate_bound, file_size, open_regular, read_payload

_MAGIC = b"\x93NUMPY"
#: The header-length field of each format version numpy defines.
_LENGTH_FIELDS = {(1, 0): "<H", (2, 0): "<I", (3, 0): "<I"}
#: numpy refuses longer headers by default too (`max_header_size`).
MAX_HEADER_BYTES = 10_000
#: numpy 2's limit on dimensions.
MAX_DIMS = 64
#: dtype kinds an archive may hold: booleans, numbers, fixed-length text, Python objects.
_KINDS = "biufcUSO"

#: A token of a header, by kind: a quoted string, an integer, a boolean or punctuation.
_TOKEN = re.compile(
    r"\s*(?:(?P<str>'[^'\\]*'|\"[^\"\\]*\")|(?P<int>\d+)L?|(?P<bool>True|False)|(?P<punct>[{}():,]))"
)
_DESCR = re.compile(r"[<>|=]([A-Za-z])\d*(?:\[\w+\])?")
_KEYS = ("descr", "fortran_order", "shape")


class Unsupported(ValueError):
    """A well-formed header of an array no reader here takes."""


def read_header(
    handle: IO[bytes], where: str, error: type[ValueError] = ValueError
) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran order, dtype) from the .npy header at `handle`'s position, leaving
    `handle` at the first byte of data; `error` starting with `where` for anything but a
    header numpy itself would write for an array of booleans, numbers, text or Python
    objects (the object dtype is returned for the caller to refuse by name: no reader
    unpickles)."""
    text, version = _header_bytes(handle, where, error)
    try:
        decoded = text.decode("utf-8" if version == (3, 0) else "latin-1")
        return _parse(decoded)
    except Unsupported as problem:
        raise error(f"{where}: {problem}") from None
    except ValueError as problem:
        raise error(f"{where}: damaged .npy header ({problem})") from None


def _header_bytes(
    handle: IO[bytes], where: str, error: type[ValueError]
) -> tuple[bytes, tuple[int, int]]:
    """The header dictionary's bytes and the format version, read from the magic on, each
    length checked before what it counts is read."""
    version = _version(handle, where, error)
    field = _LENGTH_FIELDS[version]
    raw = handle.read(struct.calcsize(field))
    if len(raw) < struct.calcsize(field):
        raise error(f"{where}: truncated .npy header")
    (length,) = struct.unpack(field, raw)
    if length > MAX_HEADER_BYTES:
        raise error(
            f"{where}: its .npy header claims {length:,} bytes, more than the "
            f"{MAX_HEADER_BYTES:,} a header may have"
        )
    text = handle.read(length)
    if len(text) < length:
        raise error(f"{where}: truncated .npy header ({length} bytes declared, {len(text)} there)")
    return text, version


def _version(handle: IO[bytes], where: str, error: type[ValueError]) -> tuple[int, int]:
    """The format version after the magic, one numpy defines."""
    start = handle.read(len(_MAGIC) + 2)
    if start[:-2] != _MAGIC:  # also when fewer bytes are there: the magic is cut short
        raise error(f"{where}: not a .npy array (its first bytes are {start[:8]!r})")
    version = (start[-2], start[-1])
    if version not in _LENGTH_FIELDS:
        raise error(f"{where}: .npy format version {version[0]}.{version[1]} is not supported")
    return version


def _tokens(text: str) -> list[tuple[str, str]]:
    """(kind, text) of each token: 'str', 'int', 'bool' or the punctuation itself."""
    tokens, position, end = [], 0, len(text.rstrip())
    while position < end:
        match = _TOKEN.match(text, position)
        if match is None:
            rest = text[position:].strip()
            if rest.startswith("["):  # a list of fields as 'descr'
                raise Unsupported("a structured dtype (named fields) is not supported")
            raise ValueError(f"unexpected {rest[:20]!r}")
        kind = str(match.lastgroup)
        value = match.group(kind)
        if kind == "str":
            value = value[1:-1]  # the text between the quotes
        tokens.append((value if kind == "punct" else kind, value))
        position = match.end()
    return tokens


class _Header:
    """The tokens of a header dictionary, taken in order, each where one of its kinds must be
    (else a ValueError that says what was found)."""

    def __init__(self, text: str) -> None:
        self.tokens = [*_tokens(text), ("end", "the end")]
        self.position = 0

    def at(self, kind: str) -> bool:
        return self.tokens[self.position][0] == kind

    def take(self, *kinds: str) -> str:
        kind, value = self.tokens[self.position]
        if kind not in kinds:
            raise ValueError(f"expected {' or '.join(kinds)}, found {value!r}")
        self.position += 1
        return value

    def ends(self, closing: str) -> bool:
        """After an item: its comma taken, or `closing` found (and left): True at the end."""
        if self.take(",", closing) == ",":
            return False
        self.position -= 1
        return True

    def fields(self) -> dict[str, object]:
        """The dictionary, to the end of the text: each key one of _KEYS, at most once."""
        self.take("{")
        fields: dict[str, object] = {}
        while not self.at("}"):
            key = self.take("str")
            if key not in _KEYS or key in fields:
                raise ValueError(f"unexpected key {key!r}")
            self.take(":")
            fields[key] = self.value(key)
            self.ends("}")
        self.take("}")
        self.take("end")
        return fields

    def value(self, key: str) -> object:
        """The value of one of the keys, each of its own type."""
        if key == "descr":
            return self.take("str")
        if key == "fortran_order":
            return self.take("bool") == "True"
        return self.shape()

    def shape(self) -> tuple[int, ...]:
        """A tuple of dimensions, as Python writes it: (), (n,), (n, m)."""
        self.take("(")
        dims: list[int] = []
        while not self.at(")"):
            dims.append(int(self.take("int")))
            if self.ends(")") and len(dims) == 1:
                raise ValueError("a shape of one dimension is written (n,)")
        self.take(")")
        return tuple(dims)


def _parse(text: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """The three fields of a header dictionary (see the module docstring)."""
    fields = _Header(text).fields()
    missing = [key for key in _KEYS if key not in fields]
    if missing:
        raise ValueError(f"no {missing[0]!r}")
    shape = cast(tuple[int, ...], fields["shape"])  # _Header.value's for "shape"
    if len(shape) > MAX_DIMS:
        raise ValueError(f"{len(shape)} dimensions, at most {MAX_DIMS}")
    if max(shape, default=0) >= 2**63:
        raise ValueError(f"shape {shape} has a dimension too large for an array")
    return shape, bool(fields["fortran_order"]), _dtype(str(fields["descr"]))


def _dtype(descr: str) -> np.dtype:
    """The dtype of a header's 'descr': one numpy writes, of a kind an archive may hold."""
    if _DESCR.fullmatch(descr) is None:
        raise ValueError(f"dtype {descr[:40]!r} is not one numpy writes")
    if descr[1:] == "O":
        return np.dtype(object)  # refused by every reader, from the header: never unpickled
    dtype = _written_dtype(descr)
    if dtype.kind not in _KINDS:
        raise Unsupported(f"dtype {dtype} is not supported (booleans, numbers and text)")
    return dtype


def _written_dtype(descr: str) -> np.dtype:
    """numpy's dtype for `descr`, which must have a size and be of the type letter `descr`
    gives (numpy takes spellings it never writes)."""
    try:
        dtype = np.dtype(descr)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"dtype {descr!r} is not valid") from None
    if dtype.itemsize == 0:
        raise ValueError(f"dtype {descr!r} has no size")
    if dtype.str.lstrip("<>|=")[0] != descr[1]:
        raise ValueError(f"dtype {descr!r} is not one numpy writes")
    return dtype


# zipfile and zlib raise all of these on damaged archives
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    NotImplementedError,  # a compression method zipfile lacks
    RuntimeError,  # an encrypted member
    ValueError,
    OverflowError,
    KeyError,
)


def write_npz(handle: IO[bytes], arrays: Mapping[str, np.ndarray]) -> None:
    """np.savez of `arrays` into `handle`, refusing an object array (it would be a pickle)
    here: `allow_pickle` is a keyword of np.savez only from numpy 2.2; before, it was saved
    as an array named 'allow_pickle', and every reader here refused the file."""
    for name, array in arrays.items():
        if np.asarray(array).dtype.hasobject:
            raise ValueError(f"{name}: an object array cannot be saved without a pickle")
    np.savez(handle, **cast(dict[str, Any], arrays))


def read_npz(
    path: str | os.PathLike, error: type[ValueError] = ValueError, what: str = ".npz file"
) -> dict[str, np.ndarray]:
    """The arrays of an .npz archive (np.savez / np.savez_compressed) by name, read from a
    regular file (`open_regular`). Every member's header is checked against the archive's
    real size, and the sum of all of them against the free memory, before any data is read.
    Every failure is `error` naming the file (and the member)."""
    with open_regular(path, what, error) as handle:
        size = file_size(handle)
        try:
            with zipfile.ZipFile(handle) as archive:
                return _read_members(path, size, archive, error)
        except error:
            raise
        except _ZIP_ERRORS as e:
            raise error(f"{path}: not a readable {what} ({type(e).__name__}: {e})") from None


def _read_members(
    path: str | os.PathLike, size: int, archive: zipfile.ZipFile, error: type[ValueError]
) -> dict[str, np.ndarray]:
    """The .npy members of an open archive (of `size` bytes) by name: every header checked,
    and their sum against the free memory, before the data of any is read."""
    members = [info for info in archive.infolist() if info.filename.endswith(".npy")]
    total = sum(_member_bytes(path, size, archive, info, error) for info in members)
    check_memory(total, f"{path}: its arrays", error)
    return {
        info.filename[: -len(".npy")]: _read_member(path, archive, info, error) for info in members
    }


def _where(path: str | os.PathLike, info: zipfile.ZipInfo) -> str:
    return f"{path}: array {info.filename[: -len('.npy')]!r}"


#: The most bytes a member can inflate to from its stored bytes, by compression method.
_INFLATED_BOUND: dict[int, Callable[[int], int]] = {
    zipfile.ZIP_STORED: lambda stored: stored,
    zipfile.ZIP_DEFLATED: deflate_bound,
}


def _check_declared_size(
    info: zipfile.ZipInfo, size: int, where: str, error: type[ValueError]
) -> None:
    """`error` unless a member's declared size is one its stored bytes (at most the archive's
    `size`) can inflate to, by a compression method np.savez writes."""
    bound = _INFLATED_BOUND.get(info.compress_type)
    if bound is None:
        raise error(
            f"{where}: zip compression method {info.compress_type} is not supported; save "
            "with np.savez or np.savez_compressed"
        )
    if info.file_size > bound(min(info.compress_size, size)):
        raise error(
            f"{where}: the archive says it holds {info.file_size} bytes, more than its "
            f"{info.compress_size} stored bytes can hold"
        )


def _member_bytes(
    path: str | os.PathLike,
    size: int,
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    error: type[ValueError],
) -> int:
    """The bytes of a member's array, from its header, checked against the bytes the archive
    can hold for it."""
    where = _where(path, info)
    _check_declared_size(info, size, where, error)
    with archive.open(info) as f:
        shape, _, dtype = read_header(f, where, error)
        if dtype.hasobject:
            raise error(
                f"{where} holds Python objects; save plain numeric arrays (pickled data is "
                "not loaded)"
            )
        nbytes = math.prod(shape) * dtype.itemsize
        available = info.file_size - f.tell()
    if nbytes != available:
        raise error(
            f"{where}: the header declares {_shape_text(shape)} {dtype} ({nbytes} bytes) but "
            f"the archive holds {available} bytes for it"
        )
    return nbytes


def _shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) or "scalar"


def _read_member(
    path: str | os.PathLike,
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    error: type[ValueError],
) -> np.ndarray:
    where = _where(path, info)
    with archive.open(info) as f:
        shape, fortran, dtype = read_header(f, where, error)
        count = math.prod(shape)
        claim = f"the header declares {_shape_text(shape)} {dtype}"
        buf = read_payload(f, count * dtype.itemsize, where, claim, error)
    array = np.frombuffer(buf, dtype=dtype, count=count) if count else np.empty(0, dtype)
    return array.reshape(shape, order="F" if fortran else "C")
