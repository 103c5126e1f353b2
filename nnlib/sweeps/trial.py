"""One trial, as a worker runs it: an ordinary run directory made by `nnlib.experiment.setup`,
trained with one BLAS thread, plus two callbacks that the sweep driver steers it by — a stop
file (the driver's Ctrl+C, across processes and machines alike, through the shared sweep
folder) and median stopping against the finished trials' table given at submit time.

Everything here must import and pickle on a worker that has only nnlib installed.
"""

from __future__ import annotations

import math
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..callbacks.base import Callback, Logs

if TYPE_CHECKING:
    from ..trainer import Trainer

#: The sweep folder's index; a worker that cannot see it is not on the shared storage.
INDEX_FILE = "sweep.json"
#: Written by the driver to stop every running trial (at its next batch boundary).
STOP_FILE = "stop.request"
#: How often a trial looks for the stop file (a stat per look).
STOP_POLL_SECONDS = 0.25
SHARED_STORAGE = (
    "the sweep folder must be on storage that every worker can read and write "
    "(the same path on a shared filesystem)"
)


#: How many folders past the planned one an attempt looks at for a new or empty one.
MAX_ATTEMPT_SKIPS = 1000


@dataclass(frozen=True)
class TrialTask:
    """What the driver sends a worker: plain data, so it pickles to any Dask worker."""

    sweep_dir: str  # absolute
    index: int
    stem: str  # the trial's first folder, e.g. trial-007; later attempts add .2, .3, ...
    attempt: int  # the attempt the driver plans (1-based); a taken folder moves it on
    config: dict[str, Any]  # an ExperimentConfig's fields, without run_dir
    metric: str
    direction: str
    #: per epoch, the median of the finished trials' best-so-far metric (None: too few)
    medians: tuple[float | None, ...] = ()
    after: int = 0  # median stopping from this epoch (1-based); 0 = off


@dataclass
class TrialResult:
    """How a trial ended, for sweep.json: its state, its best metric, its per-epoch curve."""

    index: int
    state: str  # finished, pruned, failed, interrupted
    reason: str | None = None
    metric: float | None = None
    best_epoch: int | None = None
    epochs: int = 0
    curve: list[float | None] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    host: str = ""
    run: str | None = None  # the attempt's folder, as it was claimed
    attempt: int = 0


def attempt_name(stem: str, attempt: int) -> str:
    """The folder of a trial's attempt `attempt` (1-based): `trial-007`, `trial-007.2`, ..."""
    return stem if attempt == 1 else f"{stem}.{attempt}"


def claim_attempt(sweep_dir: Path, stem: str, attempt: int) -> tuple[str, int]:
    """The folder this attempt trains in, claimed: the planned one, or the first new or empty
    one after it. A folder is never reused, also when the same attempt runs again — as Dask
    reruns a task whose worker died, or when the driver never heard how an attempt ended.
    RunDirError when the folder cannot be made at all."""
    from ..runs import RunDirError, RunDirTaken, claim_run_dir

    for number in range(attempt, attempt + MAX_ATTEMPT_SKIPS):
        name = attempt_name(stem, number)
        try:
            claim_run_dir(sweep_dir / name)
        except RunDirTaken:
            continue
        return name, number
    raise RunDirError(
        f"{sweep_dir}: attempts {attempt} to {attempt + MAX_ATTEMPT_SKIPS - 1} of {stem} are "
        "all taken"
    )


def better(a: float, b: float, direction: str) -> bool:
    """True when metric `a` is strictly better than `b` for `direction` ('min' or 'max')."""
    return a < b if direction == "min" else a > b


def best_so_far(curve: list[float | None], direction: str) -> list[float | None]:
    """The best finite value up to each epoch (None until there is one)."""
    best: float | None = None
    out: list[float | None] = []
    for value in curve:
        if (
            value is not None
            and math.isfinite(value)
            and (best is None or better(value, best, direction))
        ):
            best = value
        out.append(best)
    return out


