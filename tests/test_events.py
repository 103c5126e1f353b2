"""nnlib.events: one typed record per run-log event. Every type round-trips through its JSON
line, emitted events are checked as strictly as lines read back, `describe` is the one wording
the CLI, the progress bar and the app print, the README lists the types as the module defines
them, and a new event type reaches a panel's state with no change to the bridge or the replay."""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nnlib as nl
from nnlib import events, runs
from nnlib.events import checks
from nntui.bridge import Bridge
from nntui.replay import updates_from_records
from nntui.runstate import RunState
from nntui.stream import Update
from nntui.widgets.eventlog import describe

README = Path(__file__).resolve().parent.parent / "README.md"

#: A valid emitted example of every type (a new type must add one: see the first test).
SAMPLES = {
    "run_start": {"run": "runs/r", "config": {"dataset": "spirals"}},
    "batch": {"epoch": 0, "batch": 3, "loss": 0.5, "lr": 0.1, "size": 8, "momentum": 0.9},
    "epoch": {"epoch": 1, "loss": 0.25, "accuracy": 0.9, "val_loss": 0.3, "seconds": 1.5},
    "histograms": {
        "epoch": 0,
        "batch": 4,
        "layers": {
            "dense_1": {
                "weights": {"lo": -1.0, "hi": 1.0, "counts": [1, 2], "percentiles": [0.0]},
                "grad_norm": 0.5,
            },
            "relu_1": {"dead_fraction": 0.25},
        },
    },
    "confusion": {"epoch": 0, "matrix": [[3, 1], [0, 4]], "precision": [1.0, 0.8]},
    "regression": {"epoch": 2, "counts": [[0, 1, 2], [3, 0, 0]], "lo": -1, "hi": 1.5, "r2": 0.9,
                   "mae": 0.1},
    "hparam": {"name": "lr", "old": 0.1, "new": 0.05, "applies": "next batch", "source": "remote"},
    "pause": {},
    "resume": {"source": "app"},
    "stop": {"reason": "stopped", "source": "remote"},
    "pace": {"old": None, "new": 2.0, "source": "app"},
    "pruned": {"monitor": "val_loss", "value": 0.5, "median": 0.3, "epoch": 3},
    "run_resume": {"from_step": 8, "epoch": 0, "batch": 8, "checkpoint": "runs/r/c/step-8.npz"},
    "checkpoint": {"path": "runs/r/best.npz", "epoch": 0, "reason": "best", "monitor": "val_loss",
                   "value": 0.3},
    "early_stop": {"monitor": "val_loss", "best": 0.2, "best_epoch": 1, "epoch": 4},
    "diverged": {"loss": float("nan"), "epoch": 0, "batch": 2},
    "end": {"reason": "error", "error": "ValueError: boom", "epoch": 3, "restored_epoch": 1},
    "boundary": {"kind": "classes", "lo": [-1, -1], "hi": [1, 1.5], "predicted": ["01", "1."],
                 "confidence": ["0z", "Z_"], "train": ["..", "1."], "epoch": 0,
                 "neurons": [{"layer": "dense_1", "units": [{"map": ["0"], "scale": 1.5,
                                                             "bias": -0.5, "weights": [1, -2]}]}]},
    "boundary_points": {"train": ["..", "1."], "val": ["0.", ".."]},
    "warning": {"kind": "dead_relu", "message": "relu_1: 80% dead", "suggestion": "lower lr",
                "layer": "relu_1", "value": 0.8, "epoch": 2},
    "samples": {"file": "samples.npz", "predicted": [3, 1], "confidence": [97, 40], "epoch": 0},
    "feature_maps": {"images": [{"index": 2, "layers": [
        {"name": "conv2d_1", "shape": [1, 1, 2], "lo": [-0.5], "hi": [1.0], "data": [0, 255]},
    ]}], "epoch": 1, "trigger": "epoch"},
    "test": {"loss": 0.3, "samples": 4, "accuracy": 0.75, "matrix": [[2, 0], [1, 1]],
             "precision": [0.67, 1.0], "recall": [1.0, 0.5], "class_names": ["a", "b"]},
    "system": {"seconds": 5.0, "cpu_percent": 180.5, "samples": 4000, "samples_per_sec": 800.0,
               "rss_bytes": 210 * 2**20, "peak_rss_bytes": 230 * 2**20},
    "trace": {"index": 3, "samples": 150, "label": "1", "predicted": "2", "loss": 0.97,
              "layers": [{"name": "dense_1", "kind": "dense", "arrays": [
                  {"label": "input", "shape": [1, 2], "min": -0.9, "max": 0.2, "mean": -0.35,
                   "values": [-0.9, 0.2]},
                  {"label": "W", "shape": [2, 40], "min": -1.0, "max": 1.0, "mean": 0.0,
                   "strip": "09aZ_."}],
                  "update": [{"label": "W before", "shape": [1], "min": None, "max": None,
                              "mean": None, "values": [None]}]}],
              "epoch": 0, "lr": 0.05, "rule": "Adam", "trigger": "step"},
}  # fmt: skip


