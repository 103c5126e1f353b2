"""The trainer-to-UI bridge: an nnlib Callback that turns hooks and events into immutable
snapshots and hands them to a sink.

It runs on the training thread and must never hold it up, so it only copies small summaries
(a few numbers, histogram counts, a confusion matrix) into frozen dataclasses; the UI thread
never touches a live array. Batch points are buffered and sent at most `1 / interval` times a
second (toolong's "batch by elapsed time"), so a fast model does not flood the UI; every other
snapshot (epoch ends, events, histograms, the end of the run) is sent at once and never dropped.

Every panel draws only what an nnlib event carries (`nnlib.events`), so a recorded run
(nntui.replay) shows everything a live one does. Events the dashboard has no special use for
(a regression summary, any new type) are passed on as their records, and the RunState keeps the
latest of each type for the panel that reads it: a new panel needs no code here.

Importable without Textual: the app passes `post_message`-like sinks, tests pass `list.append`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from nnlib import events
from nnlib.callbacks.base import Callback, Logs
from nnlib.layers import ReLU
from nnlib.metrics import precision_recall
from nnlib.runs import RunLogger

if TYPE_CHECKING:
    from nnlib.trainer import Trainer

Pairs = tuple[tuple[str, Any], ...]


def pairs(values: Mapping[str, Any]) -> Pairs:
    """An immutable copy of a dict of plain values (numpy scalars become Python numbers)."""
    return tuple((str(k), v.item() if isinstance(v, np.generic) else v) for k, v in values.items())


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _measured(value: Any) -> float:
    """A measured number that a run log holds as null when it was not finite."""
    return math.nan if value is None else float(value)


@dataclass(frozen=True)
class Hist:
    """A fixed-bin histogram of one tensor with its TensorBoard percentiles."""

    lo: float
    hi: float
    counts: tuple[int, ...]
    percentiles: tuple[float, ...]
    nonfinite: int = 0

    @classmethod
    def from_event(cls, data: Mapping[str, Any]) -> Hist:
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


@dataclass(frozen=True)
class BatchPoint:
    step: int
    loss: float
    accuracy: float | None
    lr: float


@dataclass(frozen=True)
class RunStarted:
    run_dir: str
    task: str
    arch: str
    params: int
    epochs: int
    class_names: tuple[str, ...]
    layers: tuple[str, ...]
    hyperparameters: Pairs
    input_shape: tuple[int, ...] = ()  # one sample's shape: (H, W, C) for images


@dataclass(frozen=True)
class Progress:
    """Where the run is, plus the batch points since the previous Progress."""

    epoch: int
    epochs: int
    batch: int
    steps_per_epoch: int
    step: int
    samples_per_sec: float
    points: tuple[BatchPoint, ...]
    hyperparameters: Pairs
    pending: Pairs
    state: str


@dataclass(frozen=True)
class EpochEnd:
    epoch: int
    step: int
    loss: float
    accuracy: float | None
    val_loss: float | None
    val_accuracy: float | None
    seconds: float
    samples_per_sec: float


@dataclass(frozen=True)
class Histograms:
    epoch: int
    step: int
    layers: tuple[LayerStats, ...]


@dataclass(frozen=True)
class Confusion:
    """The validation confusion matrix (rows true, columns predicted)."""

    epoch: int
    step: int
    matrix: tuple[tuple[int, ...], ...]
    precision: tuple[float, ...]
    recall: tuple[float, ...]
    class_names: tuple[str, ...]


@dataclass(frozen=True)
class HparamChange:
    step: int
    name: str
    old: Any
    new: Any
    applies: str


@dataclass(frozen=True)
class Notice:
    """A discrete trainer event worth a log line (see NOTICES; its message is the event's
    `describe()`), or an error before training began."""

    kind: str
    step: int
    message: str


@dataclass(frozen=True)
class RunEnded:
    reason: str
    step: int
    epoch: int
    error: str | None = None


@dataclass(frozen=True)
class Rewound:
    """A followed run was resumed from its checkpoint at `step`: what was shown of it is
    superseded (`nnlib.runs.continued`), and the whole run follows, read anew from its log."""

    step: int


Snapshot = (
    RunStarted
    | Progress
    | EpochEnd
    | Histograms
    | Confusion
    | HparamChange
    | Notice
    | RunEnded
    | Rewound
    | events.Event
)
Sink = Callable[[Snapshot], object]


#: Event types shown as a line in the log (their `describe()`), as are types nnlib does not define.
NOTICES = ("pause", "resume", "early_stop", "diverged", "checkpoint", "run_resume")


class Bridge(Callback):
    """Send immutable snapshots of a run to `sink`; batch points at most every `interval` s.

    The sink is called on the training thread, so it must be thread-safe (Textual's
    `post_message` is) and quick.
    """

    def __init__(
        self, sink: Sink, interval: float = 0.2, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.sink = sink
        self.interval = interval
        self.clock = clock
        self.ended = False
        self._started = False
        self._done = 0  # batches done in the current epoch
        self._points: list[BatchPoint] = []
        self._last_sent = -math.inf
        self._last_logs: Logs = {}
        self._relu_owner: dict[str, str] = {}

    # -- hooks ----------------------------------------------------------------------------
    def on_train_begin(self, trainer: Trainer) -> None:
        self.ended = False
        self._start(trainer)

    def _start(self, trainer: Trainer) -> None:
        """Announce the run once, before anything else about it (the Monitor's first
        histograms may arrive before this callback's own on_train_begin)."""
        if self._started:
            return
        self._started, self._done = True, 0
        self._points, self._last_sent, self._last_logs = [], -math.inf, {}
        weighted, self._relu_owner = layer_owners(
            (layer.name, layer.monitored_weights() is not None, isinstance(layer, ReLU))
            for layer in trainer.model.layers
        )
        run_dir = next(
            (
                str(c.run_dir)
                for c in trainer.callbacks
                if isinstance(c, RunLogger) and c.run_dir is not None
            ),
            "",
        )
        classes = trainer.model.output_shape[-1] if trainer.loss.task == "classification" else 0
        self.sink(
            RunStarted(
                run_dir,
                trainer.loss.task,
                trainer.model.spec,
                trainer.model.summary().total_params,
                trainer.epochs,
                tuple(str(i) for i in range(classes)),
                weighted,
                pairs(trainer.hyperparameters()),
                tuple(trainer.model.input_shape),
            )
        )

    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None:
        self._done = 0
        self._flush(trainer)

    def on_batch_end(self, trainer: Trainer, batch: int, logs: Logs) -> None:
        self._points.append(batch_point(logs))
        self._last_logs = logs
        self._done = batch + 1
        # While paused (single steps), every batch must show at once.
        if trainer.paused or self.clock() - self._last_sent >= self.interval:
            self._flush(trainer)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Logs) -> None:
        self._flush(trainer)
        self.sink(epoch_end(epoch, logs))

    def on_event(self, trainer: Trainer, event: str, data: Logs) -> None:
        if not self.ended:  # events after the end (a final checkpoint) belong to this run
            self._start(trainer)
        record = events.make(event, int(data.get("step", trainer.global_step)), data)
        if event != "histograms":
            self._flush(trainer)
        self.sink(event_snapshot(record, trainer.epoch, self._relu_owner))

    def on_train_end(self, trainer: Trainer, logs: Logs) -> None:
        self._flush(trainer)
        self._started, self.ended = False, True
        self.sink(run_ended(logs))

    # -- helpers --------------------------------------------------------------------------
    def _flush(self, trainer: Trainer) -> None:
        """Send a Progress with the buffered points (also when there are none, so the
        status follows epoch starts and pauses)."""
        points, self._points = tuple(self._points), []
        self._last_sent = self.clock()
        self.sink(
            Progress(
                trainer.epoch,
                trainer.epochs,
                self._done,
                trainer.steps_per_epoch,
                trainer.global_step,
                float(self._last_logs.get("samples_per_sec", 0.0)),
                points,
                pairs(trainer.hyperparameters()),
                pairs(trainer.pending()),
                trainer.state,
            )
        )


