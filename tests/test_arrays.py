"""The run's side file of arrays (nnlib.arrays): blocks read back as written, and a side file
that is truncated, damaged, missing or not a regular file is one ArrayFileError naming it,
never a traceback; a recorded run whose side file is gone still opens, its Features view
saying why its maps are missing; logs written before the side file still read."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnlib import events, runs
from nnlib.arrays import (
    ARRAYS_FILE,
    HISTOGRAMS,
    ArrayFileError,
    ArrayReader,
    ArrayWriter,
    is_packed,
)
from nnlib.config import ExperimentConfig
from nnlib.experiment import setup
from nntui.replay import open_run

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

arrays = st.builds(
    lambda shape, dtype, seed: (
        np.random.default_rng(seed).integers(0, 3 if seed % 2 else 255, size=shape).astype(dtype)
    ),
    st.lists(st.integers(1, 9), min_size=1, max_size=3),
    st.sampled_from(["u1", "<u2", "<u4", "<f4"]),
    st.integers(0, 2**16),
)


def write(folder: Path, items: list[np.ndarray]) -> list[dict]:
    writer = ArrayWriter(folder)
    try:
        return [writer.append(item) for item in items]
    finally:
        writer.close()


@SETTINGS
@given(items=st.lists(arrays, min_size=1, max_size=4))
def test_blocks_read_back_as_written(tmp_path_factory, items):
    folder = tmp_path_factory.mktemp("arrays")
    refs = write(folder, items)
    with ArrayReader(folder) as reader:
        for item, ref in zip(items, refs, strict=True):
            back = reader.read(ref)
            assert back.dtype == item.dtype and np.array_equal(back, item)


@SETTINGS
@given(
    items=st.lists(arrays, min_size=1, max_size=3),
    damage=st.one_of(
        st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True)),
        st.tuples(st.just("flip"), st.floats(0, 1, exclude_max=True)),
        st.tuples(st.just("offset"), st.integers(-40, 40)),
        st.tuples(st.just("bytes"), st.integers(-40, 40)),
    ),
)
def test_a_damaged_side_file_is_one_clear_error(tmp_path_factory, items, damage):
    folder = tmp_path_factory.mktemp("arrays")
    refs = write(folder, items)
    path = folder / ARRAYS_FILE
    data = bytearray(path.read_bytes())
    how, amount = damage
    if how == "truncate":
        path.write_bytes(data[: int(amount * len(data))])
    elif how == "flip":
        data[int(amount * len(data))] ^= 0xFF
        path.write_bytes(bytes(data))
    else:
        key = "offset" if how == "offset" else "bytes"
        written = {(r["offset"], r["bytes"]): item for r, item in zip(refs, items, strict=True)}
        refs = [{**ref, key: max(0, ref[key] + amount)} for ref in refs]
    with ArrayReader(folder) as reader:
        for item, ref in zip(items, refs, strict=True):
            try:
                back = reader.read(ref)
            except ArrayFileError as error:
                message = str(error)
                assert str(path) in message and "\n" not in message
                continue
            if how in ("offset", "bytes"):
                # A reference moved exactly onto another whole block reads that block: a
                # reference carries no identity of its block to tell (hypothesis found it).
                item = written[ref["offset"], ref["bytes"]]
            # what was not damaged reads as written
            assert np.array_equal(back, item) and back.dtype == item.dtype


@pytest.mark.parametrize("kind", ["missing", "symlink", "fifo", "folder"])
def test_a_side_file_that_is_not_a_regular_file_is_refused(tmp_path, kind):
    source = tmp_path / "source"
    source.mkdir()
    (ref,) = write(source, [np.arange(6, dtype=np.uint8)])
    run = tmp_path / "run"
    run.mkdir()
    path = run / ARRAYS_FILE
    if kind == "symlink":
        path.symlink_to(source / ARRAYS_FILE)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    expected = {
        "missing": "no such run's arrays file",
        "symlink": "is a symbolic link",
        "fifo": "not a regular file",
        "folder": "not a regular file",
    }[kind]
    with ArrayReader(run) as reader, pytest.raises(ArrayFileError, match=expected):
        reader.read(ref)


# -- a recorded run --------------------------------------------------------------------------------
TINY = "conv(3,3) relu maxpool(2) dense(10)"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("sidefile") / "run"
    config = ExperimentConfig(
        dataset="glyphs", arch=TINY, epochs=1, subset=200, batch_size=50, run_dir=str(run_dir)
    )
    setup(config).fit()
    return run_dir


def feature_lines(run_dir: Path) -> list[str]:
    lines = (run_dir / runs.EVENTS_FILE).read_text().splitlines()
    return [line for line in lines if '"type":"feature_maps"' in line]


def test_feature_maps_are_stored_in_the_side_file_and_read_back(recorded):
    lines = feature_lines(recorded)
    assert lines and all('"packed":"maps"' in line for line in lines)
    maps = [e for e in runs.read(recorded) if e.type == "feature_maps"]
    for line, event in zip(lines, maps, strict=True):  # their pixels are in the side file
        pixels = sum(len(layer["data"]) for image in event.images for layer in image["layers"])
        assert len(line) < pixels
    layer = maps[-1].images[0]["layers"][0]
    assert len(layer["data"]) == np.prod(layer["shape"])
    assert all(type(v) is int for v in layer["data"])


def copy_of(run_dir: Path, target: Path) -> Path:
    target.mkdir()
    for name in (runs.EVENTS_FILE, runs.CONFIG_FILE, ARRAYS_FILE):
        (target / name).write_bytes((run_dir / name).read_bytes())
    return target


@pytest.mark.parametrize("damage", ["missing", "truncated", "corrupted"])
def test_a_run_whose_side_file_is_lost_opens_and_says_so(recorded, tmp_path, damage):
    run_dir = copy_of(recorded, tmp_path / "copy")
    side = run_dir / ARRAYS_FILE
    if damage == "missing":
        side.unlink()
    elif damage == "truncated":
        side.write_bytes(side.read_bytes()[:100])
    else:
        data = bytearray(side.read_bytes())
        data[-10] ^= 0xFF  # the last block: the latest event's
        side.write_bytes(bytes(data))
    opened = open_run(run_dir)
    maps = [s for s in opened.updates if isinstance(s, events.FeatureMaps)]
    latest = maps[-1]
    reason = latest.get(runs.UNREADABLE)
    assert reason and str(side) in reason and "\n" not in reason and latest.images == []
    assert any(isinstance(s, events.Epoch) for s in opened.updates)  # curves still
    read = [e for e in runs.read(run_dir) if e.type == "feature_maps"]
    assert read[-1].get(runs.UNREADABLE) == reason


def test_an_old_log_with_inline_maps_still_reads(recorded, tmp_path):
    """A log written before the side file: its feature_maps lines hold the pixels."""
    run_dir = copy_of(recorded, tmp_path / "old")
    emitted = [e for e in runs.read(recorded) if e.type == "feature_maps"]
    inline = {e.step: e.line() for e in emitted}
    lines = (run_dir / runs.EVENTS_FILE).read_text().splitlines(keepends=True)
    old = [
        inline[events.decode(line).step] if '"type":"feature_maps"' in line else line
        for line in lines
    ]
    (run_dir / runs.EVENTS_FILE).write_text("".join(old))
    (run_dir / ARRAYS_FILE).unlink()
    assert [e for e in runs.read(run_dir) if e.type == "feature_maps"] == emitted
    maps = [s for s in open_run(run_dir).updates if isinstance(s, events.FeatureMaps)]
    assert maps == emitted


@pytest.mark.parametrize(
    "grads, packed",
    [
        ({"lo": 0.0, "hi": 1.0, "counts": [3, 4], "percentiles": [0.5]}, True),
        ({"lo": 0.0, "hi": 1.0, "counts": [3, 4, 5], "percentiles": [0.5]}, False),
        ({"lo": 0.0, "hi": 1.0, "counts": [3, 4], "percentiles": [0.5, 0.7]}, False),
        ({"lo": 0.0, "hi": 1.0, "counts": [3, 2**32], "percentiles": [0.5]}, False),
        ({"lo": 0.0, "hi": 1.0, "counts": [3, 4], "percentiles": [0.5], "mode": 1}, False),
    ],
)
def test_histograms_go_to_the_side_file_only_as_rows_of_one_size(tmp_path, grads, packed):
    """A histograms event's layers are packed when every histogram has as many bins and as
    many percentiles as the others, each count fits uint32 and no item is unknown; else the
    line keeps them as they are."""
    weights = {"lo": -1.0, "hi": 1.0, "counts": [1, 2], "percentiles": [0.25], "nonfinite": 1}
    layers = {"dense_1": {"weights": weights, "grads": grads, "grad_norm": None}}
    writer = ArrayWriter(tmp_path)
    stored = HISTOGRAMS.store(layers, writer)
    writer.close()
    assert is_packed(stored, "histograms") == packed
    if not packed:
        assert stored == layers
        return
    with ArrayReader(tmp_path) as reader:
        assert HISTOGRAMS.load(stored, reader) == layers