def test_every_type_has_a_sample_and_round_trips_through_its_line():
    assert set(SAMPLES) == set(events.Event.registry)
    for kind, data in SAMPLES.items():
        record = events.make(kind, 7, data)
        assert type(record) is events.Event.registry[kind] and record.type == kind
        line = record.line()
        assert line.endswith("\n") and line.count("\n") == 1
        back = events.decode(line, "f:1")
        assert back == record and back.time == record.time and back.step == 7
        assert json.loads(line)["v"] == events.SCHEMA_VERSION == runs.SCHEMA_VERSION


def test_fields_beyond_the_declared_ones_are_kept_as_extra():
    batch = events.make("batch", 4, {**SAMPLES["batch"], "loss": np.float32(0.5)})
    assert batch.loss == 0.5 and type(batch.loss) is float  # numpy made plain
    assert batch.extra == {"size": 8, "momentum": 0.9}
    assert batch["size"] == 8 and batch.get("accuracy") is None and "accuracy" not in batch.data


@pytest.mark.parametrize(
    "kind, data, words",
    [
        ("checkpoint", {"path": 3}, "checkpoint event path must be a string, got 3"),
        ("batch", {"epoch": 0, "batch": -1, "loss": 1.0}, "batch must be a non-negative integer"),
        ("hparam", {"name": "lr"}, "hparam event lacks old, new"),
        ("regression", {"counts": [], "lo": 0, "hi": 1, "r2": 0, "mae": 0}, "counts must be a"),
        ("confusion", {"matrix": [[1, 2]]}, "matrix must be a square"),
    ],
)
def test_an_emitted_event_is_checked_like_a_line_read_back(kind, data, words):
    with pytest.raises(events.EventError, match=re.escape(words)) as error:
        events.make(kind, 1, data)
    assert str(error.value).startswith(f"emitted {kind!r}: ")