class StopFile(Callback):
    """Stops the run (reason 'interrupted') once the driver's stop file appears."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._next_look = 0.0

    def on_batch_end(self, trainer: Trainer, batch: int, logs: Logs) -> None:
        now = time.monotonic()
        if now >= self._next_look:
            self._next_look = now + STOP_POLL_SECONDS
            if self.path.exists():
                trainer.stop("interrupted")


class MedianStop(Callback):
    """Median stopping: from epoch `after` (1-based) on, stop the run when its best metric so
    far is worse than `medians[epoch]`, and log a 'pruned' event saying so."""

    def __init__(
        self, metric: str, direction: str, medians: tuple[float | None, ...], after: int
    ) -> None:
        self.metric, self.direction, self.medians, self.after = metric, direction, medians, after
        self.curve: list[float | None] = []
        self.best: float | None = None
        self.pruned = False

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Logs) -> None:
        self.curve.append(_finite(logs.get(self.metric)))
        self.best = best_so_far(self.curve, self.direction)[-1]
        median = self._median(epoch)
        if median is None or trainer.stop_training:
            return
        if self.best is None or better(median, self.best, self.direction):
            self.pruned = True
            trainer.stop_training = True
            trainer.stop_reason = "early_stop"
            trainer.emit("pruned", monitor=self.metric, value=self.best, median=median, epoch=epoch)

    def _median(self, epoch: int) -> float | None:
        """The median a run must beat at `epoch` (0-based): None before epoch `after`, and
        where too few trials finished to have one."""
        if epoch + 1 < self.after or epoch >= len(self.medians):
            return None
        return self.medians[epoch]


def ignore_terminal_signals() -> None:
    """Worker initializer: Ctrl+C and a hang-up reach the whole process group, but only the
    driver acts on them (it stops the trials through the stop file, so their logs end)."""
    for name in ("SIGINT", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)


def run_trial(task: TrialTask) -> TrialResult:
    """Run one trial to its end; never raises (a failure is a 'failed' result with the reason),
    so that nothing but plain data crosses back from a worker: an exception from the
    executor means the worker was lost, never that the trial failed."""
    began = time.monotonic()
    result = TrialResult(task.index, "failed", host=socket.gethostname())
    sweep_dir = Path(task.sweep_dir)
    if not (sweep_dir / INDEX_FILE).is_file():
        result.error = (
            f"{sweep_dir}: not found on worker {result.host} (no {INDEX_FILE}); {SHARED_STORAGE}"
        )
        return result
    _train(task, sweep_dir, result)
    result.seconds = time.monotonic() - began
    return result


def _train(task: TrialTask, sweep_dir: Path, result: TrialResult) -> None:
    """Claim the attempt's folder, train the trial there and fill in `result` with how it
    ended; an exception is the result's error, never raised."""
    from ..config import ExperimentConfig
    from ..experiment import setup
    from ..runs import RunDirError

    pruning = MedianStop(task.metric, task.direction, task.medians, task.after)
    callbacks: list[Callback] = [StopFile(sweep_dir / STOP_FILE)]
    if task.after:
        callbacks.append(pruning)
    try:
        result.run, result.attempt = claim_attempt(sweep_dir, task.stem, task.attempt)
        config = ExperimentConfig.from_dict(
            {**task.config, "run_dir": str(sweep_dir / result.run)}, source=f"trial {task.index}"
        )
        experiment = setup(config, callbacks=callbacks, checkpoints=True)
        history = experiment.fit(threads=1)
    except (OSError, RunDirError) as error:  # the run directory: not on this worker's storage
        result.error = f"{type(error).__name__}: {error} on worker {result.host}; {SHARED_STORAGE}"
    except Exception as error:  # the trial failed; the sweep goes on
        result.error = f"{type(error).__name__}: {error}"
    else:
        curve = [_finite(row.get(task.metric)) for row in history.epochs]
        _conclude(
            result, curve, history.reason, history.end.get("error"), pruning.pruned, task.direction
        )


def logged_result(run_dir: Path, index: int, metric: str, direction: str) -> TrialResult | None:
    """How the trial whose attempt is `run_dir` ended, read from its run log, as `run_trial`
    would have reported it; None when the log has no end (the run was killed, or still runs)
    or cannot be read. The driver's record of a trial whose end it did not hear."""
    from .. import runs

    try:
        events = runs.read(run_dir)
    except ValueError:
        return None
    if not events or events[-1].type != "end":
        return None
    end = events[-1]
    result = TrialResult(index, "failed", run=run_dir.name, host="")
    curve = [_finite(e.get(metric)) for e in events if e.type == "epoch"]
    pruned = any(e.type == "pruned" for e in events)
    _conclude(result, curve, end.get("reason"), end.get("error"), pruned, direction)
    result.seconds = max(0.0, end.time - events[0].time)
    return result


def _conclude(
    result: TrialResult,
    curve: list[float | None],
    reason: str | None,
    error: str | None,
    pruned: bool,
    direction: str,
) -> None:
    """Fill in how a trial's training ended: its curve and best metric, its reason and state,
    and for a failure why (when training gave no error of its own)."""
    result.reason, result.curve, result.epochs = reason, curve, len(curve)
    best = best_so_far(curve, direction)
    if best and best[-1] is not None:
        result.metric = best[-1]
        result.best_epoch = best.index(best[-1])
    result.state = _state(reason, pruned)
    result.error = error
    if result.state == "failed" and error is None:
        result.error = f"training {reason}{_FAILURE_NOTES.get(reason, '')}"


#: A trial's state by the reason its training ended; any other reason (diverged, error) is
#: a failure.
_STATES: dict[str | None, str] = {
    "finished": "finished",
    "early_stop": "finished",
    "interrupted": "interrupted",
    "stopped": "interrupted",
}
#: What a failure's reason adds to its message, where the reason alone says too little.
_FAILURE_NOTES: dict[str | None, str] = {"diverged": " (the loss became NaN or infinite)"}


def _state(reason: str | None, pruned: bool) -> str:
    return "pruned" if pruned else _STATES.get(reason, "failed")


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None
