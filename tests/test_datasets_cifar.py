"""CIFAR-10 from its binary archive: a tiny archive in the official format (a few records per
batch) served by a local http.server stands in for the internet; the reader is also fuzzed."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile

import numpy as np
import pytest
from helpers import (
    SETTINGS,
    SIZE,
    Server,
    check_read,
    closed_port_url,
    leftovers,
    mutated,
    pilot_test,
    until,
)
from hypothesis import given
from hypothesis import strategies as st

import nnlib.datasets as nds
from nnlib.cli import main as nnlib_main
from nnlib.config import ExperimentConfig
from nnlib.datasets import cifar
from nnlib.datasets import download as download_module
from nntui.app import NNTui
from nntui.architectures import PresetRefused, check_spec, preset
from nntui.screens.dashboard import DashboardScreen

ARCHIVE = "cifar-10-binary.tar.gz"
BATCHES = [*(f"data_batch_{i}.bin" for i in range(1, 6)), "test_batch.bin"]
PER_BATCH = 3  # records in each synthetic batch file


@pytest.fixture(autouse=True)
def data_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("NNLIB_DATA_DIR", str(home))
    monkeypatch.delenv("NNLIB_CIFAR10_MIRRORS", raising=False)
    monkeypatch.setattr(download_module, "RETRY_DELAY", 0.0)
    return home


def record(label: int, image: np.ndarray) -> bytes:
    """One record: the label byte, then the red, green and blue planes, each row by row."""
    return bytes([label]) + image.transpose(2, 0, 1).tobytes()


def make_batches(seed: int = 0) -> tuple[dict[str, bytes], np.ndarray, np.ndarray]:
    """The six batch files with PER_BATCH random records each; (files, images, labels) with
    images and labels in file order (train batches 1..5, then test)."""
    rng = np.random.default_rng(seed)
    n = PER_BATCH * len(BATCHES)
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(n) % 10
    files = {
        name: b"".join(
            record(int(labels[i]), images[i]) for i in range(b * PER_BATCH, (b + 1) * PER_BATCH)
        )
        for b, name in enumerate(BATCHES)
    }
    return files, images, labels


def member(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = ""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return info, io.BytesIO(data) if kind == tarfile.REGTYPE else None


def official_members(files: dict[str, bytes]) -> list:
    """The members of the official archive, in its layout."""
    return [
        member("cifar-10-batches-bin", kind=tarfile.DIRTYPE),
        member("cifar-10-batches-bin/batches.meta.txt", b"airplane\nautomobile\n...\n"),
        *(member(f"cifar-10-batches-bin/{name}", body) for name, body in files.items()),
        member("cifar-10-batches-bin/readme.html", b"<html></html>"),
    ]


def make_archive(members: list) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, body in members:
            tar.addfile(info, body)
    return buf.getvalue()


@pytest.fixture(scope="module")
def synthetic():
    files, images, labels = make_batches()
    return make_archive(official_members(files)), files, images, labels


@pytest.fixture
def server(synthetic):
    s = Server({ARCHIVE: synthetic[0]})
    yield s
    s.close()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def put_archive(tmp_path, data: bytes):
    """The archive in <data>/cifar10/; returns the data folder."""
    folder = tmp_path / "data" / "cifar10"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ARCHIVE).write_bytes(data)
    return tmp_path / "data"


def load_archive(tmp_path, data: bytes, **options) -> nds.Dataset:
    """Load an archive already on disk; its own md5 stands in for the published one."""
    data_dir = put_archive(tmp_path, data)
    return nds.load(
        "cifar10", data_dir=data_dir, download=False, checksums={ARCHIVE: md5(data)}, **options
    )


def test_the_published_checksum_is_the_one_on_the_dataset_page():
    # https://www.cs.toronto.edu/~kriz/cifar.html lists this md5 for cifar-10-binary.tar.gz
    assert cifar.CIFAR10.md5 == {ARCHIVE: "c32a1d4ab5d03f1284b67883e8d87530"}


def test_pixel_order_matches_a_record_built_by_hand(tmp_path):
    # one record written byte by byte: label, 1024 red, 1024 green, 1024 blue, each row-major
    red = bytes((3 * r + c) % 256 for r in range(32) for c in range(32))
    green = bytes((r * c) % 256 for r in range(32) for c in range(32))
    blue = bytes(200 + (r == c) for r in range(32) for c in range(32))
    files = {name: bytes([7]) + red + green + blue for name in BATCHES}
    ds = load_archive(tmp_path, make_archive(official_members(files)), cache=False)
    assert ds.x_train.shape == (5, 32, 32, 3) and ds.x_train.dtype == np.uint8
    assert ds.x_test.shape == (1, 32, 32, 3) and ds.x_train.flags.c_contiguous
    assert ds.y_train.tolist() == [7] * 5 and ds.y_test.tolist() == [7]
    image = ds.x_test[0]
    assert tuple(image[0, 1]) == (1, 0, 200)  # row 0, column 1
    assert tuple(image[2, 5]) == (11, 10, 200)  # row 2, column 5
    assert tuple(image[31, 31]) == ((93 + 31) % 256, (31 * 31) % 256, 201)
    assert ds.class_names[7] == "horse" and ds.input_shape == (32, 32, 3)


def test_download_then_cache(tmp_path, data_home, server, synthetic, monkeypatch, capsys):
    archive, _, images, labels = synthetic
    data = tmp_path / "data"
    ds = nds.load("cifar10", data_dir=data, mirrors=[server.url], checksums={ARCHIVE: md5(archive)})
    assert server.requests == [f"/mnist/{ARCHIVE}"]
    assert "downloading" in capsys.readouterr().err
    assert (ds.train_size, ds.test_size, ds.num_classes) == (15, 3, 10)
    assert np.array_equal(ds.x_train, images[:15]) and np.array_equal(ds.x_test, images[15:])
    assert np.array_equal(ds.y_train, labels[:15]) and ds.y_train.dtype == np.int64
    assert ds.class_names == [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ]
    assert leftovers(data) == ["cifar10", f"cifar10/{ARCHIVE}"]  # the archive is not extracted
    assert len(list((data_home / "cache").glob("cifar10-*.npz"))) == 1
    info = {i.name: i for i in nds.available(data)}["cifar10"]
    assert info.on_disk and info.input_shape == (32, 32, 3)

    def no_reading(files):
        raise AssertionError("the archive was read again instead of the cache")

    server.requests.clear()
    monkeypatch.setattr(cifar, "_read", no_reading)
    again = nds.load("cifar10", data_dir=data, checksums={ARCHIVE: md5(archive)})
    assert server.requests == [] and np.array_equal(again.x_train, ds.x_train)


def test_the_published_checksum_refuses_another_file(tmp_path, data_home, server):
    data = tmp_path / "data"
    with pytest.raises(nds.DatasetError, match=r"checksum mismatch.*expected c32a1d4ab5") as err:
        nds.load("cifar10", data_dir=data, mirrors=[server.url])
    assert "download failed" in str(err.value) and "no network" not in str(err.value)
    assert leftovers(data) == [] and leftovers(data_home) == []


def test_an_archive_on_disk_is_checked_against_the_published_checksum(tmp_path, synthetic):
    data_dir = put_archive(tmp_path, synthetic[0])
    with pytest.raises(nds.DatasetError, match=r"cifar-10-binary.tar.gz: md5 .* published cifar10"):
        nds.load("cifar10", data_dir=data_dir, download=False)


def test_a_truncated_download_is_retried_then_nothing_is_kept(tmp_path, data_home, server):
    server.lie_about_length = True
    data = tmp_path / "data"
    with pytest.raises(nds.DatasetError, match="download failed.*truncated"):
        nds.load("cifar10", data_dir=data, mirrors=[server.url], retries=1)
    assert server.requests == [f"/mnist/{ARCHIVE}"] * 2
    assert leftovers(data) == [] and leftovers(data_home) == []


def test_offline_error_names_the_files_and_the_folder(tmp_path):
    data = tmp_path / "data"
    with pytest.raises(nds.DatasetError) as err:
        nds.load("cifar10", data_dir=data, mirrors=[closed_port_url()], timeout=2)
    message = str(err.value)
    assert "cifar10: no network" in message and "connection refused" in message
    assert f"put {ARCHIVE} in {data / 'cifar10'}" in message
    assert "cifar-10-batches-bin" in message
    for name in BATCHES:
        assert name in message
    assert "https://www.cs.toronto.edu/~kriz/" in message
    assert leftovers(data) == []


def test_download_disabled_names_the_files_and_the_folder(tmp_path):
    with pytest.raises(nds.DatasetError, match=r"files not found in .*cifar10.*test_batch.bin"):
        nds.load("cifar10", data_dir=tmp_path, download=False)


def test_mirrors_from_the_environment(tmp_path, server, synthetic, monkeypatch):
    monkeypatch.setenv("NNLIB_CIFAR10_MIRRORS", f"{closed_port_url()},{server.url}")
    ds = nds.load("cifar10", data_dir=tmp_path / "data", checksums={ARCHIVE: md5(synthetic[0])})
    assert ds.train_size == 15 and server.requests == [f"/mnist/{ARCHIVE}"]


@pytest.mark.parametrize("cut", [0.3, 0.7, 0.95])
def test_a_truncated_archive_on_disk_is_refused(tmp_path, synthetic, cut):
    archive = synthetic[0]
    with pytest.raises(nds.DatasetError, match=r"not a readable .tar.gz|the archive lacks"):
        load_archive(tmp_path, archive[: int(len(archive) * cut)])


def test_a_truncated_tar_inside_a_whole_gzip_is_refused(tmp_path, synthetic):
    tar = gzip.decompress(synthetic[0])
    with pytest.raises(nds.DatasetError, match=r"not a readable .tar.gz|the archive lacks"):
        load_archive(tmp_path, gzip.compress(tar[: len(tar) // 2]))


def test_a_missing_batch_is_named(tmp_path, synthetic):
    files = dict(synthetic[1])
    del files["test_batch.bin"]
    with pytest.raises(nds.DatasetError, match="lacks cifar-10-batches-bin/test_batch.bin"):
        load_archive(tmp_path, make_archive(official_members(files)))


def test_a_record_of_the_wrong_size_is_refused(tmp_path, synthetic):
    files = {**synthetic[1], "data_batch_3.bin": synthetic[1]["data_batch_3.bin"] + b"\0" * 5}
    with pytest.raises(nds.DatasetError) as err:
        load_archive(tmp_path, make_archive(official_members(files)))
    message = str(err.value)
    assert "'cifar-10-batches-bin/data_batch_3.bin'" in message
    assert "9,224 bytes is not a whole number of 3,073-byte records" in message


def test_a_label_outside_the_ten_classes_is_refused(tmp_path, synthetic):
    batch = bytearray(synthetic[1]["data_batch_2.bin"])
    batch[3073] = 12  # the label byte of record 1
    files = {**synthetic[1], "data_batch_2.bin": bytes(batch)}
    with pytest.raises(nds.DatasetError, match=r"labels go up to 12 .*data_batch_2.bin.* record 1"):
        load_archive(tmp_path, make_archive(official_members(files)))


UNSAFE = {  # member() arguments
    "parent folder": ("../x", b"escape"),
    "absolute path": ("/tmp/cifar-x", b"escape"),
    "other name": ("cifar-10-batches-bin/data_batch_6.bin", b"\0" * 3073),
    "symlink batch": ("cifar-10-batches-bin/test_batch.bin", b"", tarfile.SYMTYPE, "/etc/passwd"),
    "symlink extra": ("cifar-10-batches-bin/readme.html", b"", tarfile.SYMTYPE, "../x"),
    "hard link": (
        "cifar-10-batches-bin/batches.meta.txt",
        b"",
        tarfile.LNKTYPE,
        "cifar-10-batches-bin/readme.html",
    ),
    "fifo": ("cifar-10-batches-bin/data_batch_1.bin", b"", tarfile.FIFOTYPE),
}


@pytest.mark.parametrize("bad", UNSAFE, ids=list(UNSAFE))
def test_unexpected_or_unsafe_members_are_refused(tmp_path, synthetic, bad):
    name = UNSAFE[bad][0]
    members = official_members(synthetic[1])
    members.insert(1, member(*UNSAFE[bad]))  # before the batches: refused before any is read
    with pytest.raises(nds.DatasetError) as err:
        load_archive(tmp_path, make_archive(members))
    message = str(err.value)
    assert repr(name) in message
    assert "is not part of CIFAR-10" in message or "expected a regular file" in message
    assert not (tmp_path / "x").exists()
    assert leftovers(tmp_path / "data") == ["cifar10", f"cifar10/{ARCHIVE}"]


def test_a_batch_that_appears_twice_is_refused(tmp_path, synthetic):
    members = official_members(synthetic[1])
    members.append(member("cifar-10-batches-bin/data_batch_1.bin", synthetic[1]["test_batch.bin"]))
    with pytest.raises(nds.DatasetError, match="data_batch_1.bin' appears twice"):
        load_archive(tmp_path, make_archive(members))


def extract(folder, files: dict[str, bytes]) -> None:
    folder.mkdir(parents=True)
    for name, body in files.items():
        (folder / name).write_bytes(body)


def test_an_extracted_folder_in_the_data_folder_is_read(tmp_path, synthetic):
    _, files, images, labels = synthetic
    data = tmp_path / "data"
    extract(data / "cifar-10-batches-bin", files)
    assert {i.name: i for i in nds.available(data)}["cifar10"].on_disk
    ds = nds.load("cifar10", data_dir=data, download=False)
    assert np.array_equal(ds.x_train, images[:15]) and np.array_equal(ds.x_test, images[15:])
    assert np.array_equal(ds.y_test, labels[15:])
    assert "cifar-10-batches-bin" in ds.description


def test_an_extracted_folder_wins_over_the_archive(tmp_path, synthetic):
    data_dir = put_archive(tmp_path, b"not read")
    extract(data_dir / "cifar10" / "cifar-10-batches-bin", synthetic[1])
    assert nds.load("cifar10", data_dir=data_dir, download=False).train_size == 15


def test_an_extracted_batch_of_the_wrong_size_is_named(tmp_path, synthetic):
    folder = tmp_path / "data" / "cifar-10-batches-bin"
    extract(folder, {**synthetic[1], "test_batch.bin": synthetic[1]["test_batch.bin"][:-1]})
    with pytest.raises(nds.DatasetError, match=r"test_batch.bin: 9,218 bytes is not a whole"):
        nds.load("cifar10", data_dir=tmp_path / "data", download=False)


def test_an_oversized_extracted_batch_is_refused_before_it_is_read(tmp_path, synthetic):
    folder = tmp_path / "data" / "cifar-10-batches-bin"
    extract(folder, synthetic[1])
    with open(folder / "data_batch_4.bin", "r+b") as f:
        f.truncate(3073 * 10_001)  # sparse: claims 10,001 records without writing them
    with pytest.raises(nds.DatasetError, match=r"data_batch_4.bin: 10,001 records, more than"):
        nds.load("cifar10", data_dir=tmp_path / "data", download=False)


def test_nnlib_datasets_lists_cifar10_as_a_download(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NNLIB_DATA_DIR", str(tmp_path / "empty"))
    assert nnlib_main(["datasets"]) == 0
    (row,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("cifar10")]
    assert row.split()[1:7] == ["classification", "32x32x3", "10", "50000", "10000", "no"]


VGG = (
    "conv(32,3,pad=same) relu conv(32,3,pad=same) relu maxpool(2) conv(64,3,pad=same) relu "
    "maxpool(2) dense(128) relu dense(10)"
)


def test_the_vgg_preset_fits_cifar10_and_other_images_and_refuses_points(tmp_path):
    infos = {info.name: info for info in nds.available(tmp_path)}
    vgg = preset("vgg")
    assert vgg.spec_for(infos["cifar10"]) == VGG
    result = check_spec(VGG, infos["cifar10"])
    assert result.error is None and result.summary.total_params == 554_346
    assert check_spec(vgg.spec_for(infos["glyphs"]), infos["glyphs"]).error is None
    with pytest.raises(PresetRefused, match="VGG needs images.*spirals has 2 features"):
        vgg.spec_for(infos["spirals"])


@pilot_test
async def test_picking_cifar10_offline_shows_the_error_in_the_app(tmp_path, monkeypatch):
    # the error names the data folder: brackets in it are text, not Textual markup
    monkeypatch.setenv("NNLIB_CIFAR10_MIRRORS", closed_port_url())
    data_dir = tmp_path / "d[/x]ata [bold]"
    config = ExperimentConfig(
        dataset="cifar10", data_dir=str(data_dir), run_dir=str(tmp_path / "r")
    )
    app = NNTui(config)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.screen.query("#dataset-list"))
        await pilot.press("enter")  # Enter on the highlighted dataset: train with it
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen))
        dashboard = app.screen
        await until(pilot, lambda: dashboard.state.end is not None)
        assert dashboard.state.end.reason == "error"
        assert "no network" in dashboard.state.end.error
        assert f"put cifar-10-binary.tar.gz in {data_dir / 'cifar10'}" in dashboard.state.end.error
        await until(pilot, lambda: len(app._notifications) == 2)
        (started, failed) = app._notifications
        assert "could not start" in started.message and failed.title == "Training failed"
        for note in (started, failed):
            assert str(data_dir / "cifar10") in note.message and not note.markup
        assert app.is_running and app.screen is dashboard


FUZZ_FILES, _, _ = make_batches(1)
FUZZ_TAR = gzip.decompress(make_archive(official_members(FUZZ_FILES)))


@st.composite
def damaged_archives(draw) -> bytes:
    """Mutated tar bytes gzipped again (to reach the tar headers), or mutated .tar.gz bytes."""
    if draw(st.booleans()):
        return gzip.compress(draw(mutated([FUZZ_TAR])), mtime=0)
    return draw(mutated([gzip.compress(FUZZ_TAR, mtime=0)]))


def test_the_archive_reader_survives_damaged_archives(tmp_path):
    data_dir = put_archive(tmp_path, b"")
    path = data_dir / "cifar10" / ARCHIVE

    @SETTINGS
    @given(data=st.one_of(damaged_archives(), st.binary(max_size=300)))
    def run(data: bytes) -> None:
        path.write_bytes(data)
        sums = {ARCHIVE: md5(data)}
        check_read(
            lambda: nds.load(
                "cifar10", data_dir=data_dir, download=False, checksums=sums, cache=False
            ),
            data,
        )

    run()


def test_the_batch_file_reader_survives_damaged_files(tmp_path):
    folder = tmp_path / "data" / "cifar-10-batches-bin"
    extract(folder, FUZZ_FILES)

    @SETTINGS
    @given(data=mutated([FUZZ_FILES["test_batch.bin"]]))
    def run(data: bytes) -> None:
        (folder / "test_batch.bin").write_bytes(data)
        check_read(
            lambda: nds.load("cifar10", data_dir=tmp_path / "data", download=False, cache=False),
            data,
        )

    run()
