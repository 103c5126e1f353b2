"""The run log's schema 2 (issue 20, run-log size): compact batch lines and big fields in the
side file. A schema-1 log (tests/fixtures/v1-run, written by the release before) reads as the
same records as it did and opens everywhere; a run's histograms, sample predictions and
feature maps go to its side file and read back as emitted; a side file that is missing,
truncated or damaged is one clear message, never a traceback; a reader that starts where a
run's summary left off finds a complete batch line there."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnlib import cli, events, runs, runsummary
from nnlib.arrays import (
    ARRAYS_FILE,
    FILTERS,
    HISTOGRAMS,
    MAPS,
    UINTS,
    ArrayFileError,
    ArrayReader,
    ArrayWriter,
    is_packed,
)
from nnlib.config import ExperimentConfig
from nnlib.experiment import setup
from nnlib.runs import logger as run_logger
from nntui.replay import open_run

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "v1-run"
#: sha256 of the fixture's records as the schema-1 reader (the release before) read them:
#: [type, step, time, data] each, as JSON with sorted keys.
V1_RECORDS = "e2060e5b2401a766da66ef1b01e0236d8bdfd45d4de39addcf86834765ea6fa4"
TINY = "conv(2,3) relu maxpool(2) dense(10)"


def digest(records: list[events.Event]) -> str:
    rows = [[e.type, e.step, e.time, e.data] for e in records]
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()


def test_a_schema_1_log_reads_as_the_same_records_as_before(tmp_path):
    run = shutil.copytree(FIXTURE, tmp_path / "v1")
    read = runs.read(run)
    assert '"v":1,"type":"batch"' in (run / runs.EVENTS_FILE).read_text()
    assert digest(read) == V1_RECORDS
    tail, followed = runs.EventTail(run), []
    while more := tail.read(limit=2000):
        followed += more
    assert digest(followed) == V1_RECORDS


def test_a_schema_1_log_opens_in_the_app_and_the_cli(tmp_path, capsys):
    run = shutil.copytree(FIXTURE, tmp_path / "v1")
    opened = open_run(run)
    kinds = {type(s).__name__ for s in opened.updates}
    assert {"Histograms", "FeatureMaps", "Samples", "Epoch", "End"} <= kinds
    maps = [s for s in opened.updates if isinstance(s, events.FeatureMaps)]
    assert maps and all(m.images and not m.get(runs.UNREADABLE) for m in maps)
    assert cli.main(["runs", str(run)]) == 0
    out = capsys.readouterr().out
    assert "run ended: finished" in out and "feature maps of 4 images" in out


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> tuple[Path, list[events.Event], list[int]]:
    """A small image run (every view on), the records its callbacks emitted, and the log
    offsets its summaries were written for."""
    from nnlib.callbacks import Callback

    emitted: list[events.Event] = []
    offsets: list[int] = []

    class Collect(Callback):
        def on_event(self, trainer, event, data) -> None:
            emitted.append(events.make(event, data.get("step", trainer.global_step), data))

    def write(path, summary) -> None:
        offsets.append(summary.bytes)
        original(path, summary)

    run_dir = tmp_path_factory.mktemp("schema2") / "run"
    config = ExperimentConfig(
        dataset="glyphs", arch=TINY, epochs=3, subset=120, batch_size=40, run_dir=str(run_dir),
        histogram_every=2,
    )  # fmt: skip
    original, runsummary.write = runsummary.write, write
    seconds, run_logger.SUMMARY_SECONDS = run_logger.SUMMARY_SECONDS, 0.0  # one at every epoch end
    try:
        setup(config, callbacks=[Collect()], checkpoints=False).fit()
    finally:
        runsummary.write, run_logger.SUMMARY_SECONDS = original, seconds
    return run_dir, emitted, offsets


def test_big_fields_go_to_the_side_file_and_read_back_as_emitted(recorded):
    run_dir, emitted, _ = recorded
    lines = (run_dir / runs.EVENTS_FILE).read_text().splitlines()
    packed = {
        "histograms": '"layers":{"packed":"histograms"',
        "samples": '"predicted":{"packed":"uints"',
        "feature_maps": '"images":{"packed":"maps"',
    }
    for kind, text in packed.items():
        kind_lines = [line for line in lines if f'"type":"{kind}"' in line]
        assert kind_lines and all(text in line for line in kind_lines), kind
    read = runs.read(run_dir)
    for kind in packed:
        mine = [e for e in emitted if e.type == kind]
        assert mine and [e for e in read if e.type == kind] == mine


def test_a_reader_starting_at_a_summary_finds_a_complete_batch_line(recorded):
    """LogScan starts where a summary left off: the writer's next batch line is complete
    there, so every batch after it reads as it does from the start."""
    run_dir, _, offsets = recorded
    log = (run_dir / runs.EVENTS_FILE).read_bytes()
    everything = runs.read(run_dir)
    assert len(set(offsets)) >= 3  # the start, epoch ends, the end
    for offset in offsets:
        tail = runs.EventTail(run_dir)
        tail.seek(offset, log[:offset].count(b"\n"), False)
        after = tail.read()
        assert after == everything[len(everything) - len(after) :]


# -- the side file's packers -------------------------------------------------------------------
FLOATS = st.floats(-1e6, 1e6, allow_nan=False) | st.floats(width=32, allow_nan=False).filter(
    np.isfinite
)
HISTOGRAM = st.integers(1, 4).flatmap(
    lambda bins: st.fixed_dictionaries(
        {
            "lo": FLOATS,
            "hi": FLOATS,
            "counts": st.lists(st.integers(0, 2**32 - 1), min_size=bins, max_size=bins),
            "percentiles": st.lists(FLOATS, min_size=3, max_size=3),
        },
        optional={"nonfinite": st.integers(0, 100)},
    )
)
LAYER = st.fixed_dictionaries(
    {},
    optional={
        "weights": HISTOGRAM,
        "grads": HISTOGRAM,
        "grad_norm": FLOATS | st.none(),
        "update_ratio": FLOATS | st.none(),
        "dead_fraction": FLOATS,
    },
)
MAPS_RECORD = st.integers(1, 3).flatmap(
    lambda c: st.fixed_dictionaries(
        {
            "name": st.text(max_size=5),
            "shape": st.just([c, 2, 2]),
            "lo": st.lists(FLOATS, min_size=c, max_size=c),
            "hi": st.lists(FLOATS, min_size=c, max_size=c),
            "data": st.lists(st.integers(0, 255), min_size=4 * c, max_size=4 * c),
        }
    )
)
CASES = st.one_of(
    st.tuples(st.just(HISTOGRAMS), st.dictionaries(st.text(max_size=6), LAYER, max_size=4)),
    st.tuples(st.just(UINTS), st.lists(st.integers(0, 2**32 - 1), max_size=20)),
    st.tuples(
        st.just(MAPS),
        st.lists(
            st.fixed_dictionaries(
                {"index": st.integers(0, 9), "layers": st.lists(MAPS_RECORD, max_size=3)}
            ),
            max_size=3,
        ),
    ),
    st.tuples(st.just(FILTERS), MAPS_RECORD),
)
DAMAGE = st.sampled_from(["missing", "truncated", "flipped", "shorter", "swapped"])


@settings(
    derandomize=True,
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(case=CASES, damage=DAMAGE, where=st.integers(0, 10**6))
def test_a_packed_field_reads_back_or_is_one_clear_error(tmp_path, case, damage, where):
    """Stored, then read back: its canonical form (float32 where it fits, as a live view
    shows it). Damaged (file gone, cut, a byte flipped, a block cut short or blocks swapped):
    one ArrayFileError line, or, where the damage leaves valid data, a value of its field."""
    packer, value = case
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    writer = ArrayWriter(folder)
    stored = packer.store(value, writer)
    writer.close()
    expected = packer.canonical(value)
    if not is_packed(stored, packer.name):
        assert stored == value  # a shape it does not pack stays in the line
        return
    with ArrayReader(folder) as reader:
        assert packer.load(stored, reader) == expected
    side = folder / ARRAYS_FILE
    data = bytearray(side.read_bytes())
    blocks = [list(block) for block in stored["blocks"]]
    if damage == "missing":
        side.unlink()
    elif damage == "truncated":
        side.write_bytes(bytes(data[: where % max(len(data), 1)]))
    elif damage == "flipped":
        data[where % len(data)] ^= 1 << (where % 8)
        side.write_bytes(bytes(data))
    elif damage == "shorter":
        blocks[0][1] = max(0, blocks[0][1] - 1 - where % 8)
    else:
        blocks.reverse()
    damaged = {**stored, "blocks": blocks}
    try:
        with ArrayReader(folder) as reader:
            back = packer.load(damaged, reader)
    except ArrayFileError as error:
        assert "\n" not in str(error) and str(error)
        return
    assert back == expected  # nothing that mattered was damaged (a swap of equal blocks)


@pytest.mark.parametrize("damage", ["missing", "truncated", "corrupted"])
def test_a_run_whose_side_file_is_damaged_opens_and_says_so(recorded, tmp_path, damage):
    run_dir, _, _ = recorded
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in (runs.EVENTS_FILE, runs.CONFIG_FILE, ARRAYS_FILE, "samples.npz"):
        shutil.copyfile(run_dir / name, copy / name)
    side = copy / ARRAYS_FILE
    if damage == "missing":
        side.unlink()
    elif damage == "truncated":
        side.write_bytes(side.read_bytes()[:100])
    else:
        data = bytearray(side.read_bytes())
        for at in range(40, len(data), 97):  # every block gets hit
            data[at] ^= 0xFF
        side.write_bytes(bytes(data))
    read = runs.read(copy)
    for kind in ("histograms", "samples", "feature_maps"):
        unreadable = [e for e in read if e.type == kind and e.get(runs.UNREADABLE)]
        assert unreadable, kind
        reason = unreadable[-1].get(runs.UNREADABLE)
        assert str(side) in reason and "\n" not in reason and kind in reason
    opened = open_run(copy)  # the app opens it: the feature maps panel says why, curves show
    maps = [s for s in opened.updates if isinstance(s, events.FeatureMaps)]
    assert maps and str(side) in maps[-1].get(runs.UNREADABLE)
    assert any(isinstance(s, events.Epoch) for s in opened.updates)
