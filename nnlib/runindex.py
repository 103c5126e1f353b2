"""The runs folder as a workspace: a one-line summary per run directory (the runs table of
`nnlib runs list` and the app's runs screen) and a run's metric curves (compare, export,
`nnlib plot`).

This module and `nnlib.runsummary` (the fold of a log into a row's numbers) turn run-log
events into these views: they read a log only through `nnlib.runs` (`read`, `RunTail`,
`LogScan`, `writer_alive`) and the events' public attributes, so a change of the event
definitions is a change here. A resumed run is read with `runs.continued`'s rule, as the
app reads it.

A row is cheap to make and to keep current: config.json is re-read only when its size or
mtime changes; a run's log is read from where its summary file (`nnlib.runsummary`) left
off, so a run that has ended costs that small file, not its log; and the log is read
incrementally (only the lines appended since the last refresh), so refreshing a folder
where one run is being written reads that run's new lines. A run whose log had to be read
(an older run without a summary, a crashed writer) gets its summary written back once
nothing writes it, where the folder may be written. A new process finds the rows of runs
nothing writes in the folder's index file (`runs.folderindex`), and opens only the files of
runs changed since.

A run forked from another says so in its config.json: `"parent": {"run": "<run directory
name or path>", "step": <the parent's step it started from>}`.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import stat
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import runs
from ._validate import is_number
from .runs import folderindex

if TYPE_CHECKING:
    from .runsummary import LogDigest

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


def ema(values: Sequence[float] | np.ndarray, smoothing: float) -> np.ndarray:
    """TensorBoard's debiased exponential moving average; NaNs are skipped over. The one
    smoothing of training curves: the app's charts, `nnlib plot` and the CSV export."""
    series = np.asarray(values, dtype=np.float64)
    if smoothing <= 0:
        return series
    out = np.empty_like(series)
    last, weight = 0.0, 0.0
    for i, value in enumerate(series):
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


def _size_and_mtime(status: folderindex.FileStatus | None) -> tuple[int, int] | None:
    return None if status is None else (status.size, status.mtime_ns)