# -- shared by the Bridge (trainer hooks) and nntui.replay (a run log's events) ---------------
# A trainer's logs dict and the matching run-log event carry the same fields, so each snapshot
# is built in one place whichever way the facts arrive.


def batch_point(logs: Mapping[str, Any]) -> BatchPoint:
    """A batch's logs (or `batch` event, with its step) as a curve point."""
    return BatchPoint(
        int(logs["step"]), _measured(logs["loss"]), _number(logs.get("accuracy")), float(logs["lr"])
    )


def epoch_end(epoch: int, logs: Mapping[str, Any]) -> EpochEnd:
    """An epoch's logs (or `epoch` event, with its step)."""
    return EpochEnd(
        int(epoch),
        int(logs["step"]),
        _measured(logs["loss"]),
        _number(logs.get("accuracy")),
        _number(logs.get("val_loss")),
        _number(logs.get("val_accuracy")),
        float(logs.get("seconds") or 0.0),
        float(logs.get("samples_per_sec") or 0.0),
    )


def run_ended(logs: Mapping[str, Any]) -> RunEnded:
    """The end of a run from on_train_end's logs (or the `end` event, with its step)."""
    return RunEnded(
        str(logs.get("reason", "finished")),
        int(logs.get("step", 0)),
        int(logs.get("epoch", 0)),
        logs.get("error"),
    )


