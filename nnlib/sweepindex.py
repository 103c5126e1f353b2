"""The sweeps under a runs folder, for the runs table (`nnlib runs list` and the app's runs
screen): a sweep folder holds `sweep.json` and one run directory per trial attempt, so it is
no run itself and `RunIndex` passes it by; `SweepIndex` finds it and summarises it as one row
(its state, trials done of planned, the best metric) with a row per trial (the current
attempt's run summary, its state and metric as the sweep recorded them, its parameters).

The index is read with the sweep driver's strict reader (`read_index`) and only again when
sweep.json changes; the trials' run directories are read incrementally by a `RunIndex` of
the sweep folder, so following a running sweep reads only what its trials append.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .runindex import RunIndex, RunSummary, _signature, is_run_dir
from .sweeps.driver import DONE, _stem, ranked, read_index
from .sweeps.spec import SweepError
from .sweeps.trial import INDEX_FILE


@dataclass(frozen=True)
class TrialSummary:
    """One trial of a sweep as a row: `run` is its current attempt's run summary (a
    placeholder at the trial's first folder while it is pending), with the sweep's state
    and metric for it; `params` the values this trial was given."""

    index: int
    run: RunSummary
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SweepSummary:
    """What the runs table shows about one sweep folder; `problem` names why its index could
    not be read (then it has no trials)."""

    path: Path
    state: str = ""
    metric: str = ""
    direction: str = ""
    params: tuple[str, ...] = ()
    done: int = 0
    total: int = 0
    best_value: float | None = None
    created: float | None = None
    trials: tuple[TrialSummary, ...] = ()
    problem: str = ""
    #: The index as read (sweeps.driver.read_index), for the sweep view's ranking.
    index: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def name(self) -> str:
        return self.path.name

    def as_run(self) -> RunSummary:
        """The sweep as one row of the runs table: its state, trials done of planned in the
        epochs column and the best trial's metric as its best score."""
        return RunSummary(
            path=self.path,
            dataset="sweep",
            state=self.state or "error",
            epochs_done=self.done,
            epochs_total=self.total,
            best_metric=self.metric,
            best_value=self.best_value,
            started=self.created,
            problem=self.problem,
        )

    def ranked(self) -> list[TrialSummary]:
        """The trials best first (sweeps.driver.ranked)."""
        return [self.trials[t["index"]] for t in ranked(dict(self.index))] if self.index else []


def is_sweep_dir(path: Path) -> bool:
    """A directory that holds a sweep's index (a regular file, not followed if a link)."""
    try:
        return (path / INDEX_FILE).is_file() and not (path / INDEX_FILE).is_symlink()
    except OSError:
        return False


class SweepScan:
    """One sweep folder, summarised by `update`: its index read again when it changes, its
    trials by a RunIndex."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.runs = RunIndex(path)
        self._signature: tuple[int, int] | None = None
        self.index: dict[str, Any] = {}
        self.problem = ""

    def update(self) -> SweepSummary:
        self._read_index()
        if not self.index:
            return SweepSummary(self.path, problem=self.problem)
        spec, records = self.index["spec"], self.index["trials"]
        trials = self._trials(records, spec["metric"])
        best = self.index["best"]
        return SweepSummary(
            path=self.path,
            state=self.index["state"],
            metric=spec["metric"],
            direction=spec["direction"],
            params=tuple(spec["params"]),
            done=sum(trial["state"] in DONE for trial in records),
            total=len(records),
            best_value=records[best]["metric"] if best is not None else None,
            created=self.index.get("created") if _is_time(self.index.get("created")) else None,
            trials=trials,
            index=self.index,
        )

    def _read_index(self) -> None:
        """Read sweep.json again only when its size or mtime changed; a bad one leaves no
        index and says why in `problem`."""
        signature = _signature(self.path / INDEX_FILE)
        if signature == self._signature:
            return
        self._signature = signature
        try:
            self.index, self.problem = read_index(self.path), ""
        except SweepError as error:
            self.index, self.problem = {}, str(error)

    def _trials(self, records: list[dict[str, Any]], metric: str) -> tuple[TrialSummary, ...]:
        """Each trial's row: its run folder's summary (a blank one before it has a folder)
        with the state, error and metric the sweep's index records."""
        summaries = {s.path.name: s for s in self.runs.refresh()}
        trials = []
        for trial in records:
            folder = trial["run"] or _stem(self.index, trial["index"])
            run = summaries.get(folder) or RunSummary(self.path / folder)
            run = dataclasses.replace(
                run,
                state=trial["state"],
                error=trial["error"] or run.error,
                best_metric=metric,
                best_value=trial["metric"],
            )
            trials.append(TrialSummary(trial["index"], run, dict(trial["params"])))
        return tuple(trials)


def _is_time(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


class SweepIndex:
    """The sweep folders directly under a runs folder, summarised; `refresh` brings them up
    to date reading only what changed (see the module's docstring)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self._scans: dict[Path, SweepScan] = {}

    def refresh(self) -> list[SweepSummary]:
        """A summary per sweep folder under the root, by name (none when it cannot be
        listed: the runs index says why)."""
        try:
            entries = sorted(self.root.iterdir())
        except OSError:
            entries = []
        scans, out = {}, []
        for path in entries:
            try:
                if not path.is_dir() or is_run_dir(path) or not is_sweep_dir(path):
                    continue
            except OSError:
                continue
            scan = self._scans.get(path) or SweepScan(path)
            out.append(scan.update())
            scans[path] = scan
        self._scans = scans
        return out