class _RunScan:
    """The running totals of one run directory, brought up to date by `update`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.config: dict[str, Any] = {}
        self.config_problem = ""
        self._config_status: folderindex.FileStatus | None = None
        self._log_path = path / runs.EVENTS_FILE
        self.alive = False
        self._start_log()

    def _start_log(self) -> None:
        """Read the log from its summary, else its first line (again, if it was rewritten).
        A log its summary was written for as it stands counts as read already."""
        self._log = runs.LogScan(self.path)
        self._events_sig: tuple[int, int] | None = self._log.untouched
        self.read_problem = ""

    def update(self, status: folderindex.RunStatus) -> None:
        """Bring the row up to date with the run directory, `status` taken just before."""
        self._update_config(status.config)
        ended = self._log.digest.end_reason is not None
        if ended and _size_and_mtime(status.events) == self._events_sig:
            return  # an ended run whose log did not change: nothing can have changed
        # Asked whatever the log said before: an ended run that grows is being resumed.
        self.alive = runs.writer_alive(self.path)
        signature = _signature(self._log_path)
        if signature is not None and self._events_sig and signature[0] < self._events_sig[0]:
            self._start_log()  # shorter than what was read: rewritten, so read it afresh
        self._events_sig = signature
        if signature is not None:
            self._read_log()

    def _read_log(self) -> None:
        """Read the lines appended since the last update (a failure is the row's problem);
        a log nothing writes any more gets its summary written up to where it was read."""
        try:
            self._log.read()
        except OSError as error:
            self.read_problem = f"{self._log_path}: cannot read ({error.strerror})"
            return
        self.read_problem = ""
        if not self.alive and self._log.position[0] > self._log.saved:
            self._log.save()  # the next reader reads the summary: where it may be written

    def _update_config(self, status: folderindex.FileStatus | None) -> None:
        """Read config.json again only when its status changed."""
        if status != self._config_status:
            self._config_status = status
            self.config, self.config_problem = _read_config(self.path)

    def summary(self) -> RunSummary:
        """The run's row as its config and log read so far say."""
        log = self._log.digest
        problem = self.config_problem or self.read_problem or log.problem or self._log.notice
        return _row(self.path, self.config, log, self._state(log), problem)

    def entry(self, key: str, state: str) -> folderindex.Entry:
        """The row as the folder index keeps it, for the status of this key (a copy of the
        digest: this scan goes on)."""
        return folderindex.Entry(key, state, self.config, dataclasses.replace(self._log.digest))

    def _state(self, log: LogDigest) -> str:
        """How the run ended as its log says; else running while its writer lives, crashed
        when it wrote something and died, empty when it never started."""
        if log.end_reason is not None:
            return END_STATES.get(log.end_reason, "finished")
        if self.alive:
            return "running"
        return "crashed" if log.any_event or runs.writer_started(self.path) else "empty"


class _KeptRow:
    """A run's row taken from the folder index, good while the run's status is the one kept
    (`RunIndex._scan` asks): a _RunScan that reads nothing."""

    def __init__(self, path: Path, entry: folderindex.Entry) -> None:
        self._entry = entry
        self._row = _row(path, entry.config, entry.digest, entry.state, "")

    def update(self, status: folderindex.RunStatus) -> None:
        """Nothing to read: the status is the one kept."""

    def summary(self) -> RunSummary:
        return self._row

    def entry(self, key: str, state: str) -> folderindex.Entry:
        return self._entry


def _row(
    path: Path, config: dict[str, Any], log: LogDigest, state: str, problem: str
) -> RunSummary:
    """The row of a run of this config and log digest: the one way a row is made."""
    best_metric, best = (
        ("val_accuracy", log.val_accuracy)
        if log.val_accuracy is not None
        else ("val_loss", log.val_loss)
    )
    dataset, arch, total = planned(config)
    return RunSummary(
        path=path,
        dataset=dataset,
        arch=arch,
        state=state,
        reason=log.end_reason or "",
        error=log.error,
        epochs_done=log.epochs,
        epochs_total=total,
        best_metric=best_metric,
        best_value=best,
        test_metric=log.test_metric,
        test_value=log.test_value,
        started=log.first,
        duration=_duration(log, state),
        parent=parent_of(config),
        problem=problem,
        config=config,
        peak_rss=log.peak_rss,
        samples_per_sec=log.samples_per_sec,
    )


def planned(config: Mapping[str, Any]) -> tuple[str, str, int]:
    """What a run's config says it trains: the dataset's name, the architecture and the
    epochs planned (0 when unknown); from the fields nnlib writes, else a hand-written
    config's top-level keys. The runs table and the app's replay read it the same way."""
    trainer = config_object(config, "trainer")
    name = config_object(config, "dataset_info").get("name") or config.get("dataset") or ""
    arch = config_object(trainer, "model").get("spec") or config.get("arch") or ""
    total = trainer.get("epochs", config.get("epochs"))
    return Path(str(name)).stem, str(arch), config_count(total)


def config_count(value: Any) -> int:
    """A count a config records (epochs, parameters, classes): a positive int, else 0 for
    unknown (a hand-written config may hold anything there)."""
    return value if type(value) is int and value > 0 else 0


def _duration(log: LogDigest, state: str) -> float | None:
    """How long the run took from its first event to its last, or to now while it runs;
    None when it logged nothing."""
    if log.first is None:
        return None
    end = time.time() if state == "running" else log.last
    return max((end or log.first) - log.first, 0.0)


def config_object(mapping: Mapping[str, Any], key: str) -> dict[str, Any]:
    """The JSON object at `key` of a config read from a file; {} when it is not one."""
    value = mapping.get(key)
    return value if isinstance(value, dict) else {}


def _read_config(run_dir: Path) -> tuple[dict[str, Any], str]:
    """A run's config.json ({} when it has none) and what is wrong with it ("" if nothing)."""
    path = run_dir / runs.CONFIG_FILE
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, ""
    except (OSError, ValueError, RecursionError) as error:
        return {}, f"{path}: cannot read ({error})"
    if isinstance(config, dict):
        return config, ""
    return {}, f"{path}: expected a JSON object"


def is_run_dir(path: Path) -> bool:
    """A directory that holds a run's config or log. Raises OSError when it cannot be looked
    into (no permission): an unreadable folder is not taken for one that holds no run."""
    return _is_file(path / runs.CONFIG_FILE) or _is_file(path / runs.EVENTS_FILE)


def run_dir_of(path: str | os.PathLike) -> Path:
    """The run directory `path` names, itself or by its log (what a user may give the app or
    `nnlib plot`); ValueError naming it when there is no such directory."""
    path = Path(path)
    if path.is_file() and path.name == runs.EVENTS_FILE:
        path = path.parent
    if not path.is_dir():
        raise ValueError(f"{path}: no such run directory")
    return path


def _is_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False


class RunIndex:
    """The runs under one folder, summarised; `refresh` brings every summary up to date,
    reading only what changed since the last call (see the module's docstring). A folder
    in it that cannot be read is left out, and named in `skipped` with the reason. The
    rows of runs nothing writes are kept in the folder's index file (`runs.folderindex`),
    so that a new process lists them without opening their files."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root) if root is not None else runs.default_runs_dir()
        self._scans: dict[str, _RunScan | _KeptRow] = {}
        #: The folder index's entries, by run directory name (None: not read yet).
        self._kept: dict[str, folderindex.Entry] | None = None
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
        has gone reads as no runs, one that cannot be read is skipped (see `skipped`). The
        folder index is read at the first refresh, and written after one that changed it."""
        self.skipped = {}
        previous = self._kept if self._kept is not None else folderindex.load(self.root)
        settled_before = time.time_ns() - folderindex.SETTLE_NS
        scans: dict[str, _RunScan | _KeptRow] = {}
        kept: dict[str, folderindex.Entry] = {}
        out: list[RunSummary] = []
        entries = self._entries()
        if entries is None:
            self._scans, self._kept = {}, previous
            return out
        for entry in entries:
            found = self._read(entry, previous)
            if found is None:
                continue
            scan, status, key, summary = found
            out.append(summary)
            scans[entry.name] = scan
            if _keepable(summary) and status.settled(settled_before):
                before = _still_kept(previous, entry.name, key)
                kept[entry.name] = before or scan.entry(key, summary.state)
        self._scans = scans
        self._keep(kept, previous)
        return out

    def _read(
        self, entry: os.DirEntry, previous: Mapping[str, folderindex.Entry]
    ) -> tuple[_RunScan | _KeptRow, folderindex.RunStatus, str, RunSummary] | None:
        """A folder's row brought up to date, with what keeps it and the status it was read
        at (and its key); None for a folder that holds no run, or cannot be read (named in
        `skipped`)."""
        path = self.root / entry.name
        try:
            if not entry.is_dir():
                return None
            status = folderindex.run_status(entry.path)
            if not status.holds_run():
                return None
            key = status.key()
            scan = self._scan(entry.name, path, key, previous)
            scan.update(status)
            return scan, status, key, scan.summary()
        except OSError as error:
            self.skipped[path] = _unreadable(path, error)
            return None

    def _keep(
        self, kept: dict[str, folderindex.Entry], previous: Mapping[str, folderindex.Entry]
    ) -> None:
        """Hold the rows the folder index keeps now, and write it when they changed."""
        changed = kept.keys() != previous.keys() or any(
            kept[name] is not previous[name] for name in kept
        )
        self._kept = kept
        if changed:
            folderindex.save(self.root, kept)

    def _scan(
        self,
        name: str,
        path: Path,
        key: str,
        previous: Mapping[str, folderindex.Entry],
    ) -> _RunScan | _KeptRow:
        """What keeps the run's row: its scan, else its kept row while the run's status is the
        one the folder index kept (`previous`), else a new scan."""
        held = self._scans.get(name)
        if isinstance(held, _RunScan):
            return held
        entry = _still_kept(previous, name, key)
        if entry is not None:
            return held or _KeptRow(path, entry)
        return _RunScan(path)

    def _entries(self) -> list[os.DirEntry] | None:
        """What the folder holds, by name: nothing when it has gone, None (and the folder
        named in `skipped`) when it cannot be listed."""
        try:
            with os.scandir(self.root) as listing:
                return sorted(listing, key=_name)
        except FileNotFoundError:
            return []
        except OSError as error:
            self.skipped[self.root] = _unreadable(self.root, error)
            return None


def _name(entry: os.DirEntry) -> str:
    return entry.name


def _still_kept(
    previous: Mapping[str, folderindex.Entry], name: str, key: str
) -> folderindex.Entry | None:
    """The folder index's entry of the run `name` while the run's status is still the one
    it was kept at (`key`), else None."""
    entry = previous.get(name)
    return entry if entry is not None and entry.status == key else None


def _keepable(summary: RunSummary) -> bool:
    """A row the folder index may keep: of a run nothing writes, read without a problem (a
    problem's text names the paths it was read by)."""
    return summary.state in folderindex.KEPT_STATES and not summary.problem


def _unreadable(path: Path, error: OSError) -> str:
    return f"{path}: cannot be read ({error.strerror or error}); left out of the runs table"


def summarize(path: str | os.PathLike) -> RunSummary:
    """The summary of one run directory."""
    scan = _RunScan(Path(path))
    scan.update(folderindex.run_status(os.fspath(path)))
    return scan.summary()


# -- a run's curves -------------------------------------------------------------------------------
@dataclass
class RunCurves:
    """A run's batch and epoch metrics as rows of numbers (fields of its batch and epoch
    events), fed incrementally: `feed` takes events as they are read."""

    path: Path
    batches: list[dict[str, Any]] = field(default_factory=list)
    epochs: list[dict[str, Any]] = field(default_factory=list)
    #: Its 'hparam' events: the changes of its settings (`effective_settings`).
    hparams: list[runs.Event] = field(default_factory=list)
    ended: bool = False

    @property
    def name(self) -> str:
        return self.path.name

    def feed(self, events: Iterable[runs.Event]) -> None:
        """Add these records (read with the resume rule: `runs.continued`, `runs.RunTail`)."""
        for event in events:
            if event.type in ("batch", "epoch"):
                row = {"step": event.step, "time": event.time, **_numbers(event.data)}
                self.rows(event.type).append(row)
            elif event.type == "hparam":
                self.hparams.append(event)
            self.ended = self.ended or event.type == "end"

    def rows(self, kind: str) -> list[dict[str, Any]]:
        """The "batch" or the "epoch" rows: the one place a kind picks its list."""
        return self.batches if kind == "batch" else self.epochs

    def metrics(self, kind: str) -> list[str]:
        """The numeric fields of the `kind` ("batch" or "epoch") rows, in order of appearance."""
        seen: dict[str, None] = {}
        for row in self.rows(kind):
            seen.update(dict.fromkeys(row))
        return [k for k in seen if k not in ("step", "time", "epoch", "batch")]

    def series(self, kind: str, metric: str, x: str = "step") -> tuple[np.ndarray, np.ndarray]:
        """(xs, ys) of `metric` over the `kind` rows; x "step" (batches done) or "epoch"
        (epochs done: epoch 1, the first, spans 0 to 1 and its validation is at 1, the
        number the app and the CSV export give it). Missing values are NaN."""
        rows = self.rows(kind)
        ys = np.array([_nan(row.get(metric)) for row in rows], dtype=np.float64)
        if x == "step":
            return np.array([row["step"] for row in rows], dtype=np.float64), ys
        return _epochs_done(kind, rows), ys


def _epochs_done(kind: str, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Where each row sits on the epoch axis: epochs done when it was logged (a batch row:
    its epoch's, plus its batch's share of the epoch, the longest epoch seen counting as
    whole)."""
    if kind == "epoch":
        return np.array([row.get("epoch", i) + 1 for i, row in enumerate(rows)], np.float64)
    per_epoch = max((row.get("batch", 0) + 1 for row in rows), default=1)
    return np.array(
        [row.get("epoch", 0) + (row.get("batch", 0) + 1) / per_epoch for row in rows],
        dtype=np.float64,
    )


def _nan(value: Any) -> float:
    return math.nan if value is None else float(value)


def _numbers(data: Mapping[str, Any]) -> dict[str, Any]:
    """The numeric fields of an event (null kept as None: a non-finite value)."""
    return {k: v for k, v in data.items() if v is None or is_number(v)}


def read_curves(path: str | os.PathLike) -> RunCurves:
    """A recorded run's curves as its log holds them now; ValueError (one line) when it has
    no readable log."""
    return CurvesFollower(path).curves


class CurvesFollower:
    """A run's curves, kept current while the run is written (`nnlib plot --watch`): each
    `poll` adds the lines appended since the last one."""

    def __init__(self, path: str | os.PathLike) -> None:
        path = run_dir_of(path)
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
    config, problem = _read_config(Path(path))
    if problem:
        raise ValueError(problem)
    return config


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
#: Settings config.json records twice: the experiment's own fields at the top level, the
#: trainer's view under "trainer" and a fork's parent under "parent" (runs.RunLogger,
#: experiment._assemble). Each path here is another record of the setting it names; an
#: optimizer's hyperparameters (trainer.optimizer.<name>) are the setting <name>.
ALIASES = {
    "trainer.optimizer.name": "optimizer",
    "trainer.model.spec": "arch",
    "trainer.model.input_shape": "input_shape",
    "dataset_info.input_shape": "input_shape",
    "trainer.model.params": "params",
    "trainer.loss": "loss",
    "trainer.epochs": "epochs",
    "trainer.batch_size": "batch_size",
    "trainer.replicas": "replicas",
    "parent.run": "parent_run",
    "parent.step": "parent_step",
    "dataset_info.name": "dataset",
}
_OPTIMIZER = "trainer.optimizer."
#: The name an 'hparam' event gives a setting, where it is not the setting's own.
HPARAM_SETTINGS = {"base_lr": "lr"}


def setting_key(path: str) -> str:
    """The one key of the setting a dotted config path records (trainer.optimizer.lr: lr)."""
    if path in ALIASES:
        return ALIASES[path]
    return path.removeprefix(_OPTIMIZER) if path.startswith(_OPTIMIZER) else path


def settings_of(config: Mapping[str, Any]) -> dict[str, Any]:
    """A config's settings, each once under its key (`setting_key`), in first-seen order.
    Where one is recorded twice, its own key's value is taken, the other record's when
    that is missing or null (a fork's parent_step given as @last)."""
    out: dict[str, Any] = {}
    for path, value in flatten(config).items():
        key = setting_key(path)
        if out.get(key) is None or (path == key and value is not None):
            out[key] = value
    return out


@dataclass(frozen=True)
class Change:
    """A setting changed mid-run (an 'hparam' event): at `step`, to `value`, by `source`
    (app, remote, signal, script)."""

    step: int
    value: Any
    source: str = ""


@dataclass(frozen=True)
class Setting:
    """A setting as a run ran with it: its starting value (config.json) and its changes."""

    start: Any
    changes: tuple[Change, ...] = ()

    def ran(self) -> tuple[str, tuple[tuple[int, str], ...]]:
        """What the run trained with, for comparing runs (who changed it aside)."""
        return _canonical(self.start), tuple((c.step, _canonical(c.value)) for c in self.changes)

    def text(self) -> str:
        """`0.05 → 0.1@120(app) → 0.025@300(remote)`."""
        parts = [value_text(self.start)]
        for change in self.changes:
            source = f"({change.source})" if change.source else ""
            parts.append(f"{value_text(change.value)}@{change.step}{source}")
        return " → ".join(parts)


def value_text(value: Any) -> str:
    """A setting's value as a person reads it: 0.05, 1e-05, 64, adam, – for none."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return value if isinstance(value, str) else json.dumps(value)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def effective_settings(
    config: Mapping[str, Any], changes: Iterable[runs.Event] = ()
) -> dict[str, Setting]:
    """A run's settings as it ran: each setting of its config once (`settings_of`), with
    the changes its 'hparam' events made, in order. `changes` are the run's events read
    with the resume rule (`runs.continued`, as `RunCurves.hparams` holds them); a setting
    changed that its config lacks starts at the event's `old` value."""
    start = settings_of(config)
    made: dict[str, list[Change]] = {}
    for event in changes:
        if event.type != "hparam":
            continue
        name = str(event.get("name"))
        key = HPARAM_SETTINGS.get(name, name)
        start.setdefault(key, event.get("old"))
        source = event.get("source")
        made.setdefault(key, []).append(
            Change(event.step, event.get("new"), source if isinstance(source, str) else "")
        )
    return {key: Setting(value, tuple(made.get(key, ()))) for key, value in start.items()}


def settings_diff(
    runs_settings: Sequence[Mapping[str, Setting]],
) -> dict[str, list[Setting | None]]:
    """The settings that were not the same in every run (a starting value or a change that
    differs; IDENTITY_KEYS aside), each with its Setting per run (None where a run has not
    got it), in first-seen order."""
    keys = dict.fromkeys(itertools.chain.from_iterable(runs_settings))
    out = {}
    for key in keys:
        found = [settings.get(key) for settings in runs_settings]
        ran = {None if s is None else s.ran() for s in found}
        if key not in IDENTITY_KEYS and len(ran) > 1:
            out[key] = found
    return out


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
            smooth = [float(emas[m][i]) if kind == "batch" else None for m in smoothed]
            lines.append(",".join(_csv_cells(kind, row, metrics, smooth)))
    return "\n".join(lines) + "\n"


def _csv_cells(
    kind: str, row: Mapping[str, Any], metrics: Sequence[str], smooth: Sequence[float | None]
) -> list[str]:
    """One row of the CSV export in its header's order: the epoch and batch counted from 1,
    the time and metrics, then the EMAs (`smooth`: None on an epoch row, an empty cell)."""
    counts = [row.get(k) for k in COUNTED_FROM_1]
    cells = [kind, _cell(row["step"])]
    cells += [_cell(None if n is None else n + 1) for n in counts]
    cells += [_cell(row.get(k)) for k in ["time", *metrics]]
    return cells + [_cell(value) for value in smooth]


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def events_json(path: str | os.PathLike) -> str:
    """Every event of a run as a JSON array of flat records (type, time, step, fields)."""
    return "[\n" + ",\n".join(json.dumps(r, allow_nan=False) for r in read_events(path)) + "\n]\n"
