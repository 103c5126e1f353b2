"""The runs folder as a workspace: a one-line summary per run directory (the runs table of
`nnlib runs list` and the app's runs screen) and a run's metric curves (compare, export,
`nnlib plot`).

This is the one module that turns run-log events into these views: it reads a log only
through `nnlib.runs` (`read`, `RunTail`, `writer_alive`) and the events' public
attributes, so a change of the event definitions is a change here. A resumed run is read
with `runs.continued`'s rule, as the app reads it.

A summary is cheap to keep current: config.json is re-read only when its size or mtime
changes, and events.jsonl is read incrementally (only the lines appended since the last
refresh), so refreshing a folder where one run is being written reads that run's new lines.

A run forked from another says so in its config.json: `"parent": {"run": "<run directory
name or path>", "step": <the parent's step it started from>}`.
"""

from __future__ import annotations

import json
import math
import os
import stat
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import runs
from .events import System

#: The EMA weight the app's curves start with, and the default of export and plot.
DEFAULT_SMOOTHING = 0.6
#: How an end event's reason shows as the run's state.
END_STATES = {
    "finished": "finished",
    "early_stop": "finished",
    "stopped": "stopped",
    "interrupted": "stopped",
    "diverged": "diverged",
    "error": "error",
}
#: A run with no end event: "running" while its writer lives, else "crashed" (its writer
#: died without saying how the run ended); "empty" when nothing was ever written (a
#: directory with only a config). "error": the run ended with an error, which it logged
#: (a full disk included: see `runs.WriterLock`).
STATES = ("running", "finished", "stopped", "diverged", "error", "crashed", "empty")


def ema(values: Sequence[float], smoothing: float) -> np.ndarray:
    """TensorBoard's debiased exponential moving average; NaNs are skipped over. The one
    smoothing of training curves: the app's charts, `nnlib plot` and the CSV export."""
    values = np.asarray(values, dtype=np.float64)
    if smoothing <= 0 or values.size == 0:
        return values
    out = np.empty_like(values)
    last, weight = 0.0, 0.0
    for i, value in enumerate(values):
        if math.isfinite(value):
            last = last * smoothing + (1 - smoothing) * value
            weight = weight * smoothing + (1 - smoothing)
        out[i] = last / weight if weight else math.nan
    return out


def check_smoothing(value: float) -> float:
    """An EMA weight must lie in [0, 1): 0 is no smoothing, 1 would never move."""
    if not (isinstance(value, int | float) and 0 <= value < 1):
        raise ValueError(f"smoothing must be a number in [0, 1), got {value!r}")
    return float(value)


# -- one row of the runs table -------------------------------------------------------------------
@dataclass(frozen=True)
class RunSummary:
    """What the runs table shows about one run directory. `problem` names what could not be
    read (a bad config.json or log line); the rest is what could."""

    path: Path
    dataset: str = ""
    arch: str = ""
    state: str = "empty"
    reason: str = ""
    error: str = ""
    epochs_done: int = 0
    epochs_total: int = 0
    best_metric: str = ""
    best_value: float | None = None
    test_metric: str = ""
    test_value: float | None = None
    started: float | None = None
    duration: float | None = None
    parent: str = ""
    problem: str = ""
    config: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    #: The training process's largest resident memory, in bytes ('system' events).
    peak_rss: int | None = None
    #: Samples trained per second of wall time over the whole run ('system' events).
    samples_per_sec: float | None = None

    @property
    def name(self) -> str:
        return self.path.name


def parent_of(config: Mapping[str, Any]) -> str:
    """`run@step` for a forked run's config (its "parent" {run, step}), else ""."""
    parent = config.get("parent")
    if not isinstance(parent, Mapping) or not isinstance(parent.get("run"), str):
        return ""
    step = parent.get("step")
    return Path(parent["run"]).name + (f"@{step}" if type(step) is int else "")


