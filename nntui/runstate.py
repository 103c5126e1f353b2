"""RunState: everything the dashboard shows, accumulated from bridge snapshots on the UI thread.

Kept apart from the widgets (and from Textual) so it can be fed a fixed sequence of snapshots
in tests and snapshot images, and so every panel draws from one consistent state. Series are
bounded: past `cap` points a series drops every other point and keeps every second new one,
so memory and drawing time stay flat however long a run is.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

from nnlib.events import Event, Pace
from nnlib.states import RunStatus

from .bridge import (
    Confusion,
    EpochEnd,
    Histograms,
    HparamChange,
    LayerStats,
    Notice,
    Progress,
    Rewound,
    RunEnded,
    RunStarted,
    Snapshot,
)


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
        self.progress: Progress | None = None
        self.epochs: list[EpochEnd] = []
        self.batches = Decimated(4, cap)  # step, loss, accuracy (nan if none), lr
        self.marks: list[HparamChange] = []
        self.layers: dict[str, LayerHistory] = {}
        self.confusion: Confusion | None = None
        self.events: dict[str, Event] = {}  # the latest event of each type a panel reads
        self.counts: dict[str, int] = {}  # events seen of each of those types (warnings)
        self.end: RunEnded | None = None
        self.requested: dict[str, Any] = {}
        #: Epochs per second the run is held to (None: full speed), as asked here or reported.
        self.pace: float | None = None
        self.histograms = 0  # Histograms snapshots seen (the layers panel redraws on it)

    def copy(self) -> RunState:
        """An independent copy, cheaper than a deep one: the snapshots it holds are immutable
        and shared; only the containers the fold grows are copied (the time axis keeps one
        every few snapshots, see nntui.history)."""
        twin = copy.copy(self)
        twin.epochs, twin.marks = list(self.epochs), list(self.marks)
        twin.batches = self.batches.copy()
        twin.layers = {name: history.copy() for name, history in self.layers.items()}
        twin.events, twin.counts = dict(self.events), dict(self.counts)
        twin.requested = dict(self.requested)
        return twin

    # -- feeding ----------------------------------------------------------------------------
    def apply(self, snapshot: Snapshot) -> None:
        """Fold one snapshot into the state."""
        self.version += 1
        if isinstance(snapshot, Rewound):  # the whole run follows again
            self.generation += 1
            self._clear()
        elif isinstance(snapshot, RunStarted):
            self.started, self.arch = snapshot, snapshot.arch
            self.status = RunStatus.RUNNING
        elif isinstance(snapshot, Progress):
            self._progress(snapshot)
        elif isinstance(snapshot, EpochEnd):
            self.epochs.append(snapshot)
        elif isinstance(snapshot, Histograms):
            self.histograms += 1
            for stats in snapshot.layers:
                history = self.layers.setdefault(stats.name, LayerHistory(stats))
                history.add(snapshot.step, stats)
        elif isinstance(snapshot, Confusion):
            self.confusion = snapshot
        elif isinstance(snapshot, Event):
            if isinstance(snapshot, Pace):
                self.pace = snapshot.new
            self.events[snapshot.type] = snapshot
            self.counts[snapshot.type] = self.counts.get(snapshot.type, 0) + 1
        elif isinstance(snapshot, HparamChange):
            self.marks.append(snapshot)
            self.requested.pop(snapshot.name, None)
        elif isinstance(snapshot, Notice):
            if snapshot.kind == "waiting" and self.started is None and self.end is None:
                self.status, self.note = RunStatus.WAITING, snapshot.message
            if snapshot.kind in ("pause", "resume"):
                self.status = RunStatus.PAUSED if snapshot.kind == "pause" else RunStatus.RUNNING
        elif isinstance(snapshot, RunEnded):
            self.end = snapshot
            self.status = RunStatus.of_end(snapshot.reason)
            self.requested.clear()

    def _progress(self, snapshot: Progress) -> None:
        self.progress = snapshot
        for point in snapshot.points:
            accuracy = math.nan if point.accuracy is None else point.accuracy
            self.batches.append(point.step, point.loss, accuracy, point.lr)
        requested = self.status in (RunStatus.PAUSING, RunStatus.STOPPING)
        if self.end is None and (not requested or snapshot.state == RunStatus.PAUSED):
            self.status = RunStatus(snapshot.state)

    def request(self, name: str, value: Any) -> None:
        """Show a requested hyperparameter value at once, before the trainer applies it."""
        self.version += 1
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
        return (
            dict(self.progress.hyperparameters)
            if self.progress
            else (dict(self.started.hyperparameters) if self.started else {})
        )

    @property
    def pending(self) -> dict[str, Any]:
        """Values requested but not yet in force (the trainer's and this UI's)."""
        pending = dict(self.progress.pending) if self.progress and self.end is None else {}
        pending.update(self.requested)
        return pending

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

    def latest(self, kind: str) -> Event | None:
        """The latest event of type `kind` (a panel's data: whatever the event carries)."""
        return self.events.get(kind)

    @property
    def last_epoch(self) -> EpochEnd | None:
        return self.epochs[-1] if self.epochs else None
