"""Data files are never sized from their own headers, and class labels are checked by one rule:
IDX dimensions against the real file, gzip and npz streams read in bounded chunks, the class
count capped and not wildly sparse, for CSV, npz and IDX alike (issue 8, item 11)."""

from __future__ import annotations

import gzip
import io
import struct
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

import nnlib.datasets as nds
from nnlib.datasets.base import MAX_CLASSES


@pytest.fixture(autouse=True)
def data_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("NNLIB_DATA_DIR", str(tmp_path / "home"))
    return tmp_path / "home"


def peak_bytes(fn) -> tuple[int, BaseException | None]:
    """Peak traced allocation while fn runs (numpy reports its buffers to tracemalloc)."""
    tracemalloc.start()
    try:
        fn()
        error = None
    except Exception as e:
        error = e
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak, error


def idx_folder(folder: Path, labels: np.ndarray, gz: bool = False) -> Path:
    ext = ".gz" if gz else ""
    images = np.zeros((len(labels), 4, 4), np.uint8)
    nds.write_idx(folder / f"t10k-images-idx3-ubyte{ext}", images)
    nds.write_idx(folder / f"t10k-labels-idx1-ubyte{ext}", labels)
    return folder


# ---------------------------------------------------------------------- IDX headers


@pytest.mark.parametrize("gz", [False, True])
def test_bit_flip_in_an_idx_dimension_is_refused_before_allocating(tmp_path, gz):
    path = tmp_path / ("t10k-images-idx3-ubyte" + (".gz" if gz else ""))
    raw = bytearray(bytes([0, 0, 8, 3]) + struct.pack(">3I", 100, 28, 28) + bytes(100 * 28 * 28))
    raw[4] ^= 0x80  # the top bit of dimension 0: 100 -> 2,147,483,748 images (~1.5 TiB)
    path.write_bytes(gzip.compress(bytes(raw), mtime=0) if gz else bytes(raw))
    peak, error = peak_bytes(lambda: nds.read_idx(path))
    assert isinstance(error, nds.DatasetError), repr(error)
    assert path.name in str(error) and "2147483748x28x28" in str(error)
    assert "dimensions" in str(error)
    assert peak < 8 * 1024 * 1024  # the real 78 kB, read in chunks, not the header's claim


def test_idx_dimensions_whose_product_overflows_int64_name_the_file(tmp_path):
    path = tmp_path / "huge-idx4-ubyte"
    path.write_bytes(bytes([0, 0, 0x0E, 4]) + struct.pack(">4I", *[0xFFFFFFFF] * 4) + b"\0" * 64)
    with pytest.raises(nds.DatasetError, match=r"huge-idx4-ubyte: .*dimensions field declares"):
        nds.read_idx(path)


def test_gzip_payload_longer_than_its_header_is_read_only_up_to_the_claim(tmp_path):
    """A gzip file is never trusted: extra data after the declared payload is refused."""
    path = tmp_path / "x-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 3]) + bytes(10_000), mtime=0))
    with pytest.raises(nds.DatasetError, match="extra bytes follow"):
        nds.read_idx(path)


# ---------------------------------------------------------------------- class counts


def test_idx_labels_of_two_billion_are_refused_naming_file_item_and_value(tmp_path):
    folder = idx_folder(tmp_path / "ids", np.full(20, 2_000_000_000, np.int32))
    peak, error = peak_bytes(lambda: nds.load(folder, cache=False))
    assert isinstance(error, nds.DatasetError), repr(error)
    message = str(error)
    assert "t10k-labels-idx1-ubyte item 0: label 2000000000 would make 2000000001 classes" in (
        message
    )
    assert f"at most {MAX_CLASSES}" in message
    assert peak < 8 * 1024 * 1024


def test_csv_with_one_stray_label_is_refused_naming_the_line(tmp_path):
    rows = [f"{i % 3},{i},{i * 2}" for i in range(60)] + ["9999,1,2"]
    path = tmp_path / "stray.csv"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(
        nds.DatasetError, match=r"stray.csv line 61, column 0: label 9999 would make 10000 classes"
    ):
        nds.load(path)


def test_sparse_labels_are_refused_below_the_cap(tmp_path):
    # 0, 1, 2 and one 500: 501 classes of which 497 would never see a sample
    rows = [f"{i % 3},{i}" for i in range(30)] + ["500,7"]
    path = tmp_path / "sparse.csv"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(
        nds.DatasetError,
        match=r"sparse.csv line 31, column 0: label 500 makes 501 classes 0..500 but only 4",
    ):
        nds.load(path)


def test_labels_with_a_few_gaps_are_still_classes(tmp_path):
    path = tmp_path / "gaps.npz"
    y = np.array([0, 2, 4, 5, 0, 2, 4, 5] * 3)
    np.savez(path, x_train=np.ones((24, 2)), y_train=y)
    ds = nds.load(path)
    assert ds.num_classes == 6  # 2 of 6 empty: allowed


def test_sparse_rule_spans_train_and_test_of_an_npz(tmp_path):
    path = tmp_path / "split.npz"
    np.savez(
        path,
        x_train=np.ones((4, 2)),
        y_train=np.array([0, 1, 0, 1]),
        x_test=np.ones((2, 2)),
        y_test=np.array([1, 9]),
    )
    with pytest.raises(nds.DatasetError, match=r"split.npz: y_test\[1\]: label 9 makes 10"):
        nds.load(path)


def test_idx_folder_sparse_labels_are_refused(tmp_path):
    folder = idx_folder(tmp_path / "few", np.array([0, 1, 0, 1, 200] * 4, np.uint8), gz=True)
    with pytest.raises(nds.DatasetError, match=r"labels-idx1-ubyte.gz item 4: label 200 makes"):
        nds.load(folder, cache=False)


