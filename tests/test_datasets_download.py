"""Downloading the MNIST family from mirrors: a local http.server stands in for the internet."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from helpers import Server, closed_port_url, leftovers

import nnlib.datasets as nds
from nnlib.datasets import download as download_module
from nnlib.datasets import idxfolder

FILES = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
]


@pytest.fixture(autouse=True)
def data_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("NNLIB_DATA_DIR", str(home))
    for var in ("NNLIB_MNIST_MIRRORS", "NNLIB_FASHION_MNIST_MIRRORS", "NNLIB_KMNIST_MIRRORS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(download_module, "RETRY_DELAY", 0.0)
    return home


@pytest.fixture(scope="module")
def payloads(tmp_path_factory) -> dict[str, bytes]:
    """Tiny gzipped IDX files with the standard names: 30 train and 10 test images."""
    folder = tmp_path_factory.mktemp("payloads")
    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("t10k", 10)):
        nds.write_idx(
            folder / f"{split}-images-idx3-ubyte.gz",
            rng.integers(0, 256, (n, 7, 7), dtype=np.uint8),
        )
        nds.write_idx(
            folder / f"{split}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8)
        )
    return {name: (folder / name).read_bytes() for name in FILES}


@pytest.fixture
def server(payloads):
    s = Server(payloads)
    yield s
    s.close()


@pytest.fixture
def checksums(payloads) -> dict[str, str]:
    return {name: hashlib.md5(body).hexdigest() for name, body in payloads.items()}


def test_download_then_cache(tmp_path, data_home, server, checksums, capsys):
    data = tmp_path / "data"
    ds = nds.load("mnist", data_dir=data, mirrors=[server.url], checksums=checksums)
    assert (ds.train_size, ds.test_size) == (30, 10) and ds.input_shape == (7, 7, 1)
    assert sorted(server.requests) == sorted(f"/mnist/{f}" for f in FILES)
    assert leftovers(data) == ["mnist", *sorted(f"mnist/{f}" for f in FILES)]
    assert len(list((data_home / "cache").glob("mnist-*.npz"))) == 1
    assert "downloading" in capsys.readouterr().err  # progress goes to stderr
    server.requests.clear()
    again = nds.load("mnist", data_dir=data, mirrors=[server.url], checksums=checksums)
    assert server.requests == []
    assert np.array_equal(again.x_train, ds.x_train)


def test_mirrors_from_the_environment_and_fallback(tmp_path, server, checksums, monkeypatch):
    monkeypatch.setenv("NNLIB_MNIST_MIRRORS", f"{closed_port_url()}, {server.url}")
    ds = nds.load("mnist", data_dir=tmp_path / "data", checksums=checksums)
    assert ds.train_size == 30
    assert len(server.requests) == 4  # the dead first mirror was skipped, not retried forever


def test_download_files_only_fetches_what_is_missing(tmp_path, server, checksums, payloads):
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    (folder / FILES[0]).write_bytes(payloads[FILES[0]])
    assert (
        nds.download_files("mnist", tmp_path / "data", mirrors=[server.url], checksums=checksums)
        == folder
    )
    assert sorted(server.requests) == sorted(f"/mnist/{f}" for f in FILES[1:])


def test_offline_error_names_files_and_folder(tmp_path):
    data = tmp_path / "data"
    with pytest.raises(nds.DatasetError) as err:
        nds.load("fashion-mnist", data_dir=data, mirrors=[closed_port_url()], timeout=2)
    message = str(err.value)
    assert "no network" in message and "connection refused" in message
    assert f"put these files in {data / 'fashion-mnist'}" in message
    for name in FILES:
        assert name in message
    assert leftovers(data) == []


def test_download_disabled_names_files_and_folder(tmp_path):
    with pytest.raises(nds.DatasetError, match=r"files not found in .*kmnist.*t10k-labels"):
        nds.load("kmnist", data_dir=tmp_path, download=False)


def test_negative_retries_are_refused_by_name(tmp_path):
    """retries=-1 is a clear error before any request (it raised UnboundLocalError)."""
    data = tmp_path / "data"
    with pytest.raises(nds.DatasetError, match="retries must be an integer >= 0, got -1"):
        nds.load("mnist", data_dir=data, mirrors=[closed_port_url()], retries=-1)
    assert leftovers(data) == []


def test_bad_checksum_is_rejected_and_nothing_is_kept(tmp_path, data_home, server, checksums):
    data = tmp_path / "data"
    wrong = {**checksums, FILES[2]: "0" * 32}
    with pytest.raises(nds.DatasetError, match=r"t10k-images.*checksum mismatch.*put these files"):
        nds.load("mnist", data_dir=data, mirrors=[server.url], checksums=wrong)
    assert leftovers(data) == []
    assert leftovers(data_home) == []


def test_published_checksums_apply_to_any_mirror(tmp_path, server):
    # a mirror serving files that are not the real MNIST ones is refused
    with pytest.raises(nds.DatasetError, match="checksum mismatch"):
        nds.load("mnist", data_dir=tmp_path / "data", mirrors=[server.url])
    assert leftovers(tmp_path / "data") == []


def test_truncated_download_is_retried_then_rejected(tmp_path, data_home, server, checksums):
    server.lie_about_length = True
    data = tmp_path / "data"
    with pytest.raises(nds.DatasetError, match="download failed"):
        nds.load("mnist", data_dir=data, mirrors=[server.url], checksums=checksums, retries=1)
    assert server.requests == ["/mnist/" + FILES[0]] * 2  # one retry, then give up
    assert leftovers(data) == [] and leftovers(data_home) == []


def test_corrupt_download_with_matching_checksum_fails_on_read(tmp_path, server, checksums):
    # a private mirror whose registered checksum covers a damaged file: the IDX reader catches it
    damaged = server.files[f"/mnist/{FILES[3]}"][:-9]
    server.files[f"/mnist/{FILES[3]}"] = damaged
    sums = {**checksums, FILES[3]: hashlib.md5(damaged).hexdigest()}
    with pytest.raises(nds.DatasetError, match="t10k-labels-idx1-ubyte.gz: corrupt or truncated"):
        nds.load(
            "mnist", data_dir=tmp_path / "data", mirrors=[server.url], checksums=sums, cache=False
        )


def test_http_404_moves_on_to_the_next_mirror(tmp_path, server, checksums):
    ds = nds.load(
        "mnist",
        data_dir=tmp_path / "data",
        mirrors=[server.url + "gone/", server.url],
        checksums=checksums,
    )
    assert ds.train_size == 30
    assert server.requests[:2] == [f"/mnist/gone/{FILES[0]}", f"/mnist/{FILES[0]}"]


def test_md5_memo_is_keyed_by_mtime(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"one")
    first = idxfolder.file_md5(path)
    path.write_bytes(b"two!")
    assert idxfolder.file_md5(path) != first


def test_unwritable_destination_is_not_reported_as_offline(tmp_path, server, checksums):
    blocker = tmp_path / "data"
    blocker.write_text("a file where the data folder should be")
    with pytest.raises(nds.DatasetError, match="cannot write .*train-images") as err:
        nds.load("mnist", data_dir=blocker, mirrors=[server.url], checksums=checksums)
    assert "network" not in str(err.value)


def test_progress_on_a_terminal_is_a_rich_bar_and_one_closing_line(monkeypatch, capsys):
    """On a terminal the progress is rich's bar (no 'downloading' line), and a finished
    download still says what it got."""
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    progress = download_module._Progress("http://127.0.0.1/x.gz", 100)
    assert progress._bar is not None
    progress.advance(100)
    progress.stop()
    progress.report()
    err = capsys.readouterr().err
    assert "nnlib: downloading" not in err
    assert "nnlib: got http://127.0.0.1/x.gz (100 B in" in err


def test_progress_without_rich_is_two_plain_lines(monkeypatch, capsys):
    """Where rich cannot be imported, a terminal gets the plain start and end lines."""
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    monkeypatch.setitem(sys.modules, "rich.progress", None)
    progress = download_module._Progress("http://127.0.0.1/x.gz", 2000)
    assert progress._bar is None
    progress.advance(2000)
    progress.stop()
    progress.report()
    err = capsys.readouterr().err
    assert "nnlib: downloading http://127.0.0.1/x.gz (2.0 kB)" in err
    assert "nnlib: got http://127.0.0.1/x.gz (2.0 kB in" in err
