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


@dataclass(frozen=True)
class TrialTask:
    """What the driver sends a worker: plain data, so it pickles to any Dask worker."""

    sweep_dir: str  # absolute
    index: int
    run_name: str
    config: dict[str, Any]  # an ExperimentConfig's fields, run_dir included
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


def better(a: float, b: float, direction: str) -> bool:
    """True when metric `a` is strictly better than `b` for `direction` ('min' or 'max')."""
    return a < b if direction == "min" else a > b


def best_so_far(curve: list[float | None], direction: str) -> list[float | None]:
    """The best finite value up to each epoch (None until there is one)."""
    best: float | None = None
    out: list[float | None] = []
    for value in curve:
        finite = value is not None and math.isfinite(value)
        if finite and (best is None or better(value, best, direction)):
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
        median = self.medians[epoch] if epoch < len(self.medians) else None
        if epoch + 1 < self.after or median is None or trainer.stop_training:
            return
        if self.best is None or better(median, self.best, self.direction):
            self.pruned = True
            trainer.stop_training = True
            trainer.stop_reason = "early_stop"
            trainer.emit("pruned", monitor=self.metric, value=self.best, median=median, epoch=epoch)


def ignore_terminal_signals() -> None:
    """Worker initializer: Ctrl+C and a hang-up reach the whole process group, but only the
    driver acts on them (it stops the trials through the stop file, so their logs end)."""
    for name in ("SIGINT", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)


def run_trial(task: TrialTask) -> TrialResult:
    """Run one trial to its end; never raises (a failure is a 'failed' result with the reason),
    so that nothing but plain data crosses back from a worker."""
    from ..config import ExperimentConfig
    from ..experiment import setup
    from ..runs import RunDirError

    began = time.monotonic()
    result = TrialResult(task.index, "failed", host=socket.gethostname())
    sweep_dir = Path(task.sweep_dir)
    if not (sweep_dir / INDEX_FILE).is_file():
        result.error = (
            f"{sweep_dir}: not found on worker {result.host} (no {INDEX_FILE}); {SHARED_STORAGE}"
        )
        return result
    pruning = MedianStop(task.metric, task.direction, task.medians, task.after)
    callbacks: list[Callback] = [StopFile(sweep_dir / STOP_FILE)]
    if task.after:
        callbacks.append(pruning)
    try:
        config = ExperimentConfig.from_dict(task.config, source=f"trial {task.index}")
        experiment = setup(config, callbacks=callbacks, checkpoints=True)
        history = experiment.fit(threads=1)
    except (OSError, RunDirError) as error:  # the run directory: not on this worker's storage
        result.error = f"{type(error).__name__}: {error} on worker {result.host}; {SHARED_STORAGE}"
    except Exception as error:  # the trial failed; the sweep goes on
        result.error = f"{type(error).__name__}: {error}"
    else:
        curve = [_finite(row.get(task.metric)) for row in history.epochs]
        result.reason = history.reason
        result.epochs = len(curve)
        result.curve = curve
        best = best_so_far(curve, task.direction)
        if best and best[-1] is not None:
            result.metric = best[-1]
            result.best_epoch = best.index(best[-1])
        result.error = history.end.get("error")
        result.state = _state(history.reason, pruning.pruned)
    if result.state == "failed" and result.error is None:
        result.error = f"training {result.reason}" + (
            " (the loss became NaN or infinite)" if result.reason == "diverged" else ""
        )
    result.seconds = time.monotonic() - began
    return result


def _state(reason: str | None, pruned: bool) -> str:
    if pruned:
        return "pruned"
    if reason in ("finished", "early_stop"):
        return "finished"
    if reason in ("interrupted", "stopped"):
        return "interrupted"
    return "failed"  # diverged, error


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None
