"""The run-log events, defined once: a frozen dataclass per event type with its fields and
their types, its JSON line, and one line of text (`describe`).

Everything that writes or reads a run uses these records: the RunLogger, `runs.read`/`follow`/
`EventTail`, the ProgressBar, `nnlib runs`, and the app's bridge and replay. A callback keeps
emitting `trainer.emit("type", field=value, ...)`; `make` turns that into the typed record and
checks it, and `decode` checks a line read back by the same rules (strict: a wrong type is an
EventError naming where, never another exception). A new event type is a subclass here:

    @dataclass(frozen=True, kw_only=True)
    class Boundary(Event):
        \"\"\"The model's decision over a grid of the input plane.\"\"\"
        TYPE = "boundary"
        grid: list = field_of(_grid)

Fields beyond the declared ones (a callback's own metrics, the optimizer's settings) are kept
in `extra`. A line of an unknown type (from a later schema) reads as an `UnknownEvent`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import time as _time
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ._memory import human_bytes
from .arrays import (
    ARRAYS_FILE,
    F32_MAX,
    FILTERS,
    HISTOGRAMS,
    MAPS,
    UINTS,
    Packer,
    float32,
    is_packed,
    is_ref,
)

#: The version every line is written with; lines of this version and older read. Version 2:
#: compact batch lines (`BatchLines`) and big fields packed into the side file (nnlib.arrays).
SCHEMA_VERSION = 2
#: The largest integer a run log may hold (step, epoch, counts): an int64.
MAX_INT = 2**63 - 1


class EventError(ValueError):
    """A run-log line (or an emitted event) that is not a valid event; the message starts
    with where it is (file:line)."""


# -- checks: each returns None when the value is fine, else the words for what was expected ------
Check = Callable[[Any], "str | None"]


def _int(value: Any) -> str | None:
    ok = type(value) is int and 0 <= value <= MAX_INT
    return None if ok else "a non-negative integer"


def _number(value: Any) -> str | None:
    """A finite JSON number (not a boolean); integers beyond a float's range are refused."""
    if type(value) is int:
        return None if abs(value) <= MAX_INT else "a number"
    ok = type(value) is float and math.isfinite(value)
    return None if ok else "a number"


def _number_or_null(value: Any) -> str | None:
    """Non-finite numbers are written as null, so measured values may be null."""
    return None if value is None or _number(value) is None else "a number or null"


def _str(value: Any) -> str | None:
    return None if isinstance(value, str) else "a string"


def _str_or_null(value: Any) -> str | None:
    return None if value is None or isinstance(value, str) else "a string or null"


def _object(value: Any) -> str | None:
    return None if isinstance(value, dict) else "an object"


def _scalar(value: Any) -> str | None:
    ok = value is None or isinstance(value, str | bool) or _number(value) is None
    return None if ok else "a number, string, boolean or null"


def _list_of(check: Check, what: str) -> Check:
    def check_list(value: Any) -> str | None:
        ok = isinstance(value, list) and all(check(item) is None for item in value)
        return None if ok else f"a list of {what}"

    return check_list


#: A field's check and whether it may be left out, keyed by name.
Spec = dict[str, tuple[Check, bool]]

_HISTOGRAM: Spec = {
    "lo": (_number, False),
    "hi": (_number, False),
    "counts": (_list_of(_int, "non-negative integers"), False),
    "percentiles": (_list_of(_number, "numbers"), False),
    "nonfinite": (_int, True),
}


