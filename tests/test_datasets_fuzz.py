"""Fuzzing the file readers (IDX, gzipped IDX, CSV, npz) with random and mutated bytes.

Starting from a small valid file, bytes are flipped, inserted and deleted (header fields
included). Whatever the damage, only DatasetError (a ValueError) may escape — never a
MemoryError, OverflowError, TypeError, IndexError, zlib/gzip/zipfile error or EOFError — and
the memory a read allocates stays bounded by the file, not by what its header claims.
"""

from __future__ import annotations

import gzip
import io
import struct

import numpy as np
import pytest
from helpers import SETTINGS, check_read, mutated
from hypothesis import given
from hypothesis import strategies as st

import nnlib.datasets as nds


def _idx(array: np.ndarray) -> bytes:
    """The IDX bytes of a uint8 or float64 array (header as in nnlib.datasets.write_idx)."""
    code = {np.dtype(np.uint8): 0x08, np.dtype(np.float64): 0x0E}[array.dtype]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def _npz(compressed: bool) -> bytes:
    buf = io.BytesIO()
    save = np.savez_compressed if compressed else np.savez
    rng = np.random.default_rng(0)
    save(
        buf,
        x_train=rng.integers(0, 5, (12, 3)).astype(np.float32),
        y_train=np.arange(12) % 3,
        x_test=np.ones((3, 3), np.float32),
        y_test=np.arange(3),
    )
    return buf.getvalue()


IMAGES = _idx(np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3))
LABELS = _idx(np.array([0, 1, 2, 1], np.uint8))
FLOATS = _idx(np.linspace(0, 1, 12).reshape(3, 4))
CSV = ("label,a,b,c\n" + "".join(f"{i % 3},{i},{i * 0.5},{-i}\n" for i in range(12))).encode()
SEEDS = {
    "idx": [IMAGES, LABELS, FLOATS],
    "idx.gz": [gzip.compress(b, mtime=0) for b in (IMAGES, LABELS, FLOATS)],
    "csv": [CSV, CSV.replace(b",", b";")],
    "npz": [_npz(False), _npz(True)],
}


def _fuzz_bytes(kind: str) -> st.SearchStrategy[bytes]:
    return st.one_of(mutated(SEEDS[kind]), st.binary(max_size=300))


@pytest.mark.parametrize("kind", ["idx", "idx.gz"])
def test_idx_reader_survives_damaged_files(tmp_path, kind):
    path = tmp_path / f"t10k-images-idx3-ubyte{'.gz' if kind.endswith('gz') else ''}"

    @SETTINGS
    @given(data=_fuzz_bytes(kind))
    def run(data: bytes) -> None:
        path.write_bytes(data)
        check_read(lambda: nds.read_idx(path), data)

    run()


def test_idx_folder_survives_damaged_label_files(tmp_path):
    folder = tmp_path / "digits"
    nds.write_idx(folder / "t10k-images-idx3-ubyte", np.zeros((4, 5, 3), np.uint8))
    labels = folder / "t10k-labels-idx1-ubyte"

    @SETTINGS
    @given(data=mutated(SEEDS["idx"][1:2]))
    def run(data: bytes) -> None:
        labels.write_bytes(data)
        check_read(lambda: nds.load(folder, cache=False), data)

    run()


def test_csv_reader_survives_damaged_files(tmp_path):
    path = tmp_path / "data.csv"

    @SETTINGS
    @given(data=_fuzz_bytes("csv"))
    def run(data: bytes) -> None:
        path.write_bytes(data)
        check_read(lambda: nds.load(path), data)

    run()


def test_npz_reader_survives_damaged_files(tmp_path):
    path = tmp_path / "data.npz"

    @SETTINGS
    @given(data=_fuzz_bytes("npz"))
    def run(data: bytes) -> None:
        path.write_bytes(data)
        check_read(lambda: nds.load(path), data)

    run()
