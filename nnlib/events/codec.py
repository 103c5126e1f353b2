"""Records to lines and back: `make` turns emitted values into their checked record, `Decoder`
reads a log's lines in order, `BatchLines` writes the compact batch lines of schema 2, and
`batch_values`/`fast_make` make a batch's record from the trainer's logs on a fast path that
gives exactly what `make` gives. A wrong value is an EventError naming where, never another
exception."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import time as _time
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..arrays import Packer
from . import checks
from .checks import MAX_INT, EventError
from .records import SCHEMA_VERSION, Batch, Event, Precision, UnknownEvent


def plain(value: Any) -> Any:
    """JSON-safe copy: numpy scalars/arrays to Python, non-finite floats to None."""
    kind = type(value)  # the plain types first, by exact type: most values are these
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is int or kind is str or kind is bool or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


# -- building, encoding, decoding ----------------------------------------------------------------
def _build(event_type: str, record: dict[str, Any], where: str) -> Event:
    """The record of `event_type` from a plain dict (a decoded line or emitted values), checked
    field by field; raises EventError naming `where`."""
    problems = checks.problems_in(record, checks.COMMON)
    if not problems and record.get("v", 0) > SCHEMA_VERSION:
        raise EventError(
            f"{where}: schema version {record['v']} is newer than this nnlib "
            f"reads ({SCHEMA_VERSION})"
        )
    cls = Event.registry.get(event_type, UnknownEvent)
    spec = cls.spec()
    for name, (_, optional) in spec.items():
        if optional and name in record and record[name] is None:
            del record[name]  # null where a field may be left out (EarlyStopping's best_epoch)
    problems += checks.problems_in(record, spec)
    if problems:
        raise EventError(f"{where}: {event_type} event {'; '.join(problems)}")
    record.pop("v", None)
    moment, step = float(record.pop("time", 0.0)), int(record.pop("step", 0))
    declared = {name: record.pop(name) for name in spec if name in record}
    if cls is UnknownEvent:
        declared["kind"] = event_type
    return cls(time=moment, step=step, **declared, extra=record)


def make(event_type: str, step: int, data: Mapping[str, Any], when: float | None = None) -> Event:
    """The record of an emitted event (`trainer.emit(event_type, **data)`), its values made
    JSON-safe and checked as a line read back would be, and kept as its line keeps them (a
    batch line's `precision`, a packed field's `canonical` form: what a run's views show
    live is what its log shows later); EventError if a field is wrong."""
    record = plain(dict(data))
    record.pop("v", None)
    record.pop("type", None)  # the line's own: a value of that name would overwrite it
    record["step"] = int(step)
    record["time"] = round(_time.time(), 3) if when is None else when
    event = _build(event_type, record, f"emitted {event_type!r}")
    kept = {}
    for name, codec in _codec_of(type(event)).items():
        value = getattr(event, name)
        if codec.packer is not None and value is not None:
            kept[name] = codec.packer.canonical(value)
        elif codec.precision is not None and type(value) is float:
            kept[name] = codec.precision.canonical(value)
    return dataclasses.replace(event, **kept) if kept else event


def encode(event_type: str, step: int, data: Mapping[str, Any]) -> str:
    """One events.jsonl line (with the trailing newline) for an event made now, complete in
    itself (a batch line in its long form)."""
    return make(event_type, step, data).line()


@dataclass(frozen=True)
class _Field:
    """What the codec does with a declared field beyond checking it."""

    short: str | None
    precision: Precision | None
    packer: Packer | None


_CODECS: dict[type[Event], dict[str, _Field]] = {}


def _codec_of(cls: type[Event]) -> dict[str, _Field]:
    """The declared fields of `cls` that have a short key, a precision or a packer (worked
    out once per class)."""
    found = _CODECS.get(cls)
    if found is None:
        found = _CODECS[cls] = {
            f.name: _Field(f.metadata["short"], f.metadata["precision"], f.metadata["packer"])
            for f in fields(cls)
            if any(f.metadata.get(key) for key in ("short", "precision", "packer"))
        }
    return found


def packed_fields(cls: type[Event]) -> dict[str, Packer]:
    """The fields of `cls` stored in the run's side file, and their packers."""
    return {name: f.packer for name, f in _codec_of(cls).items() if f.packer is not None}