def test_a_callback_emitting_a_bad_event_fails_the_run_with_the_field_named(tmp_path):
    class Bad(nl.Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            trainer.emit("checkpoint", path=None)

    trainer = nl.Trainer(
        nl.build("2-4-2", (2,)),
        nl.SoftmaxCrossEntropy(),
        nl.SGD(lr=0.1),
        callbacks=[Bad(), runs.RunLogger(run_dir=tmp_path / "run")],
    )
    x, y = np.zeros((8, 2), np.float32), np.zeros(8, np.int64)
    with pytest.raises(events.EventError, match="path must be a string, got null"):
        trainer.fit(x, y, epochs=1, batch_size=4)
    read = runs.read(tmp_path / "run")  # the log is whole: it ends with the error
    assert read[-1].type == "end" and "path must be a string" in read[-1]["error"]


def test_an_early_stop_that_never_improved_is_readable():
    # EarlyStopping's best_epoch is None when no epoch improved: it was written as null,
    # which the strict reader then refused. An optional field that is None is left out.
    line = runs.encode(
        "early_stop", 3, {"monitor": "val_loss", "best": float("inf"), "best_epoch": None}
    )
    event = runs.decode(line)
    assert event.best_epoch is None and "best_epoch" not in json.loads(line)
    assert event.describe() == "early stop: val_loss never improved"


def test_v1_lines_of_the_current_release_still_read():
    lines = [
        '{"v":1,"type":"batch","time":1.5,"step":1,"epoch":0,"batch":0,"size":8,"loss":1.1,'
        '"lr":0.1,"momentum":0.0,"base_lr":0.1,"batch_size":8,"accuracy":0.5,'
        '"samples_per_sec":900.0}',
        '{"v":1,"type":"checkpoint","time":2.0,"step":3,"path":"r/best.npz","epoch":0,'
        '"reason":"best","monitor":"val_loss","value":null}',
        '{"v":1,"type":"end","time":3.0,"step":3,"reason":"finished","epoch":0,'
        '"checkpoint":"r/model.npz"}',
        '{"type":"confusion","matrix":[[1,0],[2,3]]}',
    ]
    batch, checkpoint, end, confusion = (events.decode(line) for line in lines)
    assert isinstance(batch, events.Batch) and batch.extra["base_lr"] == 0.1
    assert checkpoint.value is None and checkpoint.describe() == "checkpoint (best): best.npz"
    assert end.reason == "finished" and end["checkpoint"] == "r/model.npz"
    assert confusion.precision is None and confusion.step == 0


def test_describe_is_one_line_for_every_type_and_the_wording_everywhere():
    for kind, data in SAMPLES.items():
        text = events.make(kind, 7, data).describe()
        assert text and "\n" not in text, kind
    assert events.make("pause", 1, {}).describe() == "paused"
    assert events.make("pace", 1, SAMPLES["pace"]).describe() == "pace: full speed -> 2 ep/s [app]"
    assert events.make("epoch", 5, SAMPLES["epoch"]).describe().startswith("epoch 2  loss 0.2500")
    assert events.make("custom", 1, {"a": 1}).describe() == "custom a=1"
    # The progress bar prints the same line for the events it shows.
    stream = io.StringIO()
    bar = nl.ProgressBar(stream=stream, rich=False)
    record = events.make("early_stop", 9, SAMPLES["early_stop"])
    expected = record.describe()
    bar.on_record(SimpleNamespace(global_step=9), record)
    assert stream.getvalue() == expected + "\n"
    # ...and the app's log.
    line = describe(events.make("checkpoint", 2, SAMPLES["checkpoint"]))
    assert line == ("checkpoint (best): best.npz", "good")


def test_the_readme_lists_the_types_as_the_module_defines_them():
    text = README.read_text(encoding="utf-8")
    listed = text.split("<!-- events:begin", 1)[1].split("-->", 1)[1].split("<!-- events:end")[0]
    assert listed.strip() == events.reference(), (
        "the README's run-log event list is out of date; paste in the output of "
        'python -c "from nnlib import events; print(events.reference())"'
    )


def test_a_type_is_taken_once():
    with pytest.raises(TypeError, match="'epoch' is taken by Epoch"):

        @dataclass(frozen=True, kw_only=True)
        class Again(events.Event):
            TYPE = "epoch"


@pytest.fixture
def boundary():
    """A new event type, as a callback author would declare it."""

    @dataclass(frozen=True, kw_only=True)
    class Boundary(events.Event):
        """The model's class over a grid of the input plane."""

        TYPE = "test_boundary"
        grid: list = events.field_of(checks.grid)

    yield Boundary
    del events.Event.registry["test_boundary"]


def test_a_new_event_reaches_the_panel_state_live_and_recorded(boundary, tmp_path):
    """Adding a panel touches the event, its emitter and the widget: not the bridge, the
    replay or the run state (the record itself is what reaches the state, live and read
    back)."""

    class Emitter(nl.Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            trainer.emit("test_boundary", grid=np.full((2, 3), epoch))

    live: list[Update] = []
    trainer = nl.Trainer(
        nl.build("2-4-2", (2,)),
        nl.SoftmaxCrossEntropy(),
        nl.SGD(lr=0.1),
        callbacks=[Emitter(), Bridge(live.append), runs.RunLogger(run_dir=tmp_path / "r")],
    )
    x, y = np.zeros((8, 2), np.float32), np.zeros(8, np.int64)
    trainer.fit(x, y, epochs=2, batch_size=4)
    states = []
    for updates in (live, updates_from_records(runs.read(tmp_path / "r"))):
        state = RunState()
        for update in updates:
            state.apply(update)
        states.append(state.latest("test_boundary"))
    assert states[0] == states[1] == boundary(step=4, grid=[[1, 1, 1], [1, 1, 1]])


VALUES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.floats()
    | st.text(max_size=4)
    | st.lists(st.integers(-1, 3) | st.floats(), max_size=3)
    | st.dictionaries(st.text(max_size=3), st.integers(-1, 3), max_size=2)
)


@settings(derandomize=True, max_examples=300, deadline=None)
@given(st.data())
def test_make_either_refuses_or_gives_a_record_that_reads_back_equal(data):
    """Any field (declared or not) of any type set to any value: an EventError naming the
    type, or a record whose line decodes to an equal record."""
    kind = data.draw(st.sampled_from(sorted(SAMPLES)))
    name = data.draw(st.sampled_from([*events.Event.registry[kind].spec(), "extra_field"]))
    emitted = {**SAMPLES[kind], name: data.draw(VALUES)}
    try:
        record = events.make(kind, 1, emitted)
    except events.EventError as error:
        assert str(error).startswith(f"emitted {kind!r}: ") and "\n" not in str(error)
        return
    assert events.decode(record.line()) == record


def test_plain_progress_lines_fit_80_columns():
    """The epoch line of a spirals run was 90 characters (`... 139,804 samples/s  0.0s`)."""
    stream = io.StringIO()
    bar = nl.ProgressBar(stream=stream, rich=False, interval=0)
    trainer = SimpleNamespace(epoch=99, epochs=100, steps_per_epoch=1000)
    logs = {"loss": 12.3456, "accuracy": 1.0, "samples_per_sec": 1234567.0, "seconds": 123.4}
    bar.on_train_begin(trainer)
    bar.on_batch_end(trainer, 999, logs)
    bar.on_epoch_end(trainer, 99, {**logs, "val_loss": 12.3456, "val_accuracy": 1.0})
    small = {"loss": 0.9358, "accuracy": 0.407, "val_loss": 0.8243, "val_accuracy": 0.473}
    bar.on_epoch_end(
        SimpleNamespace(epochs=3), 0, {**small, "samples_per_sec": 139804.0, "seconds": 0.0}
    )
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3 and all(len(line) <= 80 for line in lines), lines
    assert (
        lines[0] == "epoch 100/100 batch 1000/1000  loss 12.3456  acc 100.0%  1,234,567 samples/s"
    )
    assert "val_loss 12.3456 val_acc 100.0%" in lines[1] and lines[1].endswith(" 123.4s")
    assert lines[2] == (
        "epoch 1/3 loss 0.9358 acc 40.7% val_loss 0.8243 val_acc 47.3% 139,804/s 0.0s"
    )
    # Short enough lines keep the wide spacing.
    assert nl.callbacks.progress.plain_line("epoch 1/3", {"loss": 0.5}) == "epoch 1/3  loss 0.5000"


_CELLS = st.one_of(st.integers(-2, 3), st.booleans(), st.just("1"), st.none())
_ROWS = st.one_of(
    st.lists(st.lists(_CELLS, max_size=3), max_size=3),
    st.lists(st.lists(st.integers(0, 3), min_size=2, max_size=2), max_size=3),
    st.integers(),
    st.none(),
    st.text(max_size=2),
)


@settings(derandomize=True, max_examples=300, deadline=None)
@given(_ROWS)
def test_a_matrix_is_a_square_grid_of_counts(value):
    """The table checks take exactly a non-empty list of equal, non-empty rows of
    non-negative integers (no booleans); a matrix has as many rows as columns."""
    rows = value if isinstance(value, list) else None
    grid = bool(rows) and all(
        isinstance(row, list)
        and len(row) == len(rows[0]) > 0
        and all(type(n) is int and n >= 0 for n in row)
        for row in rows
    )
    assert (checks.grid(value) is None) == grid
    assert (checks.matrix(value) is None) == (grid and len(rows) == len(rows[0]))


@settings(derandomize=True, max_examples=300, deadline=None)
@given(
    st.one_of(
        st.lists(st.text("0aZ_.!", max_size=66), max_size=3),
        st.lists(st.just("a"), min_size=63, max_size=66),
        st.lists(st.one_of(st.just("ab"), st.integers()), max_size=2),
    )
)
def test_a_raster_is_equal_rows_of_its_alphabet(value):
    ok = (
        0 < len(value) <= checks.RASTER_MAX
        and all(isinstance(row, str) for row in value)
        and all(0 < len(row) == len(value[0]) <= checks.RASTER_MAX for row in value)
        and all(set(row) <= set(checks.RASTER_ALPHABET + ".") for row in value)
    )
    assert (checks.raster(value) is None) == ok


_TRACE_BASE = {"label": "W", "shape": [2, 3], "min": -1.0, "max": None, "mean": 0.0}


@settings(derandomize=True, max_examples=300, deadline=None)
@given(
    st.one_of(st.none(), st.lists(st.one_of(st.floats(-2, 2), st.none(), st.just("1")),
                                  max_size=checks.TRACE_VALUES_MAX + 2)),
    st.one_of(st.none(), st.integers(), st.text("09aZ_.!", max_size=checks.TRACE_STRIP_MAX + 2)),
    st.sets(st.sampled_from(["values", "strip"])),
)  # fmt: skip
def test_a_trace_array_holds_its_values_or_a_heat_strip_never_both(values, strip, given):
    """A trace array has exactly one of values (at most TRACE_VALUES_MAX numbers or nulls) and
    strip (at most TRACE_STRIP_MAX raster characters); null is neither."""
    value = {
        **_TRACE_BASE,
        **{k: v for k, v in (("values", values), ("strip", strip)) if k in given},
    }
    values_ok = (
        isinstance(values, list)
        and len(values) <= checks.TRACE_VALUES_MAX
        and all(v is None or type(v) is float for v in values)
    )
    strip_ok = (
        isinstance(strip, str)
        and len(strip) <= checks.TRACE_STRIP_MAX
        and set(strip) <= set(checks.RASTER_ALPHABET + ".")
    )
    ok = (given == {"values"} and values_ok) or (given == {"strip"} and strip_ok)
    assert (checks.trace_array(value) is None) == ok
    assert checks.trace_array([]) is not None


@pytest.mark.parametrize(
    "fix, ok",
    [
        ({"name": "lr", "value": 0.05}, True),
        ({"name": "weight_decay", "value": 0}, True),
        ({"name": "lr", "value": -0.05}, False),
        ({"name": "lr", "value": True}, False),
        ({"name": "lr", "value": "0.05"}, False),
        ({"name": "momentum", "value": 0.5}, False),
        ({"name": ["lr"], "value": 0.5}, False),
        ({"name": "lr"}, False),
        ({"name": "lr", "value": 0.05, "before": 3}, False),
        ([["name", "lr"], ["value", 0.05]], False),
    ],
)
def test_a_fix_is_exactly_one_settable_name_and_a_non_negative_number(fix, ok):
    assert (checks.fix(fix) is None) == ok
    assert checks.fix(fix) in (None, 'an object {"name": one of lr, weight_decay, "value": number}')
