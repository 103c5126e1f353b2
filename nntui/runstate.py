"""RunState: everything the dashboard shows, the fold of the run's stream (`nntui.stream`):
its `nnlib.events` records, as the trainer made them live or as its log holds them, and the
few facts no record carries (the run's start, the app's notices, a rewind).

The state of a run at any moment is the fold of its records up to then: a live run and the
same run read back from its log fold to the same state (tests/test_replay_parity.py), and the
time axis (`nntui.history`) folds the same way. Kept apart from the widgets (and from
Textual) so it can be fed a fixed sequence in tests and snapshot images, and so every panel
draws from one consistent state. Series are bounded: past `cap` points a series drops every
other point and keeps every second new one, so memory and drawing time stay flat however
long a run is.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from nnlib import events, runsummary
from nnlib.metrics import precision_recall
from nnlib.states import RunStatus

from .stream import Batches, Notice, Rewound, RunStarted, Update


class Decimated:
    """Parallel columns of numbers holding at most `cap` rows, evenly spread over the run."""

    def __init__(self, columns: int, cap: int = 2048) -> None:
        self.cap = cap
        self.columns: list[list[float]] = [[] for _ in range(columns)]
        self._stride = 1
        self._seen = 0

    def append(self, *values: float) -> None:
        if self._seen % self._stride == 0:
            for column, value in zip(self.columns, values, strict=True):
                column.append(value)
            if len(self.columns[0]) > self.cap:
                self.columns = [column[::2] for column in self.columns]
                self._stride *= 2
        self._seen += 1

    def __len__(self) -> int:
        return len(self.columns[0])

    @property
    def seen(self) -> int:
        """Rows ever appended (kept or not)."""
        return self._seen

    def copy(self) -> Decimated:
        """An independent copy (the rows are numbers: the columns are copied, not deeply)."""
        twin = copy.copy(self)
        twin.columns = [list(column) for column in self.columns]
        return twin


@dataclass(frozen=True)
class Hist:
    """A fixed-bin histogram of one tensor with its TensorBoard percentiles."""

    lo: float
    hi: float
    counts: tuple[int, ...]
    percentiles: tuple[float, ...]
    nonfinite: int = 0

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> Hist:
        """From a `histograms` record's histogram."""
        return cls(
            float(data["lo"]),
            float(data["hi"]),
            tuple(int(c) for c in data["counts"]),
            tuple(float(p) for p in data["percentiles"]),
            int(data.get("nonfinite", 0)),
        )


@dataclass(frozen=True)
class LayerStats:
    """One weighted layer at one step; `dead_fraction` is that of the ReLU that follows it."""

    name: str
    weights: Hist
    grads: Hist | None = None
    grad_norm: float | None = None
    update_ratio: float | None = None
    dead_fraction: float | None = None


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _nan(value: float | None) -> float:
    """A score a batch did not report as NaN: a gap in its curve."""
    return math.nan if value is None else value


def layer_stats(layers: Mapping[str, Mapping[str, Any]]) -> tuple[LayerStats, ...]:
    """A `histograms` record's layers as LayerStats. The Monitor lists them in model order,
    each ReLU (the entries with a dead fraction and no weights) after the weighted layer it
    follows, whose row shows its dead units."""
    dead: dict[str, float] = {}
    owner = ""
    for name, entry in layers.items():
        if "weights" in entry:
            owner = name
        elif entry.get("dead_fraction") is not None and owner:
            dead[owner] = float(entry["dead_fraction"])
    return tuple(
        LayerStats(
            name,
            Hist.of(entry["weights"]),
            Hist.of(entry["grads"]) if entry.get("grads") else None,
            _number(entry.get("grad_norm")),
            _number(entry.get("update_ratio")),
            dead.get(name),
        )
        for name, entry in layers.items()
        if "weights" in entry
    )