# -- compact batch lines (schema 2) ------------------------------------------------------------
#: The keys of a compact batch line that are not fields: the step, the milliseconds since the
#: batch line before, the keys that line had and this one has not.
_STEP, _DELTA, _GONE = "b", "t", "x"
#: The value types the fast path takes as they are (any other goes the generic way).
_FAST_FLOATS = frozenset({float, np.float32, np.float64})
#: `json.dumps` with these arguments, made once: json.dumps builds an encoder per call.
_FAST_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


@functools.cache
def _short_keys() -> dict[str, str]:
    """Field name -> its key in a compact batch line (from the Batch record's fields)."""
    return {name: f.short for name, f in _codec_of(Batch).items() if f.short}


@functools.cache
def _long_keys() -> dict[str, str]:
    return {short: name for name, short in _short_keys().items()}


@functools.cache
def _reserved() -> frozenset[str]:
    """Keys a batch's own value may not have for its line to be compact."""
    return frozenset({_STEP, _DELTA, _GONE, "v", "type", "time", "step", *_long_keys()})


@dataclass
class _Previous:
    """The batch line before: its step, its time in milliseconds and its values (as
    `Batch.data` holds them), which the next compact line leaves out where they are equal."""

    step: int
    ms: int
    values: dict[str, Any]

    @classmethod
    def of(cls, event: Event) -> _Previous:
        return cls(event.step, round(event.time * 1000), dict(event.data))

    def next_batch(self, step: int) -> Any:
        """The batch index a line at `step` leaves out: as many batches on as steps."""
        batch = self.values.get("batch")
        return batch + step - self.step if type(batch) is int else None


def _same(a: Any, b: Any) -> bool:
    """Equal and of one type (1, 1.0 and True are three values to a line); lists and
    objects are never left out."""
    return type(a) is type(b) and type(a) in (int, float, str, bool, type(None)) and a == b


class BatchLines:
    """Writes a run's batch lines in the compact form (schema 2), about 45 bytes each:

        {"t":12,"l":0.12345671,"a":0.96875,"s":6053}

    `t` is the milliseconds since the batch line before; `b` the step, where it is not the
    one after that line's; then only the values that differ from that line's (short keys
    for the ones that change every batch: `l` loss, `a` accuracy, `s` samples_per_sec; `x`
    lists keys that line had and this one has not; the batch index only where it is not
    the one before plus the steps between). The first line
    after `reset` (a writer's first, and the first after every point a run summary covers)
    is complete, with its absolute `time` in place of `t`, so that a reader may start there.
    A batch whose own values use one of these keys gets a line in the long form. Floats keep
    their field's Precision (see `make`), times the millisecond.

    The fast path takes plain values as they are (a batch's logs: numpy floats, NaN after a
    divergence) without making the record; anything else goes through `make`, which also
    names what is wrong (EventError)."""

    def __init__(self) -> None:
        self._previous: _Previous | None = None

    def reset(self) -> None:
        """The next line is complete: a reader may start after the lines written so far."""
        self._previous = None

    def line(self, step: int, data: Mapping[str, Any], when: float) -> str:
        """The line of the batch at `step` with these logs, done at `when` (Unix seconds)."""
        when = round(when, 3)
        values = batch_values(step, data, when)
        if values is None:
            values = dict(make("batch", step, data, when).data)
        if not _reserved().isdisjoint(values):
            event = make("batch", step, data, when)
            self._previous = _Previous.of(event)
            return event.line()
        ms, previous = round(when * 1000), self._previous
        self._previous = _Previous(step, ms, values)
        return _FAST_ENCODER.encode(_compact(step, ms, when, values, previous)) + "\n"


