"""The run-log records: `Event`, the base every event type derives from (its fields, its JSON
line, one line of text for a person), how a record declares a field (`field_of`: its check,
and what the codec does with it), and the records of a run's course, from its start to its
end. The views' records are in `views`. A new event type is a subclass:

    @dataclass(frozen=True, kw_only=True)
    class Boundary(Event):
        \"\"\"The model's decision over a grid of the input plane.\"\"\"
        TYPE = "boundary"
        grid: list = field_of(checks.grid)

Defining it registers it (`Event.registry`, by TYPE): the codec makes and reads it from then
on. Fields beyond the declared ones (a callback's own metrics, the optimizer's settings) are
kept in `extra`; a line of an unknown type (from a later schema) reads as an `UnknownEvent`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..arrays import F32_MAX, HISTOGRAMS, Packer, float32, is_packed
from . import checks
from .checks import Check, Spec

#: The version every line is written with; lines of this version and older read. Version 2:
#: compact batch lines (`BatchLines`) and big fields packed into the side file (nnlib.arrays).
SCHEMA_VERSION = 2


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


def epoch_text(epoch: int | None) -> str:
    """An epoch index for a person: counted from 1, "?" when unknown."""
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


@dataclass(frozen=True, kw_only=True)
class RunStart(Event):
    """The run began: its directory and its config (as in config.json)."""

    TYPE = "run_start"
    run: str = field_of(checks.string)
    config: dict = field_of(checks.json_object)

    def describe(self) -> str:
        return f"run started in {self.run}"


@dataclass(frozen=True, kw_only=True)
class Batch(Event):
    """One training batch: its loss and the hyperparameters in force."""

    TYPE = "batch"
    epoch: int = field_of(checks.integer)
    batch: int = field_of(checks.integer)
    loss: float | None = field_of(checks.number_or_null, short="l", precision=FLOAT32)
    batch_size: int | None = field_of(checks.integer, optional=True)
    accuracy: float | None = field_of(checks.number_or_null, optional=True, short="a")
    val_loss: float | None = field_of(checks.number_or_null, optional=True, precision=FLOAT32)
    val_accuracy: float | None = field_of(checks.number_or_null, optional=True)
    lr: float | None = field_of(checks.number_or_null, optional=True)
    seconds: float | None = field_of(checks.number_or_null, optional=True, precision=SIGNIFICANT)
    samples_per_sec: float | None = field_of(
        checks.number_or_null, optional=True, short="s", precision=RATE
    )

    def describe(self) -> str:
        return f"epoch {self.epoch + 1} batch {self.batch + 1}  {format_metrics(self.data)}"


@dataclass(frozen=True, kw_only=True)
class Epoch(Event):
    """One epoch: mean training metrics, validation metrics, time and speed."""

    TYPE = "epoch"
    epoch: int = field_of(checks.integer)
    loss: float | None = field_of(checks.number_or_null)
    accuracy: float | None = field_of(checks.number_or_null, optional=True)
    val_loss: float | None = field_of(checks.number_or_null, optional=True)
    val_accuracy: float | None = field_of(checks.number_or_null, optional=True)
    lr: float | None = field_of(checks.number_or_null, optional=True)
    seconds: float | None = field_of(checks.number_or_null, optional=True)
    samples_per_sec: float | None = field_of(checks.number_or_null, optional=True)

    def describe(self) -> str:
        return f"epoch {self.epoch + 1}  {format_metrics(self.data)}"


@dataclass(frozen=True, kw_only=True)
class Histograms(Event):
    """Per layer: {weights, [grads], [grad_norm], [update_ratio], [dead_fraction]}; a
    histogram is {lo, hi, counts, percentiles, [nonfinite]}."""

    TYPE = "histograms"
    layers: dict = field_of(checks.layers, packer=HISTOGRAMS)
    epoch: int | None = field_of(checks.integer, optional=True)
    batch: int | None = field_of(checks.integer, optional=True)

    def describe(self) -> str:
        return f"histograms of {len(self.layers)} layers"


@dataclass(frozen=True, kw_only=True)
class Confusion(Event):
    """The validation confusion matrix (rows true, columns predicted)."""

    TYPE = "confusion"
    matrix: list = field_of(checks.matrix)
    epoch: int | None = field_of(checks.integer, optional=True)
    precision: list | None = field_of(checks.list_of(checks.number, "numbers"), optional=True)
    recall: list | None = field_of(checks.list_of(checks.number, "numbers"), optional=True)
    class_names: list | None = field_of(checks.list_of(checks.string, "strings"), optional=True)

    def describe(self) -> str:
        total = sum(map(sum, self.matrix))
        correct = sum(row[i] for i, row in enumerate(self.matrix))
        share = f"{correct / total:.1%}" if total else "-"
        return f"validation, epoch {epoch_text(self.epoch)}: accuracy {share} of {total:,}"


@dataclass(frozen=True, kw_only=True)
class Regression(Event):
    """Predicted against true on the validation set: a 2-D histogram (rows: predicted, high to
    low; columns: true, low to high) over one shared range [lo, hi], R² and the mean absolute
    error (null when not finite)."""

    TYPE = "regression"
    counts: list = field_of(checks.grid)
    lo: float = field_of(checks.number)
    hi: float = field_of(checks.number)
    r2: float | None = field_of(checks.number_or_null)
    mae: float | None = field_of(checks.number_or_null)
    epoch: int | None = field_of(checks.integer, optional=True)

    def describe(self) -> str:
        r2 = "-" if self.r2 is None else f"{self.r2:.3f}"
        mae = "-" if self.mae is None else f"{self.mae:.4g}"
        return f"validation, epoch {epoch_text(self.epoch)}: R² {r2}  MAE {mae}"


@dataclass(frozen=True, kw_only=True)
class Hparam(Event):
    """A hyperparameter changed: `applies` is "next batch" or "next epoch"."""

    TYPE = "hparam"
    name: str = field_of(checks.string)
    old: Any = field_of(checks.scalar)
    new: Any = field_of(checks.scalar)
    applies: str | None = field_of(checks.string, optional=True)
    #: "app", "remote", "signal" or "script"
    source: str | None = field_of(checks.string, optional=True)

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
    source: str | None = field_of(checks.string, optional=True)

    def describe(self) -> str:
        return "paused" + _by(self.source)


@dataclass(frozen=True, kw_only=True)
class Resume(Event):
    """The training thread went on."""

    TYPE = "resume"
    source: str | None = field_of(checks.string, optional=True)

    def describe(self) -> str:
        return "resumed" + _by(self.source)


@dataclass(frozen=True, kw_only=True)
class Stop(Event):
    """A stop request the training thread acted on; the run's end event follows."""

    TYPE = "stop"
    reason: str = field_of(checks.string)
    source: str | None = field_of(checks.string, optional=True)

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
    old: float | None = field_of(checks.number_or_null)
    new: float | None = field_of(checks.number_or_null)
    source: str | None = field_of(checks.string, optional=True)

    def describe(self) -> str:
        return f"pace: {pace_text(self.old)} -> {pace_text(self.new)}" + _by(self.source)


