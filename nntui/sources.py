"""Where a dashboard's run comes from, and where its requests go: a run trained here, a run
read from its directory (followed while another process writes it), or a fixed sequence of
snapshots. The dashboard starts `run` in a thread worker, folds what it posts into its state,
and sends every request (keys, the edit dialog) through `steer`; it needs no if/else on the
kind of run. Like harlequin's query.py beside its app, this module imports no Textual: the
worker bodies live here and touch no widget."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from nnlib import remote
from nnlib.callbacks import Callback
from nnlib.config import ExperimentConfig
from nnlib.threads import blas_threads

from .bridge import Bridge, Notice, RunEnded, RunStarted, Snapshot
from .replay import RecordedRun

if TYPE_CHECKING:
    from nnlib.experiment import Experiment
    from nnlib.trainer import Trainer

Post = Callable[[Snapshot], None]
#: How often a recorded run's log is checked for new lines (and the stop flag for quitting).
FOLLOW_SECONDS = 0.2
#: Where the app's own requests come from, in the events that record them.
SOURCE = "app"
#: The app's pace for a model with 1 or 2 input features, in epochs per second: slow enough
#: to watch the Boundary view form (spirals' default MLP separates its arms in about 8
#: epochs), where such a run would otherwise end about 340 epochs a second.
WATCH_PACE = 2.0


def default_pace(input_shape: tuple[int, ...]) -> float | None:
    """The pace a run trained in the app starts at: WATCH_PACE for the models the Boundary
    view draws (1 or 2 input features), full speed (None) for the rest, whose epochs take
    seconds anyway. `nnlib train` is never paced."""
    return WATCH_PACE if len(input_shape) == 1 and input_shape[0] in (1, 2) else None


class Refused(ValueError):
    """The run refused a request (a bad value, a step while running): nothing changed."""


class StopIfCancelled(Callback):
    """Ends a run at its first boundary when the dashboard was left while it was loading
    (`fit` clears stop requests made before it began), so even that run has a complete log:
    run_start, then end with reason "stopped"."""

    def __init__(self, cancelled: threading.Event) -> None:
        self.cancelled = cancelled

    def on_train_begin(self, trainer: Trainer) -> None:
        if self.cancelled.is_set():
            trainer.stop()


class RunSource:
    """A fixed sequence of snapshots (reproducible pictures for tests and docs), and the
    base of the others: nothing to run, nothing to steer."""

    #: The worker's name, or None when there is nothing to run in one.
    worker: str | None = None
    #: The model is not in this process (the keys that need it are not offered).
    recorded = False
    title = "nntui"

    def __init__(self, snapshots: Iterable[Snapshot] = ()) -> None:
        self.snapshots = list(snapshots)  # shown at once, before the worker starts
        self.cancelled = threading.Event()  # the screen was left: end the worker
        self.finished = threading.Event()  # the worker is done (the run log closed)

    @property
    def experiment(self) -> Experiment | None:
        """The experiment trained in this process, once it is set up."""
        return None

    @property
    def trainer(self) -> Trainer | None:
        return self.experiment.trainer if self.experiment is not None else None

    def run(self, post: Post) -> None:
        """(A worker thread.) Post the run's snapshots until it ends or `stop` is called."""

    def stop(self) -> None:
        """Ask the worker to end: a run here stops at its next batch boundary."""
        self.cancelled.set()

    def steer(self, action: str, *arguments: Any) -> str | None:
        """Make one request of the run (pause, resume, step, stop, set NAME VALUE, pace
        EPOCHS_PER_SECOND or None); the answer line, or None when this run cannot be steered
        (yet). Refused: a refusal."""
        return None

    def paused(self) -> bool | None:
        """Whether the trainer is paused or pausing, when that is known here; None: as the
        run log says."""
        return None

    def editable(self, hyperparameters: dict[str, Any]) -> dict[str, Any]:
        """The hyperparameters the edit dialog offers and their values; `hyperparameters`
        are those the run last reported."""
        values = dict(hyperparameters)
        values["lr"] = values.pop("base_lr", values.get("lr"))
        batch_size = values.pop("batch_size", None)
        values = {
            name: value
            for name, value in values.items()
            if name != "decay" and isinstance(value, int | float) and not isinstance(value, bool)
        }
        return {**values, "batch_size": batch_size} if batch_size is not None else values

    def validate(self, name: str, value: Any) -> Any:
        """`value` checked for `name` (ValueError naming both), where that can be done here."""
        return value