def _compact(
    step: int, ms: int, when: float, values: dict[str, Any], previous: _Previous | None
) -> dict[str, Any]:
    """A compact batch line's object: complete without `previous`, else what differs."""
    if previous is None:
        out: dict[str, Any] = {_STEP: step, "time": when}
        before: dict[str, Any] = {}
    else:
        out = {} if step == previous.step + 1 else {_STEP: step}
        out[_DELTA] = ms - previous.ms
        before = {**previous.values, "batch": previous.next_batch(step)}
    codec, short = _codec_of(Batch), _short_keys()
    for key, value in values.items():
        if key in before and _same(before[key], value):
            continue
        field = codec.get(key)
        if field is not None and field.precision is not None and type(value) is float:
            value = field.precision.written(value)
        out[short.get(key, key)] = value
    gone = [key for key in before if key not in values]
    if gone:
        out[_GONE] = gone
    return out


@functools.cache
def _flat_fields() -> tuple[tuple[str, bool, bool, Precision | None], ...]:
    """(name, is an integer, optional, precision) per declared field of a batch, all of which
    are integers or numbers."""
    flat = []
    for name, (check, optional) in Batch.spec().items():
        assert check is checks.integer or check is checks.number_or_null, name
        field = _codec_of(Batch).get(name)
        flat.append((name, check is checks.integer, optional, field.precision if field else None))
    return tuple(flat)


def batch_values(step: int, data: Mapping[str, Any], when: float) -> dict[str, Any] | None:
    """Exactly `make("batch", step, data, when).data`, for logs of plain ints, floats
    (numpy's included), booleans, strings and None; None when this path does not apply and
    the caller takes the generic one. It skips `plain`, the record and the generic checks:
    a batch line cost 22 us that way and 8 us this way (tests/test_perfmon.py checks both
    give the same values)."""
    if type(step) is not int or not 0 <= step <= MAX_INT or _bad_moment(when):
        return None
    values = _plain_scalars(data)
    if values is None:
        return None
    declared: dict[str, Any] = {}
    for name, integer, optional, precision in _flat_fields():
        value = values.pop(name, None)
        if value is None:
            if not optional and (integer or name not in data):
                return None  # missing, or null where an integer must be
            if not optional:
                declared[name] = None
            continue
        if type(value) is not int and (integer or type(value) is not float):
            return None  # a boolean or a string where a number must be
        if integer and value < 0:
            return None
        declared[name] = precision.canonical(value) if precision and type(value) is float else value
    return {**declared, **values}


def fast_make(
    event_type: str, step: int, data: Mapping[str, Any], when: float | None = None
) -> Event:
    """`make(event_type, step, data, when)`, through `batch_values`'s checks where they apply
    (a batch record from the trainer's logs: made for every batch while the app watches)."""
    moment = round(_time.time(), 3) if when is None else when
    values = batch_values(step, data, moment) if event_type == "batch" else None
    if values is None:
        return make(event_type, step, data, when)
    # Filled in as the dataclass's __init__ would (a frozen record without __post_init__):
    # its __init__ took 5 us of a batch record's 7, for values checked just above.
    defaults, named = _filled(Batch)
    event = object.__new__(Batch)
    event.__dict__.update(defaults)
    event.__dict__.update(time=float(moment), step=step)
    event.__dict__.update({name: values.pop(name) for name in named if name in values})
    event.__dict__["extra"] = values
    return event


#: Per record type: its fields that may be left out, at their defaults (None), and its
#: declared fields (the rest go to `extra`). Worked out once per type.
_FILLED: dict[type[Event], tuple[dict[str, Any], tuple[str, ...]]] = {}