@dataclass(frozen=True, kw_only=True)
class RunResume(Event):
    """A run continued from a checkpoint (`nnlib train --resume`, or a fork's first event
    after its run_start). Events logged earlier with a step above `from_step` were lost with
    the process that wrote them and are redone after this line; so is what the earlier
    attempt reported at `from_step` about its unfinished epoch, and its end: a reader drops
    them (`nnlib.runs.continued`). `replicas`: how many replicas it goes on with."""

    TYPE = "run_resume"
    from_step: int = field_of(checks.integer)
    epoch: int | None = field_of(checks.integer, optional=True)
    batch: int | None = field_of(checks.integer, optional=True)
    checkpoint: str | None = field_of(checks.string, optional=True)
    parent: dict[str, Any] | None = field_of(checks.json_object, optional=True)
    replicas: int | None = field_of(checks.integer, optional=True)

    def describe(self) -> str:
        where = f" ({Path(self.checkpoint).name})" if self.checkpoint else ""
        on = f" on {self.replicas} replicas" if self.replicas and self.replicas > 1 else ""
        return f"resumed from step {self.from_step}{where}{on}"


@dataclass(frozen=True, kw_only=True)
class Checkpoint(Event):
    """A model file was written: why (best, every N, end) and the monitored value."""

    TYPE = "checkpoint"
    path: str = field_of(checks.string)
    epoch: int | None = field_of(checks.integer, optional=True)
    reason: str | None = field_of(checks.string, optional=True)
    monitor: str | None = field_of(checks.string, optional=True)
    value: float | None = field_of(checks.number_or_null, optional=True)

    def describe(self) -> str:
        return f"checkpoint ({self.reason}): {Path(self.path).name}"


@dataclass(frozen=True, kw_only=True)
class EarlyStop(Event):
    """EarlyStopping ended the run: `monitor` has not improved since `best_epoch`."""

    TYPE = "early_stop"
    monitor: str = field_of(checks.string)
    best: float | None = field_of(checks.number_or_null, optional=True)
    best_epoch: int | None = field_of(checks.integer, optional=True)
    epoch: int | None = field_of(checks.integer, optional=True)

    def describe(self) -> str:
        if self.best_epoch is None:
            return f"early stop: {self.monitor} never improved"
        return f"early stop: {self.monitor} has not improved since epoch {self.best_epoch + 1}"


@dataclass(frozen=True, kw_only=True)
class Diverged(Event):
    """The loss became non-finite (null) or too large; the run stops."""

    TYPE = "diverged"
    loss: float | None = field_of(checks.number_or_null)
    epoch: int | None = field_of(checks.integer, optional=True)
    batch: int | None = field_of(checks.integer, optional=True)

    def describe(self) -> str:
        where = f"epoch {epoch_text(self.epoch)}, batch {epoch_text(self.batch)}"
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
    monitor: str = field_of(checks.string)
    value: float | None = field_of(checks.number_or_null)
    median: float | None = field_of(checks.number_or_null)
    epoch: int = field_of(checks.integer)

    def describe(self) -> str:
        return (
            f"pruned at epoch {epoch_text(self.epoch)}: {self.monitor} {_num(self.value)} behind "
            f"the median {_num(self.median)} of the finished trials"
        )


@dataclass(frozen=True, kw_only=True)
class End(Event):
    """The run ended: reason is finished, stopped, early_stop, diverged, interrupted or
    error (with the error). A log that could not take it (a full disk) has it in the run's
    .writer.lock, where readers find it."""

    TYPE = "end"
    reason: str = field_of(checks.string)
    error: str | None = field_of(checks.string_or_null, optional=True)
    epoch: int | None = field_of(checks.integer, optional=True)

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


def reference() -> str:
    """The README's list of event types and their fields ([optional]), made from the records
    (every type: importing nnlib.events defines them all)."""
    lines = []
    for kind, cls in Event.registry.items():
        names = [f"[{name}]" if optional else name for name, (_, optional) in cls.spec().items()]
        lines.append(f"- `{kind}` {', '.join(names) or '(no fields)'}: {_doc(cls)}")
    return "\n".join(lines)


def _doc(cls: type[Event]) -> str:
    return " ".join((cls.__doc__ or "").split())
