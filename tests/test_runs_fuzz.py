"""Fuzzing the run-log line decoder, the reader and the replay: random JSON in every field of
every event type, random bytes, deep nesting. Only EventError (naming file:line) escapes the
decoder and the reader, and whatever decodes, the replay turns into snapshots without error."""

from __future__ import annotations

import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnlib import events, runs
from nntui.replay import RunReplay

SETTINGS = settings(
    derandomize=True,
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([1e308, -1.5, 0.0, 2**63, 2**63 - 1])
    | st.text(max_size=8)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
REGISTRY = events.Event.registry
TYPES = sorted(REGISTRY)


@st.composite
def records(draw) -> dict:
    """An event record of a known (or any) type whose fields are random, valid or not."""
    kind = draw(st.sampled_from(TYPES) | json_values)
    record = {"v": draw(st.sampled_from([1, 0]) | json_values), "type": kind}
    declared = REGISTRY[kind].spec() if isinstance(kind, str) and kind in REGISTRY else {}
    names = [*declared, "time", "step"]
    for name in names:
        if draw(st.booleans()):
            record[name] = draw(json_values | _plausible(name))
    return record


def _plausible(name: str) -> st.SearchStrategy:
    """Values of the right shape, so that deeper checks are reached too."""
    ints = st.integers(min_value=0, max_value=5)
    histogram = st.fixed_dictionaries(
        {"lo": st.floats(-1, 1), "hi": st.floats(-1, 1), "counts": st.lists(ints, max_size=4),
         "percentiles": st.lists(st.floats(-1, 1), max_size=9)},
        optional={"nonfinite": ints | json_values},
    )  # fmt: skip
    n = 2
    return {
        "layers": st.dictionaries(
            st.text(max_size=4),
            st.fixed_dictionaries({}, optional={"weights": histogram, "grads": histogram,
                                                "dead_fraction": st.floats(0, 1)}),
            max_size=3,
        ),
        "matrix": st.lists(st.lists(ints, min_size=n, max_size=n), min_size=n, max_size=n),
        "precision": st.lists(st.floats(0, 1), min_size=n, max_size=n),
        "recall": st.lists(st.floats(0, 1), min_size=n, max_size=n),
        "class_names": st.lists(st.text(max_size=3), min_size=n, max_size=n),
        "epoch": ints, "batch": ints, "step": ints, "loss": st.floats(0, 5), "lr": st.floats(0, 1),
        "batch_size": st.integers(min_value=0, max_value=3), "reason": st.text(max_size=5),
        "name": st.text(max_size=5), "old": scalars, "new": scalars, "run": st.text(max_size=5),
        "config": st.dictionaries(st.text(max_size=5), json_values, max_size=3),
        "path": st.text(max_size=5), "monitor": st.text(max_size=5),
    }.get(name, json_values)  # fmt: skip


def _decoded_or_event_error(line: str, where: str = "f.jsonl:7") -> runs.Event | None:
    try:
        return runs.decode(line, where)
    except runs.EventError as error:
        assert str(error).startswith(f"{where}: ") and "\n" not in str(error)
        return None


@SETTINGS
@given(st.lists(records(), min_size=1, max_size=12))
def test_random_records_decode_or_fail_with_one_event_error_and_replay(items):
    events = []
    for record in items:
        event = _decoded_or_event_error(json.dumps(record))
        if event is not None:
            assert event.type == record["type"]
            assert isinstance(event.step, int) and math.isfinite(event.time)
            events.append(event)
    RunReplay().feed(events)  # whatever decodes, the replay takes


@SETTINGS
@given(st.binary(max_size=200))
def test_random_bytes(data):
    _decoded_or_event_error(data.decode("utf-8", errors="replace"))


@SETTINGS
@given(
    st.integers(min_value=1, max_value=5_000) | st.sampled_from([100_000]),
    st.sampled_from(["[", '{"a":']),
)
def test_deep_nesting(depth, opener):
    closer = "]" if opener == "[" else "}"
    _decoded_or_event_error('{"type":"pause","x":' + opener * depth + "1" + closer * depth + "}")


@SETTINGS
@given(
    st.lists(st.binary(max_size=60) | records().map(lambda r: json.dumps(r).encode()), max_size=8)
)
def test_the_reader_raises_only_event_errors_naming_the_line(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("fuzz") / runs.EVENTS_FILE
    path.write_bytes(b"\n".join(line.replace(b"\n", b" ") for line in lines) + b"\n")
    try:
        runs.read(path)
    except runs.EventError as error:
        assert str(error).startswith(f"{path}:")
    skipped: list[runs.EventError] = []
    tail = runs.EventTail(path, on_bad_line=skipped.append)
    events = tail.read()
    assert all(str(e).startswith(f"{path}:") for e in skipped)
    assert len(events) + len(skipped) <= len(lines)