def test_class_names_are_capped_too(tmp_path):
    path = tmp_path / "names.npz"
    names = np.array([f"c{i}" for i in range(MAX_CLASSES + 1)])
    np.savez(path, x_train=np.ones((4, 2)), y_train=np.arange(4), class_names=names)
    with pytest.raises(nds.DatasetError, match="1001 class_names; at most 1000"):
        nds.load(path)


def test_a_dataset_cannot_be_built_with_too_many_classes():
    x, y = np.ones((2, 1), np.float32), np.zeros(2, np.int64)
    with pytest.raises(nds.DatasetError, match=r"num_classes must be an int in 1..1000"):
        nds.Dataset("big", x, y, x, y, (1,), "classification", 10**9, None)


# ---------------------------------------------------------------------- npz headers


def _npz_with_header(shape_text: str, payload: bytes, compression=zipfile.ZIP_STORED) -> bytes:
    header = f"{{'descr': '<f8', 'fortran_order': False, 'shape': {shape_text}, }}"
    header = header.ljust(118) + "\n"
    member = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + payload
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as z:
        z.writestr("x_train.npy", member)
        z.writestr("y_train.npy", member)
    return out.getvalue()


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_npz_shape_that_the_archive_cannot_hold_is_refused_before_allocating(tmp_path, compression):
    path = tmp_path / "lying.npz"
    path.write_bytes(_npz_with_header("(4000000000, 8)", bytes(64), compression))
    peak, error = peak_bytes(lambda: nds.load(path))
    assert isinstance(error, nds.DatasetError), repr(error)
    assert "lying.npz: array 'x_train'" in str(error) and "4000000000x8 float64" in str(error)
    assert peak < 8 * 1024 * 1024


def test_npz_member_whose_zip_size_field_lies_is_refused(tmp_path):
    """A stored member's uncompressed-size field must match its stored bytes."""
    path = tmp_path / "zipsize.npz"
    data = bytearray(_npz_with_header("(8,)", bytes(64)))
    central = data.rfind(b"PK\x01\x02")  # the last central directory entry (y_train.npy)
    data[central + 24 : central + 28] = struct.pack("<I", 0x7FFFFFFF)  # its file_size
    path.write_bytes(bytes(data))
    with pytest.raises(nds.DatasetError, match="zipsize.npz: array 'y_train': the archive says"):
        nds.load(path)


def test_npz_compressed_round_trip_and_fortran_order(tmp_path):
    path = tmp_path / "ok.npz"
    x = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(6, 2))
    np.savez_compressed(path, x_train=x, y_train=np.array([0, 1] * 3))
    ds = nds.load(path)
    rows = np.concatenate([ds.x_train, ds.x_test])
    assert np.array_equal(rows[np.argsort(rows[:, 0])], x)


# ---------------------------------------------------------------------- an IDX pair (issue 17)


def gzip_idx(path: Path, dims: tuple[int, ...], payload: bytes | None = None) -> Path:
    """A gzipped uint8 IDX file declaring `dims`, its payload zeros (a few kB compressed)."""
    header = bytes([0, 0, 8, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)
    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write(header)
        size = int(np.prod(dims))
        for start in range(0, size, 1 << 20):
            f.write(bytes(min(1 << 20, size - start)))
    return path


def test_an_idx_pair_whose_counts_differ_is_refused_from_the_headers(tmp_path):
    """The images file decompresses to 15.7 MB but the labels say 19,999: nothing is read."""
    folder = tmp_path / "digits"
    folder.mkdir()
    gzip_idx(folder / "t10k-images-idx3-ubyte.gz", (20_000, 28, 28))
    gzip_idx(folder / "t10k-labels-idx1-ubyte.gz", (19_999,))
    peak, error = peak_bytes(lambda: nds.load(folder, cache=False))
    assert isinstance(error, nds.DatasetError), repr(error)
    assert "has 20000 images but" in str(error) and "has 19999 labels" in str(error)
    assert peak < 2 * 1024 * 1024  # headers only, not the 15.7 MB of images


def test_idx_headers_beyond_the_free_memory_are_refused_before_reading(tmp_path, monkeypatch):
    from nnlib import _memory as memory_module

    folder = tmp_path / "digits"
    folder.mkdir()
    gzip_idx(folder / "t10k-images-idx3-ubyte.gz", (20_000, 28, 28))
    gzip_idx(folder / "t10k-labels-idx1-ubyte.gz", (20_000,))
    monkeypatch.setattr(memory_module, "available_memory", lambda: (10**6, "test"))
    peak, error = peak_bytes(lambda: nds.load(folder, cache=False))
    assert isinstance(error, nds.DatasetError), repr(error)
    assert str(error).startswith(f"{folder}: the IDX files would take 15.0 MiB, more than the")
    assert peak < 2 * 1024 * 1024


def test_npz_arrays_beyond_the_free_memory_are_refused_before_reading(tmp_path, monkeypatch):
    from nnlib import _memory as memory_module

    path = tmp_path / "big.npz"
    np.savez_compressed(path, x_train=np.zeros((20_000, 100)), y_train=np.zeros(20_000, int))
    monkeypatch.setattr(memory_module, "available_memory", lambda: (10**6, "test"))
    peak, error = peak_bytes(lambda: nds.load(path))
    assert isinstance(error, nds.DatasetError), repr(error)
    assert str(error).startswith(f"{path}: its arrays would take 15.4 MiB, more than the 976.6 KiB")
    assert peak < 2 * 1024 * 1024
