"""Where a dashboard's run comes from, and where its requests go: a run trained here, a run
read from its directory (followed while another process writes it), or a fixed sequence of
updates (`nntui.stream`). The dashboard starts `run` in a thread worker, folds what it posts
into its state, and sends every request (keys, the edit dialog) through `steer`; it needs no
if/else on the kind of run. Everything the screen asks of a run goes through this door: the
steering requests (`steer`), the views made on demand (`ask`), saving the model (`save_model`)
and forking (`fork`, `fork_before`); a refusal is a `Refused` whose text the screen shows.
Like harlequin's query.py beside its app, this module imports no Textual: the worker bodies
live here and touch no widget."""

from __future__ import annotations

import dataclasses
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnlib import checkpointing, events, remote
from nnlib.callbacks import Callback
from nnlib.callbacks.ondemand import OnDemand
from nnlib.config import ExperimentConfig
from nnlib.threads import blas_threads

from .bridge import Bridge
from .replay import RecordedRun
from .stream import Batches, Notice, RunStarted, Update

if TYPE_CHECKING:
    from nnlib.experiment import Experiment
    from nnlib.trainer import Trainer

Post = Callable[[Update], None]
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


#: Records a person waits to see, shown at once; the rest waits for the redraw timer.
AT_ONCE_RECORDS = ("pause", "resume", "stop", "diverged", "hparam", "pace", "end")


def awaited(update: Update) -> bool:
    """What a person waits to see: the start, the end, a change they asked for, a record in
    AT_ONCE_RECORDS, the app's own notices. These (and everything while paused) are shown at
    once; the stream of batches, epochs and views waits for the redraw timer."""
    if isinstance(update, events.Event):
        return update.type in AT_ONCE_RECORDS
    return not isinstance(update, Batches)


class Inbox:
    """Updates a run's worker thread posts, taken in order by the UI thread, which is woken
    (`wake`, thread-safe) only for one that is `awaited`, or while the run is paused: it
    takes everything queued before it too, and a redraw timer takes the rest. spirals sends
    ~1,000 updates a second: a message for each took the UI thread 2.5 CPU-seconds of a
    3000-epoch run (0.9 then), time the training thread lost through the GIL."""

    def __init__(self, wake: Callable[[], object], paused: Callable[[], bool | None]) -> None:
        self._wake, self._paused = wake, paused
        self._queue: deque[Update] = deque()
        self._streaming = False  # batches are coming while the run is not paused

    def post(self, update: Update) -> None:
        """(The worker's thread.) Queue `update`, waking the UI thread if it is awaited."""
        self._queue.append(update)
        if isinstance(update, Batches):  # while paused (single steps), all comes at once
            self._streaming = self._paused() is not True
        elif isinstance(update, events.Pause | events.End):
            self._streaming = False
        if awaited(update) or not self._streaming:
            self._wake()

    def take(self) -> Iterator[Update]:
        """(The UI thread.) The updates queued, oldest first, until none is left."""
        while self._queue:
            yield self._queue.popleft()


class Refused(ValueError):
    """The run refused a request (a bad value, a step while running): nothing changed."""


@dataclasses.dataclass(frozen=True)
class Fork:
    """A fork ready to start: its experiment, and what to say once it has started."""

    config: ExperimentConfig
    note: str = ""