def with_scores(confusion: events.Confusion) -> events.Confusion:
    """The record with its precision and recall (optional in a log: computed as the
    Monitor computes them when missing)."""
    if confusion.precision is not None and confusion.recall is not None:
        return confusion
    counts = np.asarray(confusion.matrix, dtype=np.int64)
    precision, recall = (values.tolist() for values in precision_recall(counts))
    return replace(confusion, precision=precision, recall=recall)


@dataclass(frozen=True)
class Position:
    """Where the run is: the epoch and the batches done in it (of `steps_per_epoch`, 0 when
    not known), the step, and the measured speed."""

    epoch: int
    epochs: int
    batch: int
    steps_per_epoch: int
    step: int
    samples_per_sec: float


@dataclass
class LayerHistory:
    """Percentiles of one layer's weights (and gradients) over steps, and its latest stats."""

    latest: LayerStats
    weights: Decimated = field(default_factory=lambda: Decimated(8, cap=512))
    grads: Decimated = field(default_factory=lambda: Decimated(8, cap=512))

    def copy(self) -> LayerHistory:
        return LayerHistory(self.latest, self.weights.copy(), self.grads.copy())

    def add(self, step: int, stats: LayerStats) -> None:
        self.latest = stats
        self.weights.append(step, *stats.weights.percentiles)
        if stats.grads is not None:
            self.grads.append(step, *stats.grads.percentiles)


#: Record types that move the run's state (besides being kept as the latest of their type).
STATUS_OF = {"pause": RunStatus.PAUSED, "resume": RunStatus.RUNNING}


