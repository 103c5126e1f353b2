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

#: The types a JSON line holds as they are.
_AS_IS = frozenset({int, str, bool, type(None)})


def plain(value: Any) -> Any:
    """JSON-safe copy: numpy scalars/arrays to Python, non-finite floats to None."""
    kind = type(value)  # the plain types first, by exact type: most values are these
    if kind in _AS_IS:
        return value
    if kind is float:
        return _finite(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray | np.generic):  # an array or a scalar: its Python value
        return plain(value.tolist())
    return _plain_scalar(value)


def _plain_scalar(value: Any) -> Any:
    """A value that is not plain JSON, a container nor numpy's (`plain`'s last step): a
    non-finite float as None, a path as its text, else `value`."""
    if isinstance(value, float):
        return _finite(value)
    return str(value) if isinstance(value, Path) else value


def _finite(value: float) -> float | None:
    """A float as a line holds it: JSON has no NaN or infinity, a non-finite one is null."""
    return value if math.isfinite(value) else None


# -- building, encoding, decoding ----------------------------------------------------------------
def _build(event_type: str, record: dict[str, Any], where: str) -> Event:
    """The record of `event_type` from a plain dict (a decoded line or emitted values), checked
    field by field; raises EventError naming `where`."""
    cls = Event.registry.get(event_type, UnknownEvent)
    _check(cls, event_type, record, where)
    record.pop("v", None)
    moment, step = float(record.pop("time", 0.0)), int(record.pop("step", 0))
    declared = {name: record.pop(name) for name in cls.spec() if name in record}
    if cls is UnknownEvent:
        declared["kind"] = event_type
    return cls(time=moment, step=step, **declared, extra=record)


def _check(cls: type[Event], event_type: str, record: dict[str, Any], where: str) -> None:
    """Check a plain dict's common fields and `cls`'s before the record is made of it (what is
    wrong, all of it, in one EventError naming `where`); a field that may be left out and is
    null goes (EarlyStopping's best_epoch)."""
    problems = checks.problems_in(record, checks.COMMON)
    if not problems and record.get("v", 0) > SCHEMA_VERSION:
        raise EventError(
            f"{where}: schema version {record['v']} is newer than this nnlib "
            f"reads ({SCHEMA_VERSION})"
        )
    problems += checks.problems_in(_without_nulls(record, cls.spec()), cls.spec())
    if problems:
        raise EventError(f"{where}: {event_type} event {'; '.join(problems)}")


def _without_nulls(record: dict[str, Any], spec: checks.Spec) -> dict[str, Any]:
    """`record` (changed in place) without the fields `spec` lets be left out that are null:
    a line writes a value it did not have (EarlyStopping's best_epoch) as null."""
    for name, (_, optional) in spec.items():
        if optional and record.get(name, 0) is None:
            del record[name]
    return record


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
    kept = {
        name: codec.kept(getattr(event, name)) for name, codec in _codec_of(type(event)).items()
    }
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

    def kept(self, value: Any) -> Any:
        """The value as a record keeps it, however it came (emitted, or read from a line): a
        packed field in the form its blocks read back as, a float at its precision."""
        if self.packer is not None and value is not None:
            return self.packer.canonical(value)
        if self.precision is not None and type(value) is float:
            return self.precision.canonical(value)
        return value

    def written(self, value: Any) -> Any:
        """The value as a compact batch line writes it: a float in its precision's shortest
        text."""
        if self.precision is not None and type(value) is float:
            return self.precision.written(value)
        return value


#: A field the codec does nothing with beyond checking it.
_PLAIN = _Field(None, None, None)

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
_FAST_NUMBERS = _FAST_FLOATS | {int}
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

    def going_on(self, step: int) -> dict[str, Any]:
        """The values a compact line at `step` goes on from (its writer leaves out those it
        equals, its reader fills them in): this line's, the batch index moved on as many
        batches as steps."""
        batch = self.values.get("batch")
        return {**self.values, "batch": batch + step - self.step if type(batch) is int else None}