class LiveRun(RunSource):
    """An experiment set up and trained in this process; requests go to its run control."""

    worker = "training"

    def __init__(self, config: ExperimentConfig, start_paused: bool = False) -> None:
        """`start_paused`: the run parks before its first batch (step 0)."""
        super().__init__()
        self.config = config
        self.start_paused = start_paused
        self._experiment: Experiment | None = None
        self._started = threading.Event()  # fit has begun: requests may be made

    @property
    def experiment(self) -> Experiment | None:
        return self._experiment

    def run(self, post: Post) -> None:
        """Set up and fit the experiment. Whatever fails is reported as the run's end, so
        the dashboard never waits for a run that is gone."""
        from nnlib.experiment import setup

        def forward(snapshot: Snapshot) -> None:
            if isinstance(snapshot, RunStarted):
                self._started.set()
            post(snapshot)

        bridge = Bridge(forward)
        try:
            with blas_threads(1):  # the UI is always another busy thread: see nnlib.threads
                experiment = setup(
                    self.config,
                    checkpoints=True,
                    callbacks=[bridge, StopIfCancelled(self.cancelled)],
                )
                self._experiment = experiment
                control = experiment.trainer.control  # both in force from the first batch
                control.set_pace(default_pace(experiment.model.input_shape), source=SOURCE)
                if self.start_paused:
                    control.pause(source=SOURCE)
                for note in experiment.data.dataset.notes:  # e.g. a partial MNIST folder
                    post(Notice("note", 0, note))
                # If the screen was left meanwhile, StopIfCancelled ends the run at once.
                experiment.fit()
        except Exception as error:  # a bad dataset, spec or value: shown, not raised
            trainer = self.trainer
            if trainer is None:
                post(Notice("error", 0, f"could not start: {error}"))
            if not bridge.ended:  # else the bridge has sent RunEnded with the message
                post(
                    RunEnded(
                        "error",
                        trainer.global_step if trainer else 0,
                        trainer.epoch if trainer else 0,
                        f"{type(error).__name__}: {error}",
                    )
                )
        finally:
            self.finished.set()

    def stop(self) -> None:
        super().stop()
        if self.trainer is not None:
            self.trainer.stop()

    def steer(self, action: str, *arguments: Any) -> str | None:
        # Until fit has begun (RunStarted), Trainer.set would apply a value right here on
        # the UI thread and emit its event from it: requests wait for the run.
        trainer = self.trainer
        if trainer is None or not self._started.is_set() or self.finished.is_set():
            return None
        try:
            trainer.control.command(action, *arguments, source=SOURCE)
        except ValueError as error:
            raise Refused(str(error)) from None
        return f"{action} {' '.join(map(str, arguments))}".strip()

    def paused(self) -> bool | None:
        return self.trainer.paused if self.trainer is not None else None

    def editable(self, hyperparameters: dict[str, Any]) -> dict[str, Any]:
        trainer = self.trainer
        if trainer is None:
            return super().editable(hyperparameters)
        names = [n for n in type(trainer.optimizer).hyperparameters if n != "decay"]
        values = {name: getattr(trainer.optimizer, name) for name in names}
        values["batch_size"] = trainer.batch_size
        return values

    def validate(self, name: str, value: Any) -> Any:
        trainer = self.trainer
        return trainer.validate_hyperparameter(name, value) if trainer is not None else value


class FollowedRun(RunSource):
    """A run read from its directory, followed while it is shown: while another process
    writes it, and after its end too, since a stopped or crashed run may be resumed into the
    same directory (`nnlib train --resume`), which is then followed on. Requests go to the
    writing process through the run's command file (nnlib.remote), which checks each value
    and answers."""

    recorded = True
    title = "nntui · recorded run"
    worker = "following"

    def __init__(self, recorded: RecordedRun) -> None:
        super().__init__(recorded.snapshots)
        self.record = recorded

    def run(self, post: Post) -> None:
        """Tail the log until `stop` (an ended run is looked at for a resume: new records
        after its end); until the run starts, say what it is waiting for."""
        shown = None  # the waiting note last shown
        step = 0
        try:
            while True:
                note = self.record.waiting()
                if note is not None and note != shown:
                    post(Notice("waiting", 0, note))
                    shown = note
                if self.cancelled.wait(FOLLOW_SECONDS):
                    break
                for snapshot in self.record.poll():
                    step = getattr(snapshot, "step", step)
                    post(snapshot)
        except (OSError, ValueError) as error:
            post(Notice("error", step, f"stopped following the run log: {error}"))
        finally:
            self.finished.set()

    def steer(self, action: str, *arguments: Any) -> str | None:
        """(Blocks until the writer answers: call it from a worker thread.)"""
        if self.record.ended:
            return None
        reply = remote.send(self.record.run_dir, action, *arguments, sender="nntui")
        if not reply.ok:
            raise Refused(reply.message)
        return reply.message


def source_for(
    config: ExperimentConfig,
    replay: Iterable[Snapshot] | None = None,
    recorded: RecordedRun | None = None,
    start_paused: bool = False,
) -> RunSource:
    """The source a dashboard shows: `replay`'s snapshots, `recorded`, or `config` trained
    (parked before its first batch with `start_paused`)."""
    if replay is not None:
        return RunSource(replay)
    if recorded is not None:
        return FollowedRun(recorded)
    return LiveRun(config, start_paused)