class RunState:
    """The dashboard's model of one run. `version` grows with every change, so widgets
    redraw only when something moved."""

    def __init__(
        self, dataset: str = "", arch: str = "", cap: int = 2048, recorded: bool = False
    ) -> None:
        self.dataset = dataset
        self.arch = arch
        self.recorded = recorded  # read from a run directory, not trained here
        self.note = ""  # what a run that has not started yet is waiting for
        self.version = 0
        self.generation = 0  # grows when the run is rewound: every panel draws afresh
        self._cap = cap
        self._clear()

    def _clear(self) -> None:
        """Nothing of the run known yet (at the start, and when a followed run is rewound)."""
        cap = self._cap
        self.status = RunStatus.LOADING
        self.started: RunStarted | None = None
        self.progress: Position | None = None
        self.epochs: list[events.Epoch] = []
        self.batches = Decimated(4, cap)  # step, loss, accuracy (nan if none), lr
        self.marks: list[events.Hparam] = []
        self.layers: dict[str, LayerHistory] = {}
        self.confusion: events.Confusion | None = None
        self.events: dict[str, events.Event] = {}  # the latest record of each type
        self.counts: dict[str, int] = {}  # records seen of each type (warnings)
        self.end: events.End | None = None
        self.requested: dict[str, Any] = {}
        #: Epochs per second the run is held to (None: full speed), as asked here or reported.
        self.pace: float | None = None
        self.histograms = 0  # histograms records seen (the layers panel redraws on it)
        #: The hyperparameters in force, as the latest batch reported them.
        self.in_force: dict[str, Any] = {}
        self._longest = 0  # the most batches an epoch took so far
        #: Its 'system' records folded as the runs table folds them (the run's mean speed).
        self._system = runsummary.LogDigest()

    def copy(self) -> RunState:
        """An independent copy, cheaper than a deep one: the records it holds are immutable
        and shared; only the containers the fold grows are copied (the time axis keeps one
        every few records, see nntui.history)."""
        twin = copy.copy(self)
        twin.epochs, twin.marks = list(self.epochs), list(self.marks)
        twin.batches = self.batches.copy()
        twin.layers = {name: history.copy() for name, history in self.layers.items()}
        twin.events, twin.counts = dict(self.events), dict(self.counts)
        twin.requested, twin.in_force = dict(self.requested), dict(self.in_force)
        twin._system = replace(self._system)
        return twin

    # -- feeding ----------------------------------------------------------------------------
    def apply(self, update: Update) -> None:
        """Fold one update of the run's stream into the state."""
        self.version += 1
        if isinstance(update, events.Event):
            self._record(update)
        else:
            _FOLDS[type(update)](self, update)

    def _rewound(self, update: Rewound) -> None:
        self.generation += 1  # the whole run follows again
        self._clear()

    def _started(self, update: RunStarted) -> None:
        self.started, self.arch = update, update.arch
        self.in_force = dict(update.hyperparameters)
        if self.end is None:
            self.status = RunStatus.RUNNING

    def _notice(self, update: Notice) -> None:
        if update.kind == "waiting" and self.started is None and self.end is None:
            self.status, self.note = RunStatus.WAITING, update.message

    def _batches(self, update: Batches) -> None:
        for record in update.records:
            self._batch(record)

    def _batch(self, record: events.Batch) -> None:
        self._report_in_force(record)
        lr = self.in_force.get("lr")
        self.batches.append(record.step, _nan(record.loss), _nan(record.accuracy), _nan(lr))
        p = self.progress
        if p is not None and record.epoch != p.epoch:
            self._longest = max(self._longest, p.batch)
        self.progress = Position(
            record.epoch,
            self.started.epochs if self.started else 0,
            record.batch + 1,
            self._steps_per_epoch(record.batch + 1),
            record.step,
            record.samples_per_sec or 0.0,
        )
        if self.status in (RunStatus.LOADING, RunStatus.WAITING):
            self.status = RunStatus.RUNNING

    def _report_in_force(self, record: events.Batch) -> None:
        """Take the values in force that a batch reports (the lr after a decay, the batch
        size; a value the run started with, from the batch's extra fields)."""
        in_force = self.in_force
        for name in in_force:
            if name in record.extra:
                in_force[name] = record.extra[name]
        if record.batch_size is not None:
            in_force["batch_size"] = record.batch_size
        if record.lr is not None:
            in_force["lr"] = record.lr

    def _steps_per_epoch(self, done: int) -> int:
        """The batches of an epoch: from the training samples and the batch size in force,
        else the most an epoch took so far."""
        train = self.started.train_size if self.started else 0
        batch_size = self.in_force.get("batch_size")
        if train and isinstance(batch_size, int) and batch_size > 0:
            return math.ceil(train / batch_size)
        return max(self._longest, done)

    def _record(self, record: events.Event) -> None:
        """A record of the run: kept as the latest of its type, and folded by its type."""
        fold = _RECORD_FOLDS.get(record.type)
        if fold is not None:
            record = fold(self, record) or record
        self.events[record.type] = record
        self.counts[record.type] = self.counts.get(record.type, 0) + 1

    def _epoch(self, record: events.Epoch) -> None:
        self.epochs.append(record)

    def _histograms(self, record: events.Histograms) -> None:
        self.histograms += 1
        for stats in layer_stats(record.layers):
            history = self.layers.setdefault(stats.name, LayerHistory(stats))
            history.add(record.step, stats)

    def _confusion(self, record: events.Confusion) -> events.Confusion:
        self.confusion = with_scores(record)
        return self.confusion

    def _hparam(self, record: events.Hparam) -> None:
        self.marks.append(record)
        self.requested.pop(record.name, None)

    def _status(self, record: events.Event) -> None:
        if self.end is None:
            self.status = STATUS_OF[record.type]

    def _add_system(self, record: events.System) -> None:
        self._system.add(record)

    def _pace(self, record: events.Pace) -> None:
        self.pace = record.new

    def _end(self, record: events.End) -> None:
        self.end = record
        self.status = RunStatus.of_end(record.reason)
        self.requested.clear()
        if self.progress is not None:  # an epoch cut short counts as its batches
            self._longest = max(self._longest, self.progress.batch)

    def request(self, name: str, value: Any, since: int | None = None) -> None:
        """Show a requested hyperparameter value at once, before the trainer applies it.
        `since`: how many changes the run had logged when the request was sent. A run in
        another process may log the change before its answer reaches the screen; a change
        to `value` logged since then has answered it (nothing else would clear it)."""
        self.version += 1
        changes = self.marks[since:] if since is not None else ()
        if any(mark.name == name and mark.new == value for mark in changes):
            return
        self.requested[name] = value

    def mark_pace(self, pace: float | None) -> None:
        """Show a requested pace at once (its 'pace' event follows at the next boundary)."""
        self.version += 1
        self.pace = pace

    def mark_status(self, status: RunStatus) -> None:
        """A control request the trainer has not acted on yet (PAUSING, STOPPING), or RUNNING
        at once on a resume."""
        if self.end is None:
            self.version += 1
            self.status = status

    # -- reading ----------------------------------------------------------------------------
    @property
    def task(self) -> str:
        return self.started.task if self.started else "classification"

    @property
    def hyperparameters(self) -> dict[str, Any]:
        """The values in force: as the run started, then as its latest batch reported."""
        return dict(self.in_force)

    @property
    def pending(self) -> dict[str, Any]:
        """Values asked for here and not yet in force (their hparam record clears them)."""
        return dict(self.requested)

    def eta_seconds(self) -> float | None:
        """Time left, from the measured samples/s (not the wall clock, so it is stable), or
        from the pace when that is slower."""
        p = self.progress
        if p is None or p.samples_per_sec <= 0 or self.end is not None:
            return None
        remaining = (p.steps_per_epoch - p.batch) + (p.epochs - p.epoch - 1) * p.steps_per_epoch
        batch_size = float(self.hyperparameters.get("batch_size", 1))
        seconds = max(remaining, 0) * batch_size / p.samples_per_sec
        if self.pace is not None and p.steps_per_epoch:
            seconds = max(seconds, max(remaining, 0) / p.steps_per_epoch / self.pace)
        return seconds

    def samples_per_sec(self) -> float:
        """The speed to show: while the run goes, its epoch's so far (the latest batch's);
        once it has ended, the whole run's, as the runs table has it (its 'system' records'
        samples over their seconds): the last batch's alone, cut short by the stop (a lost
        terminal), read 924 samples/s on a run that trained at 10,000. 0: not known."""
        whole_run = self._system.samples_per_sec
        if self.end is not None and whole_run is not None:
            return whole_run
        return self.progress.samples_per_sec if self.progress is not None else 0.0

    def fraction_done(self) -> float:
        p = self.progress
        if p is None or not p.epochs or not p.steps_per_epoch:
            return 1.0 if self.end and self.end.reason == "finished" else 0.0
        done = (p.epoch + min(p.batch, p.steps_per_epoch) / p.steps_per_epoch) / p.epochs
        return min(max(done, 0.0), 1.0)

    def layer_names(self) -> list[str]:
        if self.started and self.started.layers:
            return list(self.started.layers)
        return list(self.layers)

    def latest(self, kind: str) -> events.Event | None:
        """The latest record of type `kind` (a panel's data: whatever the record carries)."""
        return self.events.get(kind)

    @property
    def last_epoch(self) -> events.Epoch | None:
        return self.epochs[-1] if self.epochs else None


#: How each update that is not a record folds in.
_FOLDS: dict[type, Callable[[RunState, Any], None]] = {
    Rewound: RunState._rewound,
    RunStarted: RunState._started,
    Notice: RunState._notice,
    Batches: RunState._batches,
}
#: How each record type folds in besides being kept as the latest of its type (a fold may
#: return the record as kept: a confusion matrix with its scores filled in).
_RECORD_FOLDS: dict[str, Callable[[RunState, Any], events.Event | None]] = {
    "batch": RunState._batch,
    "epoch": RunState._epoch,
    "histograms": RunState._histograms,
    "confusion": RunState._confusion,
    "hparam": RunState._hparam,
    "pause": RunState._status,
    "resume": RunState._status,
    "pace": RunState._pace,
    "system": RunState._add_system,
    "end": RunState._end,
}
