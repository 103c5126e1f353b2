"""IDX reader/writer, IDX folders (full, partial), checksums, the .npz cache and its atomicity."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

import nnlib.datasets as nds
from nnlib._atomic import atomic_write
from nnlib.datasets import idxfolder


@pytest.fixture(autouse=True)
def data_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("NNLIB_DATA_DIR", str(home))
    return home


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 6, 5), dtype=np.uint8)


def _labels(n: int) -> np.ndarray:
    return (np.arange(n) % 10).astype(np.uint8)


def write_split(folder: Path, split: str, n: int, gz: bool = True, seed: int = 0) -> None:
    ext = ".gz" if gz else ""
    nds.write_idx(folder / f"{split}-images-idx3-ubyte{ext}", _images(n, seed))
    nds.write_idx(folder / f"{split}-labels-idx1-ubyte{ext}", _labels(n))


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------- the reader


@pytest.mark.parametrize("name", ["a-idx3-ubyte", "a-idx3-ubyte.gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.float32, np.float64])
def test_idx_round_trip(tmp_path, name, dtype):
    a = (np.arange(2 * 3 * 4) - 5).reshape(2, 3, 4).astype(dtype)
    if dtype == np.uint8:
        a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = nds.write_idx(tmp_path / name, a)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    b = nds.read_idx(path)
    assert b.dtype == np.dtype(dtype) and b.dtype.isnative
    assert np.array_equal(a, b)


def test_idx_header_is_the_standard_one(tmp_path):
    path = nds.write_idx(tmp_path / "x-idx1-ubyte", np.array([7, 8, 9], np.uint8))
    assert path.read_bytes() == bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9])


def test_idx_truncated_names_the_file(tmp_path):
    path = nds.write_idx(tmp_path / "train-images-idx3-ubyte", _images(4))
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(nds.DatasetError, match=r"train-images-idx3-ubyte: truncated.*4x6x5"):
        nds.read_idx(path)


def test_idx_truncated_gzip_names_the_file(tmp_path):
    path = nds.write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", _images(50))
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(nds.DatasetError, match=r"t10k-images-idx3-ubyte\.gz: .*truncated"):
        nds.read_idx(path)


def test_idx_payload_shorter_than_header_inside_a_complete_gzip(tmp_path):
    raw = tmp_path / "raw-idx3-ubyte"
    nds.write_idx(raw, _images(3))
    gz = tmp_path / "short-idx3-ubyte.gz"
    gz.write_bytes(gzip.compress(raw.read_bytes()[:-1]))
    with pytest.raises(nds.DatasetError, match="short-idx3-ubyte.gz: truncated.*89 bytes follow"):
        nds.read_idx(gz)


def test_idx_wrong_magic(tmp_path):
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(b"\x00\x00\x07\x03" + bytes(20))
    with pytest.raises(nds.DatasetError, match="bad-idx3-ubyte: not an IDX file.*00000703"):
        nds.read_idx(path)
    path.write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(nds.DatasetError, match="bad magic number 504b0304"):
        nds.read_idx(path)


def test_idx_extra_bytes_and_missing_file(tmp_path):
    path = nds.write_idx(tmp_path / "x-idx1-ubyte", np.arange(5, dtype=np.uint8))
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(nds.DatasetError, match="extra bytes"):
        nds.read_idx(path)
    with pytest.raises(nds.DatasetError, match="nope-idx1-ubyte: no such IDX file"):
        nds.read_idx(tmp_path / "nope-idx1-ubyte")


# -------------------------------------------------------------------------- MNIST-family folders


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_from_a_full_folder(tmp_path, gz):
    folder = tmp_path / "data" / "mnist"
    write_split(folder, "train", 30, gz)
    write_split(folder, "t10k", 10, gz, seed=1)
    sums = {p.name: md5(p) for p in folder.iterdir()}
    ds = nds.load("mnist", data_dir=tmp_path / "data", checksums=sums)
    assert ds.x_train.shape == (30, 6, 5, 1) and ds.x_test.shape == (10, 6, 5, 1)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64
    assert np.array_equal(ds.x_test[..., 0], _images(10, seed=1))
    assert ds.class_names == [str(d) for d in range(10)] and ds.num_classes == 10
    info = {i.name: i for i in nds.available(tmp_path / "data")}
    assert info["mnist"].on_disk and not info["kmnist"].on_disk


def test_published_checksums_reject_other_files(tmp_path):
    folder = tmp_path / "mnist"
    write_split(folder, "train", 10)
    write_split(folder, "t10k", 10)
    with pytest.raises(nds.DatasetError, match=r"train-images-idx3-ubyte\.gz: md5 .* published"):
        nds.load("mnist", data_dir=tmp_path)
    # an uncompressed copy has no published checksum: only its structure is checked
    for p in folder.iterdir():
        p.write_bytes(gzip.decompress(p.read_bytes()))
        p.rename(p.with_suffix(""))
    assert nds.load("mnist", data_dir=tmp_path).train_size == 10


def test_partial_folder_splits_the_test_files_without_network(tmp_path, monkeypatch):
    monkeypatch.setenv("NNLIB_MNIST_MIRRORS", "http://127.0.0.1:9/")  # must not be contacted
    shared = tmp_path / "shared"
    write_split(shared, "t10k", 50)  # files directly in data_dir, as in a shared folder
    sums = {p.name: md5(p) for p in shared.iterdir()}
    ds = nds.load("mnist", data_dir=shared, checksums=sums)
    assert len(ds.notes) == 1 and "first 40 as train and the last 10" in ds.notes[0]
    assert (ds.train_size, ds.test_size) == (40, 10)
    assert np.array_equal(ds.x_train[..., 0], _images(50)[:40])
    assert np.array_equal(ds.y_test, _labels(50)[40:])
    assert "partial" in ds.description
    assert sorted(p.name for p in shared.iterdir()) == sorted(sums)  # nothing written there
    # available() trusts files in <data_dir>/mnist/ but checks loose ones against published md5s
    assert not {i.name: i for i in nds.available(shared)}["mnist"].on_disk
    write_split(tmp_path / "d" / "mnist", "t10k", 5)
    info = {i.name: i for i in nds.available(tmp_path / "d")}["mnist"]
    assert info.on_disk and (info.train_size, info.test_size) == (8000, 2000)


def test_cache_is_written_outside_the_source_and_used(tmp_path, data_home, monkeypatch):
    src = tmp_path / "src"
    write_split(src, "train", 20)
    write_split(src, "t10k", 10)
    first = nds.load(src)
    caches = list((data_home / "cache").glob("src-*.npz"))
    assert len(caches) == 1 and not list((data_home / "cache").glob("*.tmp"))
    assert sorted(p.name for p in src.iterdir()) == sorted(
        f"{s}-{k}-idx{d}-ubyte.gz"
        for s in ("train", "t10k")
        for k, d in (("images", 3), ("labels", 1))
    )

    def no_reading(path):
        raise AssertionError(f"read {path} although the cache is fresh")

    monkeypatch.setattr(idxfolder, "IdxFile", no_reading)
    second = nds.load(src)
    assert np.array_equal(first.x_train, second.x_train)
    assert np.array_equal(first.y_test, second.y_test)


def test_stale_or_damaged_cache_is_rebuilt(tmp_path, data_home):
    src = tmp_path / "digits"
    write_split(src, "train", 20)
    write_split(src, "t10k", 10)
    nds.load(src)
    (cache,) = (data_home / "cache").glob("digits-*.npz")
    whole = cache.read_bytes()
    for damaged in (b"garbage", whole[: len(whole) // 2]):
        cache.write_bytes(damaged)
        assert nds.load(src).train_size == 20
        assert cache.read_bytes() == whole  # rewritten
    write_split(src, "train", 25, seed=5)  # new source files: the fingerprint changes
    assert nds.load(src).train_size == 25


def test_unwritable_cache_only_adds_a_note(tmp_path, monkeypatch):
    src = tmp_path / "digits"
    write_split(src, "t10k", 10)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("NNLIB_DATA_DIR", str(blocker))
    ds = nds.load(src)
    assert ds.train_size == 8
    assert any("could not write the dataset cache" in note for note in ds.notes)


class Crash(BaseException):
    """Stands for a kill or power loss in the middle of writing."""


def test_crash_while_writing_the_cache_leaves_no_partial_file(tmp_path, data_home, monkeypatch):
    src = tmp_path / "digits"
    write_split(src, "train", 20)
    write_split(src, "t10k", 10)
    real_savez = np.savez

    def crashing_savez(file, **arrays):
        file.write(b"PK\x03\x04 half an archive")
        raise Crash

    monkeypatch.setattr(np, "savez", crashing_savez)
    with pytest.raises(Crash):
        nds.load(src)
    assert list((data_home / "cache").iterdir()) == []
    monkeypatch.setattr(np, "savez", real_savez)
    assert nds.load(src).train_size == 20
    assert len(list((data_home / "cache").glob("digits-*.npz"))) == 1


def test_disk_full_while_writing_the_cache_is_not_fatal(tmp_path, data_home, monkeypatch):
    src = tmp_path / "digits"
    write_split(src, "train", 20)
    write_split(src, "t10k", 10)

    def full_disk(file, **arrays):
        file.write(b"PK")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    ds = nds.load(src)
    assert ds.test_size == 10 and "No space left" in " ".join(ds.notes)
    assert list((data_home / "cache").iterdir()) == []


def test_idx_folder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(nds.DatasetError, match="no IDX files found.*train-images-idx3-ubyte"):
        nds.load(tmp_path / "empty")
    half = tmp_path / "half"
    nds.write_idx(half / "train-images-idx3-ubyte.gz", _images(5))
    with pytest.raises(nds.DatasetError, match="no complete pair"):
        nds.load(half)
    nds.write_idx(half / "train-labels-idx1-ubyte.gz", _labels(4))
    with pytest.raises(nds.DatasetError, match="has 5 images but .*train-labels.* has 4 labels"):
        nds.load(half)


def test_atomic_write_replaces_whole_files(tmp_path):
    target = tmp_path / "f.bin"
    atomic_write(target, lambda f: f.write(b"old"))

    def broken(f):
        f.write(b"new but incomplete")
        raise OSError("boom")

    with pytest.raises(OSError, match="boom"):
        atomic_write(target, broken)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["f.bin"]