def layer_owners(
    layers: Iterable[tuple[str, bool, bool]],
) -> tuple[tuple[str, ...], dict[str, str]]:
    """From (name, weighted, is_relu) in model order: the weighted layers' names, and for
    each ReLU the weighted layer before it (whose dead units it shows)."""
    weighted: list[str] = []
    relu_owner: dict[str, str] = {}
    owner = ""
    for name, has_weights, is_relu in layers:
        if has_weights:
            owner = name
            weighted.append(owner)
        elif is_relu and owner:
            relu_owner[name] = owner
    return tuple(weighted), relu_owner


def layer_stats(
    layers: Mapping[str, Mapping[str, Any]], relu_owner: Mapping[str, str]
) -> tuple[LayerStats, ...]:
    """A `histograms` event's layers as LayerStats, each ReLU's dead fraction on its owner."""
    dead = {
        relu_owner[name]: float(entry["dead_fraction"])
        for name, entry in layers.items()
        if entry.get("dead_fraction") is not None and name in relu_owner
    }
    return tuple(
        LayerStats(
            name,
            Hist.from_event(entry["weights"]),
            Hist.from_event(entry["grads"]) if entry.get("grads") else None,
            _number(entry.get("grad_norm")),
            _number(entry.get("update_ratio")),
            dead.get(name),
        )
        for name, entry in layers.items()
        if "weights" in entry
    )


def event_snapshot(event: events.Event, epoch: int, relu_owner: Mapping[str, str]) -> Snapshot:
    """One event (as emitted, or as read back from a run log) as a snapshot; `epoch` is used
    when the event does not say. Types without a snapshot of their own are their record."""
    if isinstance(event, events.Histograms):
        return Histograms(
            epoch if event.epoch is None else event.epoch,
            event.step,
            layer_stats(event.layers, relu_owner),
        )
    if isinstance(event, events.Confusion):
        matrix = tuple(tuple(int(c) for c in row) for row in event.matrix)
        precision, recall = event.precision, event.recall
        if precision is None or recall is None:  # optional: computed as the Monitor does
            counts = np.asarray(matrix, dtype=np.int64)
            precision, recall = (values.tolist() for values in precision_recall(counts))
        return Confusion(
            epoch if event.epoch is None else event.epoch,
            event.step,
            matrix,
            tuple(float(p) for p in precision),
            tuple(float(r) for r in recall),
            tuple(str(n) for n in event.class_names or range(len(matrix))),
        )
    if isinstance(event, events.Hparam):
        return HparamChange(
            event.step, event.name, event.old, event.new, event.applies or "next batch"
        )
    if event.type in NOTICES or isinstance(event, events.UnknownEvent):
        return Notice(event.type, event.step, event.describe())
    return event