def _position(
    step: int, ms: int, when: float, previous: _Previous | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Where a compact line is, and the values it goes on from: a complete line (no
    `previous`) has its step and absolute time and goes on from nothing; a line after
    another, its milliseconds since that one and its step where it is not the next."""
    if previous is None:
        return {_STEP: step, "time": when}, {}
    out: dict[str, Any] = {} if step == previous.step + 1 else {_STEP: step}
    out[_DELTA] = ms - previous.ms
    return out, previous.going_on(step)


#: A value the line before did not have: never the same as any value of this one.
_ABSENT = object()


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
    out, before = _position(step, ms, when, previous)
    codec, short = _codec_of(Batch), _short_keys()
    for key, value in values.items():
        if not _same(before.get(key, _ABSENT), value):
            out[short.get(key, key)] = codec.get(key, _PLAIN).written(value)
    gone = [key for key in before if key not in values]
    if gone:
        out[_GONE] = gone
    return out


@functools.cache
def _flat_fields() -> tuple[tuple[str, bool, bool, _Field], ...]:
    """(name, is an integer, optional, what the codec does with it) per declared field of a
    batch, all of which are integers or numbers."""
    flat = []
    for name, (check, optional) in Batch.spec().items():
        assert check is checks.integer or check is checks.number_or_null, name
        flat.append((name, check is checks.integer, optional, _codec_of(Batch).get(name, _PLAIN)))
    return tuple(flat)


def batch_values(step: int, data: Mapping[str, Any], when: float) -> dict[str, Any] | None:
    """Exactly `make("batch", step, data, when).data`, for logs of plain ints, floats
    (numpy's included), booleans, strings and None; None when this path does not apply and
    the caller takes the generic one. It skips `plain`, the record and the generic checks:
    a batch line cost 22 us that way and 8 us this way (tests/test_perfmon.py checks both
    give the same values)."""
    if checks.integer(step) is not None or _bad_moment(when):
        return None
    values = _plain_scalars(data)
    return None if values is None else _declared_first(values, data)


def _declared_first(values: dict[str, Any], data: Mapping[str, Any]) -> dict[str, Any] | None:
    """A batch's plain `values` (its logs `data` made plain) with its declared fields first,
    each checked and kept as its record keeps it; None if one does not fit."""
    declared: dict[str, Any] = {}
    for name, integer, optional, codec in _flat_fields():
        value = values.pop(name, None)
        if value is None and optional:
            continue
        if not _fits(value, integer, name in data):
            return None
        declared[name] = codec.kept(value)
    return {**declared, **values}


def _fits(value: Any, integer: bool, given: bool) -> bool:
    """Whether a declared batch field's plain value (None: missing, null or not finite) is
    what its check takes, as `batch_values` meets it (an optional one left out before): a
    non-negative int where an integer must be; an int, a float, or null where it was
    given, where a number must be; never a boolean or a string."""
    if value is None:
        return given and not integer
    if integer:
        return type(value) is int and value >= 0
    return type(value) in (int, float)


def fast_make(
    event_type: str, step: int, data: Mapping[str, Any], when: float | None = None
) -> Event:
    """`make(event_type, step, data, when)`, through `batch_values`'s checks where they apply
    (a batch record from the trainer's logs: made for every batch while the app watches)."""
    moment = round(_time.time(), 3) if when is None else when
    values = batch_values(step, data, moment) if event_type == "batch" else None
    if values is None:
        return make(event_type, step, data, when)
    return _batch_record(step, values, moment)


def _batch_record(step: int, values: dict[str, Any], moment: float) -> Batch:
    """The Batch record of values `batch_values` checked, filled in as the dataclass's
    __init__ would (a frozen record without __post_init__): its __init__ took 5 us of a
    batch record's 7, for values already checked."""
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
    return type(when) not in _FAST_NUMBERS or not math.isfinite(when)


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
            value = _finite(float(value))
        elif kind not in _AS_IS:
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
            event_type = _checked(record.pop("type"), checks.string, "type", where)
            event = _build(event_type, record, where)
        if isinstance(event, Batch):
            self._previous = _Previous.of(event)
        return event

    def _compact(self, record: dict[str, Any], where: str) -> Event:
        step, values = self._going_on(record, where)
        for key in _checked(record.pop(_GONE, []), _KEY_LIST, _GONE, where):
            values.pop(key, None)
        long = _long_keys()
        values.update((long.get(key, key), value) for key, value in record.items())
        for name, codec in _codec_of(Batch).items():
            if name in values:
                values[name] = codec.kept(values[name])
        values.pop("v", None)
        return _build("batch", {**values, "step": step}, where)

    def _going_on(self, record: dict[str, Any], where: str) -> tuple[Any, dict[str, Any]]:
        """A compact line's step, and the values it goes on from: none for a complete line
        (it has its `time`), else the batch line before's, the batch index and the time
        moved on (its `b` and `t` taken from `record`)."""
        previous = self._previous
        step = record.pop(_STEP, None if previous is None else previous.step + 1)
        delta = record.pop(_DELTA, None)
        if "time" in record:
            return step, {}
        if previous is None:
            raise EventError(
                f"{where}: a batch line that goes on from the one before it, which was "
                "not read (read the log from its start)"
            )
        if type(delta) is not int or type(step) is not int:
            raise EventError(f"{where}: a compact batch line needs an integer b and t")
        values = previous.going_on(step)
        values["time"] = (previous.ms + delta) / 1000
        return step, values


#: The check of a compact line's `x`.
_KEY_LIST = checks.list_of(checks.string, "keys")


def _checked(value: Any, check: checks.Check, name: str, where: str) -> Any:
    """`value` if `check` takes it, else an EventError naming `where`, the key `name` and
    what was expected (the words a record's field gets from `checks.problems_in`)."""
    expected = check(value)
    if expected is not None:
        raise EventError(f"{where}: {name} must be {expected}, got {checks.shown(value)}")
    return value


def _parsed(line: str, where: str) -> dict[str, Any]:
    """The JSON object of an event line: a complete record (its `type`) or a compact batch
    line (its step or time moved on)."""
    record = _json(line, where)
    if not isinstance(record, dict) or record.keys().isdisjoint(("type", _STEP, _DELTA)):
        raise EventError(f"{where}: not an event record")
    return record


def _json(line: str, where: str) -> Any:
    """The JSON value of a line; whatever keeps it from being read (bad JSON, a huge
    integer, nesting too deep) is one EventError naming `where`."""
    try:
        return json.loads(line)
    except json.JSONDecodeError as error:
        raise EventError(f"{where}: not valid JSON ({error.msg})") from None
    except (ValueError, RecursionError) as error:  # a huge integer; nesting too deep
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise EventError(f"{where}: not a readable JSON line ({reason})") from None


def decode(line: str, where: str = "events") -> Event:
    """One line read on its own (`Decoder` reads a log's lines in order): a batch line that
    goes on from the one before it is an EventError."""
    return Decoder().decode(line, where)