def _signature(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


class _RunScan:
    """The running totals of one run directory, brought up to date by `update`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.config: dict[str, Any] = {}
        self.config_problem = ""
        self._config_sig: tuple[int, int] | None = None
        self._start_log()

    def _start_log(self) -> None:
        """Read the log from its first line (again, if it was rewritten)."""
        self._events_sig: tuple[int, int] | None = None
        self._tail = runs.RunTail(self.path / runs.EVENTS_FILE, on_bad_line=self._bad_line)
        self._clear()

    def _clear(self) -> None:
        """Forget what was read (the log is read again: rewritten, or the run resumed)."""
        self.log_problem = ""
        self.first: float | None = None
        self.last: float | None = None
        self.epochs = 0
        self.val_accuracy: float | None = None
        self.val_loss: float | None = None
        self.test: tuple[str, float] | None = None
        self.end_reason: str | None = None
        self.error = ""
        self.alive = False
        self.any_event = False
        self.system = _SystemTotals()

    def _bad_line(self, error: runs.EventError) -> None:
        self.log_problem = str(error)

    def update(self) -> None:
        config_sig = _signature(self.path / runs.CONFIG_FILE)
        if config_sig != self._config_sig:
            self._config_sig = config_sig
            self._read_config()
        if self.end_reason is not None and _signature(self._tail.path) == self._events_sig:
            return  # an ended run whose log did not change: nothing can have changed
        self.alive = runs.writer_alive(self.path) if self.end_reason is None else False
        signature = _signature(self._tail.path)
        if signature is not None and self._events_sig and signature[0] < self._events_sig[0]:
            self._start_log()  # shorter than what was read: rewritten, so read it afresh
        self._events_sig = signature
        if signature is not None:
            try:
                events = self._tail.read()
                if self._tail.restarted:  # resumed: the log as runs.continued reads it
                    self._clear()
                self._add(events)
            except OSError as error:
                self.log_problem = f"{self._tail.path}: cannot read ({error.strerror})"

    def _read_config(self) -> None:
        path = self.path / runs.CONFIG_FILE
        self.config, self.config_problem = {}, ""
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError, RecursionError) as error:
            self.config_problem = f"{path}: cannot read ({error})"
            return
        if isinstance(config, dict):
            self.config = config
        else:
            self.config_problem = f"{path}: expected a JSON object"

    def _add(self, events: Iterable[runs.Event]) -> None:
        for event in events:
            self.any_event = True
            if event.type != "end":  # anything after an end is a resumed attempt's
                self.end_reason, self.error = None, ""
            self.first = event.time if self.first is None else self.first
            self.last = event.time
            if event.type == "epoch":
                self.epochs = max(self.epochs, int(event.get("epoch", 0)) + 1)
                accuracy, loss = event.get("val_accuracy"), event.get("val_loss")
                if accuracy is not None:
                    self.val_accuracy = max(accuracy, self.val_accuracy or -math.inf)
                if loss is not None:
                    self.val_loss = min(
                        loss, self.val_loss if self.val_loss is not None else math.inf
                    )
            elif event.type == "end":
                self.end_reason = str(event.get("reason"))
                self.error = str(event.get("error") or "")
            elif isinstance(event, System):
                self.system.add(event)
            elif event.type == "test":  # nnlib's test evaluation (TestEvaluator)
                metric = "accuracy" if event.get("accuracy") is not None else "loss"
                if isinstance(event.get(metric), int | float):
                    self.test = (f"test_{metric}", float(event.get(metric)))
                continue
            for metric in ("test_accuracy", "test_loss"):
                value = event.get(metric)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    self.test = (metric, float(value))
                    break

    def summary(self) -> RunSummary:
        config = self.config
        info = config.get("dataset_info") if isinstance(config.get("dataset_info"), dict) else {}
        trainer = config.get("trainer") if isinstance(config.get("trainer"), dict) else {}
        model = trainer.get("model") if isinstance(trainer.get("model"), dict) else {}
        if self.end_reason is not None:
            state = END_STATES.get(self.end_reason, "finished")
        elif self.alive:
            state = "running"
        else:
            state = "crashed" if self.any_event or runs.writer_started(self.path) else "empty"
        best_metric, best = (
            ("val_accuracy", self.val_accuracy)
            if self.val_accuracy is not None
            else ("val_loss", self.val_loss)
        )
        total = trainer.get("epochs", config.get("epochs"))
        duration = None
        if self.first is not None:
            end = time.time() if state == "running" else self.last
            duration = max((end or self.first) - self.first, 0.0)
        return RunSummary(
            path=self.path,
            dataset=Path(str(info.get("name") or config.get("dataset") or "")).stem,
            arch=str(model.get("spec") or config.get("arch") or ""),
            state=state,
            reason=self.end_reason or "",
            error=self.error,
            epochs_done=self.epochs,
            epochs_total=total if type(total) is int and total > 0 else 0,
            best_metric=best_metric,
            best_value=best,
            test_metric=self.test[0] if self.test else "",
            test_value=self.test[1] if self.test else None,
            started=self.first,
            duration=duration,
            parent=parent_of(config),
            problem=self.config_problem or self.log_problem,
            config=config,
            **self.system.fields(),
        )


@dataclass
class _SystemTotals:
    """What a run's 'system' events add to its summary: the peak resident memory, and the
    samples trained over the seconds they cover (weighted so, a mean over the run)."""

    peak: int | None = None
    samples: int = 0
    seconds: float = 0.0

    def add(self, event: System) -> None:
        peak = max(event.peak_rss_bytes or 0, event.rss_bytes or 0)
        self.peak = max(self.peak or 0, peak) or None
        self.samples += event.samples
        self.seconds += event.seconds

    def fields(self) -> dict[str, Any]:
        """RunSummary's peak_rss and samples_per_sec (None: no event said)."""
        speed = self.samples / self.seconds if self.seconds > 0 else None
        return {"peak_rss": self.peak, "samples_per_sec": speed}


def is_run_dir(path: Path) -> bool:
    """A directory that holds a run's config or log. Raises OSError when it cannot be looked
    into (no permission): an unreadable folder is not taken for one that holds no run."""
    return _is_file(path / runs.CONFIG_FILE) or _is_file(path / runs.EVENTS_FILE)


def _is_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False


class RunIndex:
    """The runs under one folder, summarised; `refresh` brings every summary up to date,
    reading only what changed since the last call (see the module's docstring). A folder
    in it that cannot be read is left out, and named in `skipped` with the reason."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root) if root is not None else runs.default_runs_dir()
        self._scans: dict[Path, _RunScan] = {}
        #: What the last refresh left out: path -> one line saying why.
        self.skipped: dict[Path, str] = {}

    def check(self) -> None:
        """Raises ValueError (one line) when the folder cannot be listed."""
        if not self.root.is_dir():
            raise ValueError(f"{self.root}: no such runs folder")
        try:
            with os.scandir(self.root):
                pass
        except OSError as error:
            reason = error.strerror or error
            raise ValueError(f"{self.root}: cannot read the runs folder ({reason})") from None

    def refresh(self) -> list[RunSummary]:
        """A summary per run directory directly under the folder, by name; a folder that
        has gone reads as no runs, one that cannot be read is skipped (see `skipped`)."""
        self.skipped = {}
        try:
            entries = sorted(self.root.iterdir())
        except FileNotFoundError:
            entries = []
        except OSError as error:
            entries = []
            self.skipped[self.root] = _unreadable(self.root, error)
        scans, out = {}, []
        for path in entries:
            try:
                if not (path.is_dir() and is_run_dir(path)):
                    continue
                scan = self._scans.get(path) or _RunScan(path)
                scan.update()
                out.append(scan.summary())
            except OSError as error:
                self.skipped[path] = _unreadable(path, error)
                continue
            scans[path] = scan
        self._scans = scans
        return out


def _unreadable(path: Path, error: OSError) -> str:
    return f"{path}: cannot be read ({error.strerror or error}); left out of the runs table"


def summarize(path: str | os.PathLike) -> RunSummary:
    """The summary of one run directory."""
    scan = _RunScan(Path(path))
    scan.update()
    return scan.summary()


# -- a run's curves -------------------------------------------------------------------------------
@dataclass
class RunCurves:
    """A run's batch and epoch metrics as rows of numbers (fields of its batch and epoch
    events), fed incrementally: `feed` takes events as they are read."""

    path: Path
    batches: list[dict[str, Any]] = field(default_factory=list)
    epochs: list[dict[str, Any]] = field(default_factory=list)
    ended: bool = False

    @property
    def name(self) -> str:
        return self.path.name

    def feed(self, events: Iterable[runs.Event]) -> None:
        """Add these records (read with the resume rule: `runs.continued`, `runs.RunTail`)."""
        for event in events:
            if event.type in ("batch", "epoch"):
                row = {"step": event.step, "time": event.time, **_numbers(event.data)}
                (self.batches if event.type == "batch" else self.epochs).append(row)
            self.ended = self.ended or event.type == "end"

    def metrics(self, kind: str) -> list[str]:
        """The numeric fields of the `kind` ("batch" or "epoch") rows, in order of appearance."""
        seen: dict[str, None] = {}
        for row in self.batches if kind == "batch" else self.epochs:
            seen.update(dict.fromkeys(row))
        return [k for k in seen if k not in ("step", "time", "epoch", "batch")]

    def series(self, kind: str, metric: str, x: str = "step") -> tuple[np.ndarray, np.ndarray]:
        """(xs, ys) of `metric` over the `kind` rows; x "step" (batches done) or "epoch"
        (epochs done: epoch 1, the first, spans 0 to 1 and its validation is at 1, the
        number the app and the CSV export give it). Missing values are NaN."""
        rows = self.batches if kind == "batch" else self.epochs
        ys = np.array([_nan(row.get(metric)) for row in rows], dtype=np.float64)
        if x == "step":
            xs = np.array([row["step"] for row in rows], dtype=np.float64)
        elif kind == "epoch":
            xs = np.array([row.get("epoch", i) + 1 for i, row in enumerate(rows)], np.float64)
        else:
            per_epoch = max((row.get("batch", 0) + 1 for row in rows), default=1)
            xs = np.array(
                [row.get("epoch", 0) + (row.get("batch", 0) + 1) / per_epoch for row in rows],
                dtype=np.float64,
            )
        return xs, ys


def _nan(value: Any) -> float:
    return math.nan if value is None else float(value)


def _numbers(data: Mapping[str, Any]) -> dict[str, Any]:
    """The numeric fields of an event (null kept as None: a non-finite value)."""
    return {
        k: v
        for k, v in data.items()
        if v is None or (isinstance(v, int | float) and not isinstance(v, bool))
    }


def read_curves(path: str | os.PathLike) -> RunCurves:
    """A recorded run's curves as its log holds them now; ValueError (one line) when it has
    no readable log."""
    return CurvesFollower(path).curves


class CurvesFollower:
    """A run's curves, kept current while the run is written (`nnlib plot --watch`): each
    `poll` adds the lines appended since the last one."""

    def __init__(self, path: str | os.PathLike) -> None:
        path = Path(path)
        if path.is_file() and path.name == runs.EVENTS_FILE:
            path = path.parent
        if not path.is_dir():
            raise ValueError(f"{path}: no such run directory")
        if not (path / runs.EVENTS_FILE).is_file():
            raise ValueError(f"{path}: no run log ({runs.EVENTS_FILE}) there")
        self.curves = RunCurves(path)
        self._tail = runs.RunTail(path / runs.EVENTS_FILE)
        while self.poll():  # up to a bad line, which the next read raises
            pass

    @property
    def done(self) -> bool:
        """The run has ended, or nothing writes it any more."""
        return self.curves.ended or not runs.writer_alive(self.curves.path)

    def poll(self) -> bool:
        """Read what was appended; True when anything was. Raises EventError (a
        ValueError naming file:line) on a bad line, OSError when the log cannot be read."""
        events = self._tail.read()
        if self._tail.restarted:  # resumed: the whole run again, as runs.continued reads it
            self.curves = RunCurves(self.curves.path)
        self.curves.feed(events)
        return bool(events)


def read_events(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every event of a run as a flat JSON-ready record: type, time, step, then its fields."""
    return [{"type": e.type, "time": e.time, "step": e.step, **e.data} for e in runs.read(path)]