#: The fields of an experiment a fork can change (the others, Adam's betas say, it keeps).
FORKABLE = frozenset(f.name for f in dataclasses.fields(ExperimentConfig))


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
    """A fixed sequence of updates (reproducible pictures for tests and docs), and the
    base of the others: nothing to run, nothing to steer."""

    #: The worker's name, or None when there is nothing to run in one.
    worker: str | None = None
    #: The model is not in this process (the keys that need it are not offered).
    recorded = False
    title = "nntui"

    def __init__(self, updates: Iterable[Update] = ()) -> None:
        self.updates = list(updates)  # shown at once, before the worker starts
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
        """(A worker thread.) Post the run's updates until it ends or `stop` is called."""

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

    def ask(self, kind: type[OnDemand], what: str, **arguments: Any) -> str | None:
        """Ask the training thread for `what` (the view `kind` makes on demand) at its next
        batch boundary (at once while parked, for a view that serves then); `arguments` go to
        its `request`. The line saying when it comes, or None when it comes now. Refused:
        why it cannot be asked."""
        raise Refused("a recorded run shows what was recorded")

    @property
    def run_dir(self) -> Path | None:
        """The run's directory, once known."""
        return None

    def model_file(self) -> Path:
        """Where the model is saved by default, once its weights hold still. Refused: no
        model here, or it is still training."""
        raise Refused("there is no model yet")

    def save_model(self, path: str | Path | None = None) -> Path:
        """Save the model (to `path`, else `model_file()`); the file written. Refused as
        `model_file` is."""
        raise Refused("there is no model yet")

    def forkable(self) -> None:
        """Nothing, when the run can be forked now (`fork`). Refused: why not."""
        raise Refused("there is no run to fork yet")

    def fork(self, changes: Mapping[str, Any]) -> Fork:
        """A new run from this one's state now (a parked run is checkpointed first; an ended
        one forks from its last checkpoint) with `changes`. Refused as `forkable` is."""
        raise Refused("there is no run to fork yet")

    def fork_before(self, suggestion: Mapping[str, Any]) -> Fork:
        """A warning's fork (`Diagnostic.fork`): its change, from the newest step checkpoint
        before the step its evidence began at. Refused: no such checkpoint, or (a run written
        by another process) the command that forks it there."""
        step, path = self._checkpoint_before(suggestion["before"])
        name, value = suggestion["name"], suggestion["value"]
        note = (
            f"forked from {path.name} (step {step}, before step {suggestion['before']}) with "
            f"{name} {value:g}; this run stays on disk: the runs screen's compare (ctrl+r, "
            "space to mark, c) shows both"
        )
        return self._fork_from(path, {name: value}, note)

    def _checkpoint_before(self, before: int) -> tuple[int, Path]:
        """The step and file of the newest step checkpoint before step `before`."""
        run_dir = self.run_dir
        if run_dir is None:
            raise Refused("there is no run to fork yet")
        steps = checkpointing.step_checkpoints(run_dir / checkpointing.FOLDER)
        earlier = [step for step in steps if step < before]
        if not earlier:
            raise Refused(f"no checkpoint before step {before} to fork from: nothing forked")
        return max(earlier), steps[max(earlier)]

    def _fork_from(self, path: Path, changes: Mapping[str, Any], note: str = "") -> Fork:
        """The fork of this run from the checkpoint at `path` with `changes`."""
        from nnlib.experiment import fork_config

        try:
            checkpoint = checkpointing.load(path)
            config = fork_config(f"{self.run_dir}@{checkpoint.step}", **changes)
            if checkpoint.epoch >= config.epochs:  # a finished run: as many epochs again
                config = config.replace(epochs=checkpoint.epoch + config.epochs)
        except (OSError, ValueError) as error:
            raise Refused(f"cannot fork: {error}") from None
        return Fork(config, note)


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

        def forward(update: Update) -> None:
            if isinstance(update, RunStarted):
                self._started.set()
            post(update)

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
                control.set_pace(default_pace(experiment.model.built_input_shape), source=SOURCE)
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
            if not bridge.ended:  # else the bridge has sent the end record with the message
                data = {
                    "reason": "error",
                    "epoch": trainer.epoch if trainer else 0,
                    "error": f"{type(error).__name__}: {error}",
                }
                post(events.make("end", trainer.global_step if trainer else 0, data))
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

    @property
    def run_dir(self) -> Path | None:
        return self._experiment.run_dir if self._experiment is not None else None

    def ask(self, kind: type[OnDemand], what: str, **arguments: Any) -> str | None:
        trainer = self.trainer
        if self.finished.is_set():
            raise Refused("the run has ended")
        if trainer is None or not self._started.is_set():
            raise Refused("still loading the dataset")
        callback = next((c for c in trainer.callbacks if isinstance(c, kind)), None)
        if callback is None:
            raise Refused(f"this run has no {what}")
        callback.request(**arguments)
        if trainer.paused and kind.WHILE_PARKED:
            return None
        return f"{what} at the next batch" + (
            " (paused: press n to run one batch)" if trainer.paused else ""
        )

    def _still(self, then: str) -> Experiment:
        """The experiment, once its weights hold still: parked by a pause, or ended. (The
        dashboard says "paused" during a single step (n) too: only a parked trainer leaves
        the weights still while another thread reads them.)"""
        experiment = self._experiment
        if experiment is None:
            raise Refused("there is no model yet")
        if not self.finished.is_set() and not experiment.trainer.wait_until_parked(timeout=0):
            raise Refused(then)
        return experiment

    def _holding_still(self) -> Experiment:
        return self._still(
            "pause (space) or stop (s) the run first, and let a single-step batch finish, "
            "so the weights hold still"
        )

    def model_file(self) -> Path:
        return self._holding_still().run_dir / "model.npz"

    def save_model(self, path: str | Path | None = None) -> Path:
        experiment = self._holding_still()  # (again: the run may have gone on meanwhile)
        return experiment.model.save(path or experiment.run_dir / "model.npz")

    def _forking(self) -> Experiment:
        if not self._started.is_set():
            raise Refused("there is no run to fork yet")
        return self._still("pause the run (space) first, then f forks it")

    def forkable(self) -> None:
        self._forking()

    def fork(self, changes: Mapping[str, Any]) -> Fork:
        experiment = self._forking()
        try:
            if not self.finished.is_set():
                trainer = experiment.trainer
                folder = experiment.run_dir / checkpointing.FOLDER
                path = checkpointing.step_file(folder, trainer.global_step)
                checkpointing.save(trainer, path, "fork")
            else:
                path = checkpointing.find(experiment.run_dir)
        except (OSError, ValueError) as error:
            raise Refused(f"cannot fork: {error}") from None
        return self._fork_from(path, {k: v for k, v in changes.items() if k in FORKABLE})


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
        super().__init__(recorded.updates)
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
                for update in self.record.poll():
                    step = getattr(update, "step", step)
                    post(update)
        except (OSError, ValueError) as error:
            post(Notice("error", step, f"stopped following the run log: {error}"))
        finally:
            self.finished.set()

    @property
    def run_dir(self) -> Path | None:
        return self.record.run_dir

    def fork_before(self, suggestion: Mapping[str, Any]) -> Fork:
        """The model is in another process: the command that forks the run there."""
        step, _ = self._checkpoint_before(suggestion["before"])
        option = "--" + suggestion["name"].replace("_", "-")
        raise Refused(
            "this run was trained in another process: fork it with nnlib train --fork "
            f"{self.run_dir}@{step} {option} {suggestion['value']:g}"
        )

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
    replay: Iterable[Update] | None = None,
    recorded: RecordedRun | None = None,
    start_paused: bool = False,
) -> RunSource:
    """The source a dashboard shows: `replay`'s updates, `recorded`, or `config` trained
    (parked before its first batch with `start_paused`)."""
    if replay is not None:
        return RunSource(replay)
    if recorded is not None:
        return FollowedRun(recorded)
    return LiveRun(config, start_paused)