def _histogram(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "a histogram object"
    problems = _problems(value, _HISTOGRAM)
    return f"a histogram object ({problems[0]})" if problems else None


_LAYER: Spec = {
    "weights": (_histogram, True),
    "grads": (_histogram, True),
    "grad_norm": (_number_or_null, True),
    "update_ratio": (_number_or_null, True),
    "dead_fraction": (_number_or_null, True),
}


def _layers(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "an object of layers"
    for name, entry in value.items():
        if not isinstance(entry, dict):
            return f"an object of layers (layer {name!r} is not an object)"
        problems = _problems(entry, _LAYER)
        if problems:
            return f"an object of layers (layer {name!r}: {problems[0]})"
    return None


def _matrix(value: Any) -> str | None:
    """A square matrix of counts (rows true, columns predicted)."""
    expected = "a square list of lists of non-negative integers"
    if not isinstance(value, list) or not value:
        return expected
    rows = _list_of(_int, "counts")
    ok = all(isinstance(row, list) and len(row) == len(value) and not rows(row) for row in value)
    return None if ok else expected


def _grid(value: Any) -> str | None:
    """A non-empty rectangular list of lists of counts."""
    expected = "a non-empty rectangular list of lists of non-negative integers"
    if not isinstance(value, list) or not value or not isinstance(value[0], list):
        return expected
    rows = _list_of(_int, "counts")
    ok = all(isinstance(row, list) and len(row) == len(value[0]) and not rows(row) for row in value)
    return None if ok and value[0] else expected


_COMMON: Spec = {"v": (_int, True), "time": (_number, True), "step": (_int, True)}


def _problems(record: Mapping[str, Any], spec: Spec) -> list[str]:
    """What is wrong with `record` under `spec`: missing fields first, then bad values."""
    missing = [name for name, (_, optional) in spec.items() if not optional and name not in record]
    if missing:
        return [f"lacks {', '.join(missing)}"]
    problems = []
    for name, (check, _) in spec.items():
        if name in record:
            expected = check(record[name])
            if expected is not None:
                problems.append(f"{name} must be {expected}, got {_shown(record[name])}")
    return problems


def _shown(value: Any) -> str:
    """A short, one-line picture of a bad value for a message."""
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


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


@dataclass(frozen=True)
class Precision:
    """How much of a float field a compact batch line keeps (`BatchLines`): `canonical` is
    the value a record holds (what `make` and the reader make of any value; idempotent),
    `written` the float with the shortest text that reads back to that value."""

    name: str
    canonical: Callable[[float], float]
    written: Callable[[float], float]


def _float32_text(value: float) -> float:
    """The float32's shortest digits (at most 9), read as a float, when they read back to it
    (a value beyond float32's range is written in full)."""
    kept = float32(value)
    short = float(str(np.float32(kept))) if abs(kept) <= F32_MAX else kept
    return short if float32(short) == kept else kept


def _significant(value: float) -> float:
    return float(f"{value:.7g}")


#: float32 precision: exact for what a float32 model computes (its loss), 7.2 digits else.
FLOAT32 = Precision("float32", float32, _float32_text)
#: 7 significant digits (relative error at most 5e-7): durations.
SIGNIFICANT = Precision("7 significant digits", _significant, _significant)


def _rate(value: float) -> float:
    return float(f"{value:.4g}")


#: 4 significant digits (relative error at most 5e-4): a speed, which an epoch-to-date mean
#: then keeps from one batch line to the next (and the line leaves out).
RATE = Precision("4 significant digits", _rate, _rate)


def field_of(
    check: Check,
    optional: bool = False,
    *,
    short: str | None = None,
    precision: Precision | None = None,
    packer: Packer | None = None,
) -> Any:
    """A declared event field: its check, and whether a line may leave it out (then None);
    for a batch line's field, its `short` key and `precision` in a compact line (BatchLines);
    for a big field, the `packer` that stores it in the run's side file (nnlib.arrays)."""
    meta = {"check": _or_packed(check, packer) if packer else check, "optional": optional}
    meta |= {"short": short, "precision": precision, "packer": packer}
    return field(default=None, metadata=meta) if optional else field(metadata=meta)


def _or_packed(check: Check, packer: Packer) -> Check:
    """`check`, or a field stored by `packer` in the side file (its blocks read later)."""

    def check_or_packed(value: Any) -> str | None:
        return None if is_packed(value, packer.name) else check(value)

    return check_or_packed


# -- the records -------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Event:
    """One line of a run log: `step` is the number of batches done when it happened, `time`
    Unix seconds (not compared: a live event and its line read back are equal)."""

    TYPE: ClassVar[str] = ""
    registry: ClassVar[dict[str, type[Event]]] = {}

    step: int = 0
    time: float = field(default=0.0, compare=False)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        kind = cls.__dict__.get("TYPE")
        if kind:
            if kind in Event.registry:
                raise TypeError(f"event type {kind!r} is taken by {Event.registry[kind].__name__}")
            Event.registry[kind] = cls

    @property
    def type(self) -> str:
        return self.TYPE

    @classmethod
    def spec(cls) -> Spec:
        """The declared fields: name -> (check, optional); worked out once per class (read
        for every line written and read: `dataclasses.fields` was a fifth of a line's cost)."""
        return _spec_of(cls)

    @functools.cached_property
    def data(self) -> dict[str, Any]:
        """The fields as written: declared ones (an optional one only when set), then extra.
        Made once per record (the run index reads a log's events through `get`): read it,
        do not change it."""
        declared = {
            name: getattr(self, name)
            for name, (_, optional) in self.spec().items()
            if not optional or getattr(self, name) is not None
        }
        return {**declared, **self.extra}

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def line(self) -> str:
        """The events.jsonl line (with its newline)."""
        record = {"v": SCHEMA_VERSION, "type": self.type, "time": self.time, "step": self.step}
        return json.dumps({**record, **self.data}, separators=(",", ":"), allow_nan=False) + "\n"

    def describe(self) -> str:
        """One line of text for a person: the CLI, the progress bar and the app's log."""
        return "  ".join(f"{k}={v}" for k, v in self.data.items())


_SPECS: dict[type[Event], Spec] = {}


def _spec_of(cls: type[Event]) -> Spec:
    spec = _SPECS.get(cls)
    if spec is None:
        spec = _SPECS[cls] = {
            f.name: (f.metadata["check"], f.metadata["optional"])
            for f in fields(cls)
            if "check" in f.metadata
        }
    return spec


def _epoch(epoch: int | None) -> str:
    return "?" if epoch is None else str(epoch + 1)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def format_metrics(logs: Mapping[str, Any], sep: str = "  ") -> str:
    """'loss 0.1234  acc 97.1%  val_loss ...' from whichever metrics the logs hold, `sep`
    between them."""
    parts = []
    for key, label in (
        ("loss", "loss"),
        ("accuracy", "acc"),
        ("val_loss", "val_loss"),
        ("val_accuracy", "val_acc"),
    ):
        value = logs.get(key)
        if value is not None:
            parts.append(f"{label} {value:.1%}" if "acc" in key else f"{label} {value:.4f}")
    return sep.join(parts)


def _metrics() -> dict[str, Any]:
    """The measured numbers a batch or epoch line may hold (null when not finite)."""
    return {
        name: field_of(_number_or_null, optional=True)
        for name in ("accuracy", "val_loss", "val_accuracy", "lr", "seconds", "samples_per_sec")
    }


@dataclass(frozen=True, kw_only=True)
class RunStart(Event):
    """The run began: its directory and its config (as in config.json)."""

    TYPE = "run_start"
    run: str = field_of(_str)
    config: dict = field_of(_object)

    def describe(self) -> str:
        return f"run started in {self.run}"


@dataclass(frozen=True, kw_only=True)
class Batch(Event):
    """One training batch: its loss and the hyperparameters in force."""

    TYPE = "batch"
    epoch: int = field_of(_int)
    batch: int = field_of(_int)
    loss: float | None = field_of(_number_or_null, short="l", precision=FLOAT32)
    batch_size: int | None = field_of(_int, optional=True)
    accuracy: float | None = field_of(_number_or_null, optional=True, short="a")
    val_loss: float | None = field_of(_number_or_null, optional=True, precision=FLOAT32)
    val_accuracy: float | None = field_of(_number_or_null, optional=True)
    lr: float | None = field_of(_number_or_null, optional=True)
    seconds: float | None = field_of(_number_or_null, optional=True, precision=SIGNIFICANT)
    samples_per_sec: float | None = field_of(
        _number_or_null, optional=True, short="s", precision=RATE
    )

    def describe(self) -> str:
        return f"epoch {self.epoch + 1} batch {self.batch + 1}  {format_metrics(self.data)}"


@dataclass(frozen=True, kw_only=True)
class Epoch(Event):
    """One epoch: mean training metrics, validation metrics, time and speed."""

    TYPE = "epoch"
    epoch: int = field_of(_int)
    loss: float | None = field_of(_number_or_null)
    accuracy: float | None = field_of(_number_or_null, optional=True)
    val_loss: float | None = field_of(_number_or_null, optional=True)
    val_accuracy: float | None = field_of(_number_or_null, optional=True)
    lr: float | None = field_of(_number_or_null, optional=True)
    seconds: float | None = field_of(_number_or_null, optional=True)
    samples_per_sec: float | None = field_of(_number_or_null, optional=True)

    def describe(self) -> str:
        return f"epoch {self.epoch + 1}  {format_metrics(self.data)}"


@dataclass(frozen=True, kw_only=True)
class Histograms(Event):
    """Per layer: {weights, [grads], [grad_norm], [update_ratio], [dead_fraction]}; a
    histogram is {lo, hi, counts, percentiles, [nonfinite]}."""

    TYPE = "histograms"
    layers: dict = field_of(_layers, packer=HISTOGRAMS)
    epoch: int | None = field_of(_int, optional=True)
    batch: int | None = field_of(_int, optional=True)

    def describe(self) -> str:
        return f"histograms of {len(self.layers)} layers"


@dataclass(frozen=True, kw_only=True)
class Confusion(Event):
    """The validation confusion matrix (rows true, columns predicted)."""

    TYPE = "confusion"
    matrix: list = field_of(_matrix)
    epoch: int | None = field_of(_int, optional=True)
    precision: list | None = field_of(_list_of(_number, "numbers"), optional=True)
    recall: list | None = field_of(_list_of(_number, "numbers"), optional=True)
    class_names: list | None = field_of(_list_of(_str, "strings"), optional=True)

    def describe(self) -> str:
        total = sum(map(sum, self.matrix))
        correct = sum(row[i] for i, row in enumerate(self.matrix))
        share = f"{correct / total:.1%}" if total else "-"
        return f"validation, epoch {_epoch(self.epoch)}: accuracy {share} of {total:,}"


@dataclass(frozen=True, kw_only=True)
class Regression(Event):
    """Predicted against true on the validation set: a 2-D histogram (rows: predicted, high to
    low; columns: true, low to high) over one shared range [lo, hi], R² and the mean absolute
    error (null when not finite)."""

    TYPE = "regression"
    counts: list = field_of(_grid)
    lo: float = field_of(_number)
    hi: float = field_of(_number)
    r2: float | None = field_of(_number_or_null)
    mae: float | None = field_of(_number_or_null)
    epoch: int | None = field_of(_int, optional=True)

    def describe(self) -> str:
        r2 = "-" if self.r2 is None else f"{self.r2:.3f}"
        mae = "-" if self.mae is None else f"{self.mae:.4g}"
        return f"validation, epoch {_epoch(self.epoch)}: R² {r2}  MAE {mae}"


@dataclass(frozen=True, kw_only=True)
class Hparam(Event):
    """A hyperparameter changed: `applies` is "next batch" or "next epoch"."""

    TYPE = "hparam"
    name: str = field_of(_str)
    old: Any = field_of(_scalar)
    new: Any = field_of(_scalar)
    applies: str | None = field_of(_str, optional=True)
    source: str | None = field_of(_str, optional=True)  # "app", "remote", "signal", "script"

    def describe(self) -> str:
        text = f"{self.name}: {self.old} -> {self.new} (applies {self.applies or 'next batch'})"
        return text + _by(self.source)


def _by(source: str | None) -> str:
    """Where a request came from, for requests that did not come from the script itself."""
    return f" [{source}]" if source and source != "script" else ""


@dataclass(frozen=True, kw_only=True)
class Pause(Event):
    """The training thread parked at a batch boundary."""

    TYPE = "pause"
    source: str | None = field_of(_str, optional=True)

    def describe(self) -> str:
        return "paused" + _by(self.source)


@dataclass(frozen=True, kw_only=True)
class Resume(Event):
    """The training thread went on."""

    TYPE = "resume"
    source: str | None = field_of(_str, optional=True)

    def describe(self) -> str:
        return "resumed" + _by(self.source)


@dataclass(frozen=True, kw_only=True)
class Stop(Event):
    """A stop request the training thread acted on; the run's end event follows."""

    TYPE = "stop"
    reason: str = field_of(_str)
    source: str | None = field_of(_str, optional=True)

    def describe(self) -> str:
        return f"stop requested ({self.reason})" + _by(self.source)


def pace_text(pace: float | None) -> str:
    """A pace for a person: "5 ep/s", or "full speed" for none."""
    return "full speed" if pace is None else f"{pace:g} ep/s"


@dataclass(frozen=True, kw_only=True)
class Pace(Event):
    """The run's pace changed: at most `new` epochs a second (null: full speed), kept by
    waiting at batch boundaries; what is trained is the same at any pace."""

    TYPE = "pace"
    old: float | None = field_of(_number_or_null)
    new: float | None = field_of(_number_or_null)
    source: str | None = field_of(_str, optional=True)

    def describe(self) -> str:
        return f"pace: {pace_text(self.old)} -> {pace_text(self.new)}" + _by(self.source)


@dataclass(frozen=True, kw_only=True)
class RunResume(Event):
    """A run continued from a checkpoint (`nnlib train --resume`, or a fork's first event
    after its run_start). Events logged earlier with a step above `from_step` were lost with
    the process that wrote them and are redone after this line; so is what the earlier
    attempt reported at `from_step` about its unfinished epoch, and its end: a reader drops
    them (`nnlib.runs.continued`)."""

    TYPE = "run_resume"
    from_step: int = field_of(_int)
    epoch: int | None = field_of(_int, optional=True)
    batch: int | None = field_of(_int, optional=True)
    checkpoint: str | None = field_of(_str, optional=True)
    parent: dict[str, Any] | None = field_of(_object, optional=True)

    def describe(self) -> str:
        where = f" ({Path(self.checkpoint).name})" if self.checkpoint else ""
        return f"resumed from step {self.from_step}{where}"


@dataclass(frozen=True, kw_only=True)
class Checkpoint(Event):
    """A model file was written: why (best, every N, end) and the monitored value."""

    TYPE = "checkpoint"
    path: str = field_of(_str)
    epoch: int | None = field_of(_int, optional=True)
    reason: str | None = field_of(_str, optional=True)
    monitor: str | None = field_of(_str, optional=True)
    value: float | None = field_of(_number_or_null, optional=True)

    def describe(self) -> str:
        return f"checkpoint ({self.reason}): {Path(self.path).name}"


@dataclass(frozen=True, kw_only=True)
class EarlyStop(Event):
    """EarlyStopping ended the run: `monitor` has not improved since `best_epoch`."""

    TYPE = "early_stop"
    monitor: str = field_of(_str)
    best: float | None = field_of(_number_or_null, optional=True)
    best_epoch: int | None = field_of(_int, optional=True)
    epoch: int | None = field_of(_int, optional=True)

    def describe(self) -> str:
        if self.best_epoch is None:
            return f"early stop: {self.monitor} never improved"
        return f"early stop: {self.monitor} has not improved since epoch {self.best_epoch + 1}"


@dataclass(frozen=True, kw_only=True)
class Diverged(Event):
    """The loss became non-finite (null) or too large; the run stops."""

    TYPE = "diverged"
    loss: float | None = field_of(_number_or_null)
    epoch: int | None = field_of(_int, optional=True)
    batch: int | None = field_of(_int, optional=True)

    def describe(self) -> str:
        where = f"epoch {_epoch(self.epoch)}, batch {_epoch(self.batch)}"
        if self.loss is None:  # its update was skipped
            return (
                f"diverged: loss is not finite ({where}; weights kept from the last finite "
                f"step) at step {self.step}"
            )
        return f"diverged: loss is {self.loss:.4g} ({where}) at step {self.step}"


@dataclass(frozen=True, kw_only=True)
class Pruned(Event):
    """A sweep trial stopped early: its best so far was behind the median of the finished
    trials at this epoch (median stopping); its end event follows with reason early_stop."""

    TYPE = "pruned"
    monitor: str = field_of(_str)
    value: float | None = field_of(_number_or_null)
    median: float | None = field_of(_number_or_null)
    epoch: int = field_of(_int)

    def describe(self) -> str:
        return (
            f"pruned at epoch {_epoch(self.epoch)}: {self.monitor} {_num(self.value)} behind "
            f"the median {_num(self.median)} of the finished trials"
        )


@dataclass(frozen=True, kw_only=True)
class End(Event):
    """The run ended: reason is finished, stopped, early_stop, diverged, interrupted or
    error (with the error). A log that could not take it (a full disk) has it in the run's
    .writer.lock, where readers find it."""

    TYPE = "end"
    reason: str = field_of(_str)
    error: str | None = field_of(_str_or_null, optional=True)
    epoch: int | None = field_of(_int, optional=True)

    def describe(self) -> str:
        return f"run ended: {self.reason}" + (f" ({self.error})" if self.error else "")


@dataclass(frozen=True, kw_only=True)
class UnknownEvent(Event):
    """A type this nnlib does not define (a later schema, a callback's own): kept as is."""

    kind: str = ""

    @property
    def type(self) -> str:
        return self.kind

    def describe(self) -> str:
        return f"{self.kind} {super().describe()}".rstrip()


# -- building, encoding, decoding ----------------------------------------------------------------
def _build(event_type: str, record: dict[str, Any], where: str) -> Event:
    """The record of `event_type` from a plain dict (a decoded line or emitted values), checked
    field by field; raises EventError naming `where`."""
    problems = _problems(record, _COMMON)
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
    problems += _problems(record, spec)
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
    for name, (check, optional) in _spec_of(Batch).items():
        assert check is _int or check is _number_or_null, name
        field = _codec_of(Batch).get(name)
        flat.append((name, check is _int, optional, field.precision if field else None))
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
                raise EventError(f"{where}: type must be a string, got {_shown(event_type)}")
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
            raise EventError(f"{where}: x must be a list of keys, got {_shown(gone)}")
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


def reference() -> str:
    """The README's list of event types and their fields ([optional]), made from the records."""
    lines = []
    for kind, cls in Event.registry.items():
        names = [f"[{name}]" if optional else name for name, (_, optional) in cls.spec().items()]
        lines.append(f"- `{kind}` {', '.join(names) or '(no fields)'}: {_doc(cls)}")
    return "\n".join(lines)


def _doc(cls: type[Event]) -> str:
    return " ".join((cls.__doc__ or "").split())


# -- views of the input plane and diagnostics (issue 10) ----------------------------------------
#: The characters a raster row is written with: a value 0..63 is one character; "." is none.
RASTER_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"
#: No value in this cell (no data point, no finite prediction).
RASTER_EMPTY = "."
#: The largest raster, rows and columns (a boundary grid stays small: at most 64x64).
RASTER_MAX = 64
#: Neurons shown per layer, at most (a layer of 2-32-32-3 and twice that; the panel pages).
NEURONS_MAX = 64
#: Hidden layers a boundary event carries neurons for, at most (a deeper model's first ones).
NEURON_LAYERS_MAX = 64
#: Activation-map cells of all units of one event together, at most: 36 units of 16x16, 64
#: of 12x12 (2-32-32-3), 256 of 6x6; the maps get coarser as units grow, which bounds an
#: event's size.
NEURON_CELLS_MAX = 64 * 12 * 12
#: Incoming weights of all units of one event together, at most (2-32-32-3 sends 1,088).
NEURON_WEIGHTS_MAX = 4096
_RASTER_CHARS = frozenset(RASTER_ALPHABET + RASTER_EMPTY)


def _raster(value: Any) -> str | None:
    """Rows of equal length (1..64 each way), one character per cell from RASTER_ALPHABET
    or "." (a 64x64 grid is 4 kB of JSON rather than 8-16 kB as a list of lists)."""
    expected = f"1 to {RASTER_MAX} equal strings of 1 to {RASTER_MAX} characters 0-9a-zA-Z-_ or ."
    if not isinstance(value, list) or not 0 < len(value) <= RASTER_MAX:
        return expected
    if not all(isinstance(row, str) for row in value):
        return expected
    width = len(value[0])
    ok = 0 < width <= RASTER_MAX and all(
        len(row) == width and _RASTER_CHARS.issuperset(row) for row in value
    )
    return None if ok else expected


def _pair(value: Any) -> str | None:
    ok = isinstance(value, list) and len(value) == 2 and all(_number(v) is None for v in value)
    return None if ok else "a list of two numbers"


def _one_of(*choices: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in choices else f"one of {', '.join(choices)}"

    return check


_UNIT: Spec = {
    "map": (_raster, False),
    "scale": (_number, False),
    "bias": (_number, False),
    "weights": (_list_of(_number, "numbers"), True),
}


def _neurons(value: Any) -> str | None:
    """At most NEURON_LAYERS_MAX layers of at most NEURONS_MAX units, each {map, scale,
    bias, [weights]}; the maps' cells and the weights of all units within their totals."""
    expected = (
        f"a list of at most {NEURON_LAYERS_MAX} {{layer, units}} objects with 1 to "
        f"{NEURONS_MAX} units each"
    )
    if not isinstance(value, list) or len(value) > NEURON_LAYERS_MAX:
        return expected
    cells = weights = 0
    for entry in value:
        if not isinstance(entry, dict) or _str(entry.get("layer")) is not None:
            return expected
        units = entry.get("units")
        if not isinstance(units, list) or not 0 < len(units) <= NEURONS_MAX:
            return expected
        for unit in units:
            problems = _problems(unit, _UNIT) if isinstance(unit, dict) else ["not an object"]
            if problems:
                return f"{expected} (layer {entry['layer']!r}: {problems[0]})"
            cells += len(unit["map"]) * len(unit["map"][0])
            weights += len(unit.get("weights") or ())
    if cells > NEURON_CELLS_MAX or weights > NEURON_WEIGHTS_MAX:
        return (
            f"{expected}, {NEURON_CELLS_MAX} map cells and {NEURON_WEIGHTS_MAX} weights in all "
            f"(got {cells} and {weights})"
        )
    return None


# -- views of image models and the test split (appended: Samples, Features, test results) --------
def _byte(value: Any) -> str | None:
    return None if type(value) is int and 0 <= value <= 255 else "an integer in 0..255"


def _percent(value: Any) -> str | None:
    return None if type(value) is int and 0 <= value <= 100 else "an integer in 0..100"


def _bytes_or_ref(value: Any) -> str | None:
    """A list of integers in 0..255, or where it was stored in the run's side file."""
    if is_ref(value):
        return None
    ok = isinstance(value, list) and all(_byte(item) is None for item in value)
    return None if ok else f"a list of integers in 0..255 or a reference into {ARRAYS_FILE}"


_MAPS: Spec = {
    "name": (_str, False),
    "shape": (_list_of(_int, "sizes"), False),
    "lo": (_list_of(_number, "numbers"), False),
    "hi": (_list_of(_number, "numbers"), False),
    "data": (_bytes_or_ref, False),
}


def _maps(value: Any) -> str | None:
    """Channels of one layer as uint8 (C, H, W), flat, each channel scaled to [lo, hi]; in
    a line written since the side file, `data` is a reference to its block there."""
    expected = "a maps object {name, shape [C, H, W], lo, hi, data}"
    if not isinstance(value, dict):
        return expected
    problems = _problems(value, _MAPS)
    if problems:
        return f"{expected} ({problems[0]})"
    shape = value["shape"]
    stored = is_ref(value["data"])
    if len(shape) != 3 or (not stored and len(value["data"]) != math.prod(shape)):
        return f"{expected} (data must hold C*H*W values)"
    if not len(value["lo"]) == len(value["hi"]) == shape[0]:
        return f"{expected} (lo and hi must hold one number per channel)"
    return None


_IMAGE_MAPS: Spec = {"index": (_int, False), "layers": (_list_of(_object, "objects"), False)}


def _image_maps(value: Any) -> str | None:
    """A list of {index, layers} objects; what is wrong with the first bad one."""
    expected = "a list of {index, layers} objects"
    if not isinstance(value, list):
        return expected
    for position, item in enumerate(value):
        problems = ["not an object"] if not isinstance(item, dict) else []
        problems = problems or _problems(item, _IMAGE_MAPS)
        if not problems:
            bad = [(k, m) for k, layer in enumerate(item["layers"]) if (m := _maps(layer))]
            problems = [f"layers[{k}] must be {m}" for k, m in bad[:1]]
        if problems:
            return f"{expected} (item {position}: {problems[0]})"
    return None


@dataclass(frozen=True, kw_only=True)
class Boundary(Event):
    """The model over its input plane, on a grid of at most 64x64 (rasters: one character per
    cell, a value 0-63 or "." for none). `kind` "classes": `predicted` class and `confidence`
    level per cell over the box `lo`-`hi` (x, y); "surface": the predicted value's level over
    [vmin, vmax] per cell and `truth`, the mean target per cell; "curve": one row, the
    predicted y level per column over lo[1]-hi[1]. `train` and `val` mark the data points
    (their class, or "0"); `neurons`: per hidden layer of up to 64 units (the first 64 such
    layers, up to 9,216 map cells in all), each unit's activation map (levels over [-scale,
    scale]; 16x16 for up to 36 units, coarser beyond), bias and incoming weights (up to 4,096
    in all)."""

    TYPE = "boundary"
    kind: str = field_of(_one_of("classes", "surface", "curve"))
    lo: list = field_of(_pair)
    hi: list = field_of(_pair)
    predicted: list = field_of(_raster)
    confidence: list | None = field_of(_raster, optional=True)
    truth: list | None = field_of(_raster, optional=True)
    vmin: float | None = field_of(_number, optional=True)
    vmax: float | None = field_of(_number, optional=True)
    train: list | None = field_of(_raster, optional=True)
    val: list | None = field_of(_raster, optional=True)
    neurons: list | None = field_of(_neurons, optional=True)
    epoch: int | None = field_of(_int, optional=True)

    def describe(self) -> str:
        rows, columns = len(self.predicted), len(self.predicted[0])
        return f"boundary ({self.kind}, {columns}x{rows}) at step {self.step}"


@dataclass(frozen=True, kw_only=True)
class BoundaryPoints(Event):
    """The data points under a run's boundary events, sent once at its start (they do not
    change): `train` and `val` mark them over the boundary's box (their class, or "0"), and
    `truth` is a surface's mean target per cell. Older logs carry these in every boundary."""

    TYPE = "boundary_points"
    train: list = field_of(_raster)
    val: list | None = field_of(_raster, optional=True)
    truth: list | None = field_of(_raster, optional=True)

    def describe(self) -> str:
        return f"boundary data points ({len(self.train[0])}x{len(self.train)})"


#: The hyperparameters a warning's `fix` may change (each settable while a run trains).
FIXABLE = ("lr", "weight_decay")


def _fix(value: Any) -> str | None:
    """A warning's suggestion as one change: {"name": "lr", "value": 0.05}."""
    ok = (
        isinstance(value, dict)
        and set(value) == {"name", "value"}
        and value["name"] in FIXABLE
        and _number(value["value"]) is None
        and value["value"] >= 0
    )
    return None if ok else f'an object {{"name": one of {", ".join(FIXABLE)}, "value": number}}'


def _fork(value: Any) -> str | None:
    """A warning's suggestion as a fork: that change, from the newest checkpoint before step
    `before` (where the evidence began): {"before": 1200, "name": "lr", "value": 0.05}."""
    ok = (
        isinstance(value, dict)
        and set(value) == {"before", "name", "value"}
        and _int(value["before"]) is None
        and _fix({"name": value["name"], "value": value["value"]}) is None
    )
    return (
        None
        if ok
        else (f'an object {{"before": step, "name": one of {", ".join(FIXABLE)}, "value": number}}')
    )


@dataclass(frozen=True, kw_only=True)
class Diagnostic(Event):
    """Something in the run looks wrong: `kind` (loss_spike, loss_rising, exploding_gradients,
    vanishing_gradients, dead_relu, saturated, overfitting, or view_failed: a view raised
    and is off for the rest of the run), a one-line explanation, a suggestion, the layer and
    measured value it is about, and where the suggestion is one hyperparameter change that
    can be applied live, that change (`fix`), or where it comes too late live, that change
    made in a fork from the newest checkpoint before step `before` (`fork`)."""

    TYPE = "warning"
    kind: str = field_of(_str)
    message: str = field_of(_str)
    suggestion: str = field_of(_str)
    layer: str | None = field_of(_str, optional=True)
    value: float | None = field_of(_number_or_null, optional=True)
    epoch: int | None = field_of(_int, optional=True)
    fix: dict | None = field_of(_fix, optional=True)
    fork: dict | None = field_of(_fork, optional=True)

    def describe(self) -> str:
        return f"warning: {self.message} — {self.suggestion}"

    def fix_text(self) -> str | None:
        """What A does, for the end of the warning's Log line: 'lr 0.05' (a change applied
        live), 'fork from before step 1200 with lr 0.05', or None (nothing to apply)."""
        if self.fork is not None:
            fork = self.fork
            return f"fork from before step {fork['before']} with {fork['name']} {fork['value']:g}"
        return None if self.fix is None else f"{self.fix['name']} {self.fix['value']:g}"


@dataclass(frozen=True, kw_only=True)
class Samples(Event):
    """Predictions on the validation images stored once in the run directory (`file`, a
    .npz of uint8 images and labels): per image by index, the predicted class and its
    confidence in percent."""

    TYPE = "samples"
    file: str = field_of(_str)
    predicted: list = field_of(_list_of(_int, "class indices"), packer=UINTS)
    confidence: list = field_of(_list_of(_percent, "integers in 0..100"), packer=UINTS)
    epoch: int | None = field_of(_int, optional=True)

    def describe(self) -> str:
        return (
            f"samples, epoch {_epoch(self.epoch)}: predictions for {len(self.predicted):,} images"
        )


@dataclass(frozen=True, kw_only=True)
class FeatureMaps(Event):
    """What the conv and pooling layers make of a few validation images (by index into the
    samples file): per image and layer, every channel as uint8 scaled to its own [lo, hi];
    and the first conv layer's filters (averaged over input channels) the same way."""

    TYPE = "feature_maps"
    images: list = field_of(_image_maps, packer=MAPS)
    filters: dict | None = field_of(_maps, optional=True, packer=FILTERS)
    epoch: int | None = field_of(_int, optional=True)
    trigger: str | None = field_of(_str, optional=True)

    def describe(self) -> str:
        why = " (on request)" if self.trigger == "request" else ""
        return f"feature maps of {len(self.images)} images, epoch {_epoch(self.epoch)}{why}"


@dataclass(frozen=True, kw_only=True)
class TestResult(Event):
    """The model on the test split (at the end of a run, or on request): loss and accuracy,
    or MSE and MAE for regression; for classification the confusion matrix (rows true) with
    per-class precision and recall."""

    TYPE = "test"
    __test__: ClassVar[bool] = False  # not a pytest class, whatever its name
    loss: float | None = field_of(_number_or_null)
    samples: int = field_of(_int)
    accuracy: float | None = field_of(_number_or_null, optional=True)
    mse: float | None = field_of(_number_or_null, optional=True)
    mae: float | None = field_of(_number_or_null, optional=True)
    matrix: list | None = field_of(_matrix, optional=True)
    precision: list | None = field_of(_list_of(_number, "numbers"), optional=True)
    recall: list | None = field_of(_list_of(_number, "numbers"), optional=True)
    class_names: list | None = field_of(_list_of(_str, "strings"), optional=True)
    epoch: int | None = field_of(_int, optional=True)
    trigger: str | None = field_of(_str, optional=True)

    def scores(self) -> str:
        """'loss 0.1234  accuracy 97.1%' (or MSE and MAE), the line the CLI and app show."""
        parts = [f"loss {'-' if self.loss is None else f'{self.loss:.4f}'}"]
        if self.accuracy is not None:
            parts.append(f"accuracy {self.accuracy:.1%}")
        for name in ("mse", "mae"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name.upper()} {value:.4g}")
        return "  ".join(parts)

    def describe(self) -> str:
        when = "on request" if self.trigger == "request" else "end of run"
        return f"test ({when}, {self.samples:,} samples): {self.scores()}"


# -- the training process (issue 20) -------------------------------------------------------------
def _bytes(value: int | None) -> str:
    return "-" if value is None else human_bytes(value)


@dataclass(frozen=True, kw_only=True)
class System(Event):
    """The training process over the last `seconds` (every few seconds, at a pause and at
    the end of a run): its CPU time in percent of that wall time (above 100 with several
    threads busy), the samples it trained and their rate per second of wall time, and its
    resident memory now and at its peak in bytes (left out where the system does not say)."""

    TYPE = "system"
    seconds: float = field_of(_number)
    cpu_percent: float | None = field_of(_number_or_null)
    samples: int = field_of(_int)
    samples_per_sec: float | None = field_of(_number_or_null)
    rss_bytes: int | None = field_of(_int, optional=True)
    peak_rss_bytes: int | None = field_of(_int, optional=True)

    def describe(self) -> str:
        cpu = "-" if self.cpu_percent is None else f"{self.cpu_percent:.0f}%"
        speed = "-" if self.samples_per_sec is None else f"{self.samples_per_sec:,.0f}"
        return (
            f"system: cpu {cpu}  rss {_bytes(self.rss_bytes)} (peak "
            f"{_bytes(self.peak_rss_bytes)})  {speed} samples/s over {self.seconds:.1f}s"
        )


# -- one sample through the network (issue 22) ---------------------------------------------------
#: An array of a trace event with at most this many values carries them all; a larger one, its
#: shape, range and mean and a heat strip.
TRACE_VALUES_MAX = 32
#: Cells of a heat strip at most: the array's values in order, in this many equal runs.
TRACE_STRIP_MAX = 64


def _trace_array(value: Any) -> str | None:
    """One array of a trace: label, shape, min/max/mean (null when not finite), and either
    every value (at most TRACE_VALUES_MAX) or a heat strip of raster characters."""
    expected = "a trace array object (label, shape, min, max, mean, values or strip)"
    if not isinstance(value, dict) or _problems(value, _TRACE_ARRAY):
        return expected
    values, strip = value.get("values"), value.get("strip")
    if (values is None) == (strip is None):
        return expected
    if values is not None and len(values) > TRACE_VALUES_MAX:
        return expected
    if strip is not None and (len(strip) > TRACE_STRIP_MAX or not set(strip) <= _RASTER_CHARS):
        return expected
    return None


_TRACE_ARRAY: Spec = {
    "label": (_str, False),
    "shape": (_list_of(_int, "sizes"), False),
    "min": (_number_or_null, False),
    "max": (_number_or_null, False),
    "mean": (_number_or_null, False),
    "values": (_list_of(_number_or_null, "numbers or nulls"), True),
    "strip": (_str, True),
}
_TRACE_LAYER: Spec = {
    "name": (_str, False),
    "kind": (_str, False),
    "arrays": (_list_of(_trace_array, "trace arrays"), False),
    "update": (_list_of(_trace_array, "trace arrays"), True),
}


def _trace_layers(value: Any) -> str | None:
    if not isinstance(value, list) or not all(
        isinstance(layer, dict) and not _problems(layer, _TRACE_LAYER) for layer in value
    ):
        return "a list of trace layers (name, kind, arrays, [update])"
    return None


@dataclass(frozen=True, kw_only=True)
class Trace(Event):
    """One validation sample (`index` of `samples`, its `label` and the `predicted` output)
    through the model in evaluation mode, in float64 (`nnlib.trace`): per layer its input,
    output, the gradient at its output (δ) and at its input, each parameter and its gradient,
    every value of an array of at most 32, else shape, range, mean and a heat strip. After a
    single step (`update`), each layer's `update` holds each parameter before the step, the
    batch's gradient dW and the change ΔW, and `lr` and `rule` the optimizer's: `rule` is
    left out where ΔW = −lr·dW holds (plain SGD), else the optimizer and its settings that
    made ΔW."""

    TYPE = "trace"
    index: int = field_of(_int)
    samples: int = field_of(_int)
    label: str = field_of(_str)
    predicted: str = field_of(_str)
    loss: float | None = field_of(_number_or_null)
    layers: list = field_of(_trace_layers)
    epoch: int | None = field_of(_int, optional=True)
    lr: float | None = field_of(_number, optional=True)
    rule: str | None = field_of(_str, optional=True)
    trigger: str | None = field_of(_str, optional=True)

    def describe(self) -> str:
        after = " after one step" if self.lr is not None else ""
        return f"trace of validation sample {self.index} (label {self.label}){after}"