def config_of(path: str | os.PathLike) -> dict[str, Any]:
    """A run's config.json ({} when it has none or it is not an object)."""
    scan = _RunScan(Path(path))
    scan._read_config()
    if scan.config_problem:
        raise ValueError(scan.config_problem)
    return scan.config


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config keys as dotted paths (trainer.optimizer.lr); lists stay values."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


#: Keys that differ between any two runs by construction, so a diff leaves them out.
IDENTITY_KEYS = ("run_dir",)


def config_diff(configs: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """The configuration keys (dotted) whose values are not the same in every config, each
    with its value per config (None where a config lacks it), in first-seen order."""
    flat = [flatten(c) for c in configs]
    keys: dict[str, None] = {}
    for f in flat:
        keys.update(dict.fromkeys(f))
    out = {}
    for key in keys:
        shown = {json.dumps(f.get(key, _MISSING), sort_keys=True, default=str) for f in flat}
        if key not in IDENTITY_KEYS and (len(shown) > 1 or any(key not in f for f in flat)):
            out[key] = [f.get(key) for f in flat]
    return out


_MISSING = "\0missing"


#: One marker per run where runs are overlaid (the app's compare screen, `nnlib plot`), so
#: they stay apart without colour.
RUN_MARKERS = ("●", "▲", "■", "◆", "✚", "★")
#: The most runs overlaid in one chart (one marker each).
MAX_OVERLAID = len(RUN_MARKERS)
#: The batch metrics the app smooths; the CSV export adds their EMA as <name>_ema.
SMOOTHED = ("loss", "accuracy")


#: The CSV export's columns for the epoch and the batch in it: counted from 1, as the app,
#: `nnlib plot` and the progress lines count them (the run log's fields count from 0).
COUNTED_FROM_1 = {"epoch": "epoch_1based", "batch": "batch_1based"}


def curves_csv(curves: RunCurves, smoothing: float = DEFAULT_SMOOTHING) -> str:
    """A run's batch and epoch rows as CSV, one table (a `kind` column says which), with
    the EMA the app draws of the batch loss and accuracy. The epoch and the batch in it
    count from 1, and their columns say so (COUNTED_FROM_1); `step` is the number of
    batches done. Every number is written as Python's shortest repr, so it reads back
    exactly; a missing or non-finite value is an empty cell (pandas reads it as NaN)."""
    batch_metrics, epoch_metrics = curves.metrics("batch"), curves.metrics("epoch")
    metrics = list(dict.fromkeys(batch_metrics + epoch_metrics))
    smoothed = [m for m in SMOOTHED if m in batch_metrics]
    header = [
        "kind",
        "step",
        *COUNTED_FROM_1.values(),
        "time",
        *metrics,
        *(f"{m}_ema" for m in smoothed),
    ]
    emas = {m: ema(curves.series("batch", m)[1], smoothing) for m in smoothed}
    lines = [",".join(header)]
    for kind, rows in (("batch", curves.batches), ("epoch", curves.epochs)):
        for i, row in enumerate(rows):
            counts = [row.get(k) for k in COUNTED_FROM_1]
            cells = [kind, _cell(row["step"])]
            cells += [_cell(None if n is None else n + 1) for n in counts]
            cells += [_cell(row.get(k)) for k in ["time", *metrics]]
            cells += [_cell(float(emas[m][i])) if kind == "batch" else "" for m in smoothed]
            lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def events_json(path: str | os.PathLike) -> str:
    """Every event of a run as a JSON array of flat records (type, time, step, fields)."""
    return "[\n" + ",\n".join(json.dumps(r, allow_nan=False) for r in read_events(path)) + "\n]\n"
