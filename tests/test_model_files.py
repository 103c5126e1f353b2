"""Model files are checked from the archive's member list and .npy headers before anything
is decompressed (issue 8, item 16): only float32/float64 weights of exactly the shapes the
architecture needs, no NaN or inf, no extra members, and the stored architecture takes the
same size check as `build`. Every refusal is a ValueError naming the file and the array."""

from __future__ import annotations

import io
import json
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

import nnlib as nl
from nnlib import model as model_module
from nnlib.cli import main

MiB = 2**20


@pytest.fixture
def saved(tmp_path) -> Path:
    return nl.build("6-5-3", (6,)).save(tmp_path / "model.npz")


def _npy(value: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, value, allow_pickle=True)
    return buffer.getvalue()


def _rewrite(path: Path, members: dict[str, bytes | None]) -> None:
    """Replace (bytes), add or drop (None) members of the archive, keeping the rest."""
    with zipfile.ZipFile(path) as archive:
        kept = {name: archive.read(name) for name in archive.namelist()}
    kept.update(members)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in kept.items():
            if data is not None:
                archive.writestr(name, data)


def _refused(path: Path, *fragments: str) -> str:
    with pytest.raises(ValueError) as error:
        nl.load(path)
    message = str(error.value)
    assert message.startswith(f"{path}: "), message
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.mark.parametrize(
    "value, stored_as",
    [
        (np.ones((6, 5), np.int8), "int8"),
        (np.ones((6, 5), np.int64), "int64"),
        (np.full((6, 5), "0.5"), "<U3"),
        (np.ones((6, 5), np.complex64), "complex64"),
        (np.ones((6, 5), np.float16), "float16"),
        (np.array([[object()] * 5] * 6, dtype=object), "object"),
    ],
)
def test_weights_that_are_not_float32_or_float64_are_refused(saved, value, stored_as):
    _rewrite(saved, {"param/dense_1.W.npy": _npy(value)})
    _refused(saved, f"dense_1.W is stored as {stored_as}, expected float32 or float64")


def test_an_int8_model_is_an_evaluate_error_not_ten_percent(saved, capsys):
    _rewrite(saved, {"param/dense_1.W.npy": _npy(np.ones((6, 5), np.int8))})
    spirals = nl.build("2-5-3", (2,)).save(saved.parent / "spirals.npz")
    _rewrite(spirals, {"param/dense_2.W.npy": _npy(np.ones((5, 3), np.int8))})
    code = main(["evaluate", str(spirals), "--dataset", "spirals"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "dense_2.W is stored as int8, expected float32 or float64" in err


def test_float64_and_big_endian_weights_load_as_the_model_dtype(saved):
    weights = np.arange(30, dtype=">f4").reshape(6, 5) / 7
    bias = np.arange(5, dtype=np.float64)
    _rewrite(
        saved,
        {"param/dense_1.W.npy": _npy(weights), "param/dense_1.b.npy": _npy(bias)},
    )
    model = nl.load(saved)
    loaded = model.named_parameters()
    assert loaded["dense_1.W"].value.dtype == np.float32
    np.testing.assert_array_equal(loaded["dense_1.W"].value, weights.astype(np.float32))
    np.testing.assert_array_equal(loaded["dense_1.b"].value, bias.astype(np.float32))
    fortran = np.asfortranarray(weights.astype(np.float32))
    _rewrite(saved, {"param/dense_1.W.npy": _npy(fortran)})
    np.testing.assert_array_equal(nl.load(saved)["dense_1"].params["W"].value, fortran)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_are_refused(saved, bad):
    weights = np.ones((6, 5), np.float32)
    weights[2, 3] = bad
    weights[4, 0] = bad
    _rewrite(saved, {"param/dense_1.W.npy": _npy(weights)})
    _refused(saved, "dense_1.W holds 2 NaN or infinite values (of 30)", "outputs NaN")


def test_a_huge_units_in_the_architecture_is_refused_before_allocating(saved):
    with zipfile.ZipFile(saved) as archive:
        record = json.loads(str(np.load(io.BytesIO(archive.read("architecture.npy")))))
    record["layers"][0]["config"]["units"] = 10**11
    _rewrite(saved, {"architecture.npy": _npy(np.array(json.dumps(record)))})
    tracemalloc.start()
    try:
        message = _refused(saved, "invalid architecture record (too big to train here")
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert "is available" in message and peak < MiB


def test_an_extra_member_is_refused_before_it_is_decompressed(saved):
    """The member is a deflate stream that cannot be decompressed: reading it would say
    'corrupt'; refusing it from the member list names it."""
    _rewrite(saved, {})
    with zipfile.ZipFile(saved, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("extra.npy", _npy(np.zeros(10**5)))
    raw = bytearray(saved.read_bytes())
    start = raw.index(b"extra.npy") + len("extra.npy")
    raw[start : start + 40] = b"\xff" * 40  # the compressed data, now garbage
    saved.write_bytes(bytes(raw))
    _refused(saved, "unexpected member 'extra.npy'")


def test_a_header_claiming_a_huge_array_is_refused_from_the_header(saved):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (10**6, 10**6)}
    )
    _rewrite(saved, {"param/dense_1.W.npy": header.getvalue()})
    _refused(saved, "dense_1.W has shape (1000000, 1000000), the architecture needs (6, 5)")


def test_an_architecture_record_that_is_not_a_short_text_is_refused(saved):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<U100000000", "fortran_order": False, "shape": ()}
    )
    _rewrite(saved, {"architecture.npy": header.getvalue()})
    _refused(saved, "the architecture record should be a text")
    _rewrite(saved, {"architecture.npy": _npy(np.zeros(3))})
    _refused(saved, "found a float64 array of shape (3,)")


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (lambda a: a.update(dtype="int8"), "dtype must be float32 or float64, got 'int8'"),
        (lambda a: a.update(dtype="no-such-type"), "dtype must be float32 or float64"),
        (lambda a: a.update(input_shape="abc"), "input_shape must be positive sizes"),
        (lambda a: a.update(input_shape=[6.5]), "input_shape must be positive sizes"),
        (lambda a: a.update(seed="abc"), "invalid architecture record"),
        (lambda a: a.update(version="1"), "format version 1"),
        (lambda a: a.update(layers=5), "invalid architecture record"),
        (lambda a: a["layers"][0].update(config=[1]), "invalid architecture record"),
    ],
)
def test_a_damaged_architecture_record_is_a_value_error(saved, edit, fragment):
    with zipfile.ZipFile(saved) as archive:
        record = json.loads(str(np.load(io.BytesIO(archive.read("architecture.npy")))))
    edit(record)
    _rewrite(saved, {"architecture.npy": _npy(np.array(json.dumps(record)))})
    _refused(saved, fragment)


def test_a_deeply_nested_architecture_record_is_corrupt_not_a_recursion_error(saved):
    _rewrite(saved, {"architecture.npy": _npy(np.array("[" * 100_000 + "]" * 100_000))})
    _refused(saved, "corrupt model file (the architecture record is not JSON")


def test_a_member_stored_twice_is_refused(saved):
    with zipfile.ZipFile(saved) as archive:
        data = archive.read("param/dense_1.b.npy")
    with (
        pytest.warns(UserWarning, match="Duplicate name"),
        zipfile.ZipFile(saved, "a") as archive,
    ):
        archive.writestr("param/dense_1.b.npy", data)
    _refused(saved, "a member is stored twice")


def test_a_round_trip_still_loads(saved):
    model = nl.load(saved)
    assert model.spec == "6-5-3"
    assert model_module.load is nl.load