def _filled(cls: type[Event]) -> tuple[dict[str, Any], tuple[str, ...]]:
    known = _FILLED.get(cls)
    if known is None:
        defaults = {f.name: f.default for f in fields(cls) if f.default is not MISSING}
        known = _FILLED[cls] = (defaults, tuple(cls.spec()))
    return known


def _bad_moment(when: Any) -> bool:
    if type(when) not in _FAST_FLOATS and type(when) is not int:
        return True
    return not math.isfinite(when)


def _plain_scalars(data: Mapping[str, Any]) -> dict[str, Any] | None:
    """The logs with numpy floats as floats and non-finite ones as None, but for v, type, time
    and step (the line's own); None if a key or value is of any other kind."""
    values: dict[str, Any] = {}
    for key, value in data.items():
        kind = type(value)
        if type(key) is not str:
            return None
        if kind is int:
            if not -MAX_INT <= value <= MAX_INT:
                return None
        elif kind in _FAST_FLOATS:
            value = float(value)
            if not math.isfinite(value):
                value = None
        elif value is not None and kind is not bool and kind is not str:
            return None
        values[key] = value
    for key in ("v", "type", "time", "step"):
        values.pop(key, None)
    return values


class Decoder:
    """Reads a run's lines in order: a compact batch line (BatchLines) is read against the
    batch line before it, which this remembers. A reader that starts mid-log starts at a
    point a run summary covers, after which the first batch line is complete."""

    def __init__(self) -> None:
        self._previous: _Previous | None = None

    def decode(self, line: str, where: str = "events") -> Event:
        """Parse and check one line, every declared field by its type; raises EventError (a
        ValueError) naming `where` on a bad record, and never any other exception."""
        record = _parsed(line, where)
        if "type" not in record:
            event = self._compact(record, where)
        else:
            event_type = record.pop("type", None)
            if not isinstance(event_type, str):
                raise EventError(f"{where}: type must be a string, got {checks.shown(event_type)}")
            event = _build(event_type, record, where)
        if isinstance(event, Batch):
            self._previous = _Previous.of(event)
        return event

    def _compact(self, record: dict[str, Any], where: str) -> Event:
        previous = self._previous
        following = None if previous is None else previous.step + 1
        step = record.pop(_STEP, following)
        delta, gone = record.pop(_DELTA, None), record.pop(_GONE, [])
        if "time" in record or previous is None:
            if "time" not in record:
                raise EventError(
                    f"{where}: a batch line that goes on from the one before it, which was "
                    "not read (read the log from its start)"
                )
            values: dict[str, Any] = {}
        elif type(delta) is not int or type(step) is not int:
            raise EventError(f"{where}: a compact batch line needs an integer b and t")
        else:
            values = {**previous.values, "batch": previous.next_batch(step)}
            values["time"] = (previous.ms + delta) / 1000
        if not isinstance(gone, list) or not all(isinstance(key, str) for key in gone):
            raise EventError(f"{where}: x must be a list of keys, got {checks.shown(gone)}")
        for key in gone:
            values.pop(key, None)
        long = _long_keys()
        values.update((long.get(key, key), value) for key, value in record.items())
        for name, codec in _codec_of(Batch).items():
            value = values.get(name)
            if codec.precision is not None and type(value) is float:
                values[name] = codec.precision.canonical(value)
        values.pop("v", None)
        return _build("batch", {**values, "step": step}, where)


def _parsed(line: str, where: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise EventError(f"{where}: not valid JSON ({error.msg})") from None
    except (ValueError, RecursionError) as error:  # a huge integer; nesting too deep
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise EventError(f"{where}: not a readable JSON line ({reason})") from None
    if not isinstance(record, dict) or not (
        "type" in record or _STEP in record or _DELTA in record
    ):
        raise EventError(f"{where}: not an event record")
    return record


def decode(line: str, where: str = "events") -> Event:
    """One line read on its own (`Decoder` reads a log's lines in order): a batch line that
    goes on from the one before it is an EventError."""
    return Decoder().decode(line, where)
