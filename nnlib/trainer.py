"""`Trainer`: the training loop.

The loop's two companions live apart: `nnlib.callbacks.callback_list.CallbackList` holds the
callbacks (a History first, a DivergenceGuard by default) and calls them, and
`nnlib.control.RunControl` takes pause, resume, step, stop, set and a pace from any thread and
acts on them at batch boundaries (its docstring tells when a request takes effect). The Trainer
offers the control's calls as its own, so `trainer.pause()` and `trainer.control.pause()` are
the same door.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _validate
from .callbacks.base import Callback, History, Logs
from .callbacks.callback_list import CallbackList
from .control import RunControl
from .events import MAX_INT
from .losses import Loss
from .metrics import accuracy, check_finite, evaluate_predictions
from .model import Sequential, check_fits, check_growth
from .optimizers import Optimizer
from .replicas import Replicas
from .states import RunStatus
from .threads import (
    AUTO,
    ThreadPlan,
    Threads,
    blas_threads,
    replica_count,
    replica_processes,
    resolve_threads,
)

#: The largest batch size: what a run log's integers hold (any size beyond the data's trains on
#: all of it in one batch).
MAX_BATCH_SIZE = MAX_INT


@dataclass
class Position:
    """Where a run stands in its data, enough to continue it exactly: the epoch, the batches
    and samples of it already trained, the running sums behind the epoch's logs, and the
    shuffle generator's state at the epoch's start (before its permutation was drawn), from
    which the same permutation is drawn again. `begun`: the epoch's start is behind it (a
    batch size requested since waits for the next epoch). From a checkpoint: `source` names
    it, and `batch_size` is the one in force there, which the next fit keeps (it may have been
    steered away from the one fit is given); `replicas` is the count it trained with and
    `replica_processes` whether they ran in processes, which a resumed fit given threads=AUTO
    keeps (a fork's say 1 and False: a new run's plan is its own)."""

    epoch: int = 0
    batch: int = 0
    offset: int = 0
    seen: int = 0
    loss_sum: float = 0.0
    correct: float = 0.0
    shuffle_state: Mapping[str, Any] | None = None
    begun: bool = False
    source: str | None = None
    batch_size: int | None = None
    replicas: int = 1
    replica_processes: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class Trainer:
    """Train `model` on `loss` with `optimizer`, calling `callbacks` at every hook.

    A `DivergenceGuard` is added unless one is given (or `divergence_guard=False`).
    """

    def __init__(
        self,
        model: Sequential,
        loss: Loss,
        optimizer: Optimizer,
        callbacks: Sequence[Callback] = (),
        divergence_guard: bool = True,
    ) -> None:
        self.model = model
        self.loss = loss
        self.optimizer = optimizer
        self.callbacks = CallbackList(self, callbacks, divergence_guard)
        self.history = self.callbacks.history
        self.control = RunControl(self.validate_hyperparameter, self._apply, self.emit)
        self.batch_size = 32
        #: Training samples of the current (or last) fit: a batch size above it steps on them all.
        self._samples: int | None = None
        self.stop_training = False
        self.stop_reason: str | None = None
        self.epoch = 0
        self.batch = 0
        self.global_step = 0
        self.epochs = 0
        self.steps_per_epoch = 0
        self.validation_data: tuple[np.ndarray, np.ndarray] | None = None
        self.validation_outputs: np.ndarray | None = None
        #: The shuffle generator of the current fit (its state goes into checkpoints).
        self.rng: np.random.Generator | None = None
        #: Set by `resume_at` (nnlib.checkpointing.restore): the next fit starts there.
        self.resume_from: Position | None = None
        #: False while a batch is half done (an interrupt there leaves no usable state).
        self.consistent = True
        #: Set by a callback (in `on_batch_begin`): the next batch trains whole, in one pass
        #: on the training thread, even with replicas; the Tracer's watched step shows that
        #: pass's gradient. Cleared once the batch has run.
        self.unsplit_batch = False
        self._replicas: Replicas | None = None  # fit's, with its ThreadPlan's replicas
        self._position = Position()
        self._epoch_done = False

    @property
    def state(self) -> RunStatus:
        """IDLE, RUNNING, PAUSED, or how the last run ended (see `RunStatus`)."""
        return self.control.state

    @property
    def replica_count(self) -> int:
        """How many replicas the current (or last) fit trains each batch on: 1 without any."""
        return self._replicas.count if self._replicas is not None else 1

    @property
    def replica_processes(self) -> bool:
        """Whether the current (or last) fit's replicas run in child processes."""
        return self._replicas is not None and self._replicas.processes and self.replica_count > 1

    # -- the loop -------------------------------------------------------------------------
    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        epochs: int = 1,
        batch_size: int = 32,
        validation_data: tuple[np.ndarray, np.ndarray] | None = None,
        validation_split: float = 0.0,
        shuffle: bool = True,
        seed: int | None = 0,
        threads: Threads = AUTO,
    ) -> History:
        """Train for `epochs`; returns the History (also at `trainer.history`).

        `validation_split` holds out the last fraction of (x, y), as Keras does; use
        `nnlib.datasets.prepare` for a stratified split. `threads` limits BLAS during the run
        and restores it afterwards: "auto" (the default) uses one thread on machines with two
        cores or fewer, where two were measured up to 3x slower (see `nnlib.threads`), and
        leaves BLAS alone elsewhere; an integer sets the count; None leaves BLAS alone; a
        `ThreadPlan` adds batch workers or replicas (`ThreadPlan(replicas=2)`: each batch in
        two parts trained at once, see `nnlib.replicas`).

        Raises ValueError before training when the plan's replicas cannot train the model
        (`nnlib.replicas.NotSplittable`: a BatchNorm or Dropout layer) or when a batch (at most
        the data) on them would not fit in the free memory (`nnlib.model.ModelTooLarge`),
        RuntimeError if this trainer is already running a fit() (on another thread).
        """
        token = self.control.begin_run()
        try:
            return self._fit(
                x, y, epochs, batch_size, validation_data, validation_split, shuffle, seed, threads
            )
        finally:
            self.control.end_run(token)

    def _fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        epochs: int,
        batch_size: int,
        validation_data: tuple[np.ndarray, np.ndarray] | None,
        validation_split: float,
        shuffle: bool,
        seed: int | None,
        threads: Threads,
    ) -> History:
        """fit() once this thread owns the run: check the arguments, then train."""
        epochs = _validate.positive_int("fit", "epochs", epochs)
        self.batch_size = _validate.positive_int("fit", "batch_size", batch_size, MAX_BATCH_SIZE)
        split = _validate.float_in("fit", "validation_split", validation_split, 0.0, 1.0)
        x, y = self._check_data("training data", x, y)
        if validation_data is not None:
            validation_data = self._check_data("validation data", *validation_data)
        elif split:
            cut = len(x) - int(round(len(x) * split))
            if cut < 1 or cut == len(x):
                raise ValueError(
                    f"fit: validation_split={split} leaves an empty split of {len(x)} samples"
                )
            x, y, validation_data = x[:cut], y[:cut], (x[cut:], y[cut:])
        rng = np.random.default_rng(_validate.seed("fit", seed))
        start = self.resume_from
        if start is not None:
            self._continue_from(start, rng, len(x))
        self._samples = len(x)
        plan = self._plan(threads, start, len(x))
        replicas = Replicas(self.model, self.loss, replica_count(plan), replica_processes(plan))
        self.validation_data = validation_data
        self.validation_outputs = None
        self.epochs = epochs
        self.stop_training, self.stop_reason = False, None
        with blas_threads(plan), replicas:
            self._replicas = replicas
            return self._run(x, y, rng, shuffle)

    def _continue_from(self, start: Position, rng: np.random.Generator, samples: int) -> None:
        """A resumed run's shuffle and batch size, once its position is checked against the
        `samples` of the data it is given."""
        if start.offset > samples:
            raise ValueError(
                f"fit: the checkpoint {start.source} is {start.offset} samples into its "
                f"epoch, but the training data has only {samples}"
            )
        if start.shuffle_state is not None:
            rng.bit_generator.state = start.shuffle_state
        if start.batch_size is not None:
            self.batch_size = start.batch_size

    def _plan(
        self, threads: Threads, start: Position | None, samples: int
    ) -> int | ThreadPlan | None:
        """The fit's BLAS threads or plan, checked before anything is built: AUTO goes on
        with a resumed run's replicas, no more replicas than a batch has samples (each is a
        model copy; as many as the checkpoint's, which a batch steered down since may hold
        fewer), and the batch (of the `samples` at most) on them fits in the free memory
        (`check_fits`)."""
        allowed = max(self.batch_size, start.replicas if start is not None else 1)
        if replica_count(threads) > allowed:
            raise ValueError(
                f"fit: {replica_count(threads)} replicas for batches of {self.batch_size}: "
                "each trains a part of at least one sample; give at most the batch size"
            )
        if threads == AUTO and start is not None and start.replicas > 1:
            # the same sums as before the stop (threads and processes sum alike), the same way
            threads = ThreadPlan(replicas=start.replicas, processes=start.replica_processes)
        plan = resolve_threads("fit", threads)
        batch = min(self.batch_size, samples)
        check_fits(self.model.summary(), batch, replica_count(plan), replica_processes(plan))
        return plan

    def _run(
        self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator, shuffle: bool
    ) -> History:
        """The run itself: hooks, epochs, and an `on_train_end` however it ends."""
        self.control.start()
        self.callbacks.begin_run()
        end_logs: Logs = {}
        reason: str = RunStatus.FINISHED
        try:
            # Inside the try: a callback failing here still ends the run (state, log, waiters).
            self.callbacks.call("on_train_begin")
            self._epochs(x, y, rng, shuffle)
            if self.stop_training:
                reason = self.stop_reason or RunStatus.STOPPED
        except KeyboardInterrupt:
            reason = RunStatus.INTERRUPTED
            raise
        except BaseException as error:
            reason = RunStatus.ERROR
            end_logs["error"] = f"{type(error).__name__}: {error}"
            raise
        finally:
            self.control.finish(reason)
            end_logs.update(reason=str(reason), epoch=self.epoch, step=self.global_step)
            self.callbacks.call("on_train_end", end_logs, every=True)
        return self.history

    def _epochs(
        self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator, shuffle: bool
    ) -> None:
        """Train from where the run starts (a checkpoint's position, said in a 'run_resume'
        event, or the first epoch) to its last epoch or a stop."""
        start, self.resume_from = self.resume_from or Position(), None
        if start.source is not None:
            self.emit(
                "run_resume",
                from_step=self.global_step,
                epoch=start.epoch,
                batch=start.batch,
                checkpoint=start.source,
                replicas=self.replica_count,
                **start.extra,
            )
        self.rng = rng
        for epoch in range(start.epoch, self.epochs):
            self._position = start if epoch == start.epoch else Position(epoch)
            order = self._begin_epoch(epoch, len(x), rng, shuffle)
            self.callbacks.call("on_epoch_begin", epoch)
            epoch_logs = self._train_epoch(x, y, order)
            if epoch_logs is None:  # stopped before its first batch: nothing to report
                return
            # A checkpoint taken from here on starts the next epoch, once this one has
            # seen all its data (a stop mid-epoch still reports the part it trained).
            self._epoch_done = self._position.offset >= len(x)
            self.callbacks.call("on_epoch_end", epoch, epoch_logs)
            if self.stop_training:
                return

    def _begin_epoch(
        self, epoch: int, samples: int, rng: np.random.Generator, shuffle: bool
    ) -> np.ndarray:
        """Set up `epoch` at `self._position`: the requests that wait for an epoch's start
        applied (a resumed epoch has had its start), the shuffle state it draws its order
        from kept (for a checkpoint), the order of its `samples` drawn."""
        self.epoch = epoch
        if not self._position.begun:
            self.control.apply_requests(epoch_boundary=True)
        self._position.begun = True
        self._position.shuffle_state = rng.bit_generator.state
        self._epoch_done = False
        order = rng.permutation(samples) if shuffle else np.arange(samples)
        self.steps_per_epoch = math.ceil(samples / self.batch_size)
        return order

    def position(self) -> Position:
        """Where the next batch would start (a copy): past the epoch once it has ended."""
        if self._epoch_done:
            assert self.rng is not None, "an epoch ends only in fit, which sets rng"
            return Position(self.epoch + 1, shuffle_state=self.rng.bit_generator.state)
        return dataclasses.replace(self._position)

    def _train_epoch(self, x: np.ndarray, y: np.ndarray, order: np.ndarray) -> Logs | None:
        """Train one epoch (from where `self._position` says it stands); its logs, or None
        when the run stopped before its first batch."""
        self.model.train()
        at, active_time, trained = self._position, 0.0, 0  # trained: by this fit, for speed
        classification = self.loss.task == "classification"
        starts = range(at.offset, len(order), self.batch_size)
        for batch, start in enumerate(starts, start=at.batch):
            stop = self.control.at_boundary(self.epoch, batch, self.steps_per_epoch)
            if stop is not None:
                self.stop_training = True
                self.stop_reason = self.stop_reason or stop.value
                break
            self.batch = batch
            began = time.perf_counter()
            self.callbacks.call("on_batch_begin", batch)
            index = order[start : start + self.batch_size]
            self.consistent = False
            logs = self._train_batch(x[index], y[index])
            self.global_step += 1
            at.batch, at.offset = batch + 1, start + len(index)
            at.seen += len(index)
            trained += len(index)
            at.loss_sum += logs["loss"] * len(index)
            if classification:
                at.correct += logs["accuracy"] * len(index)
            self.consistent = True
            active_time += time.perf_counter() - began
            logs["samples_per_sec"] = _speed(trained, active_time)
            self.callbacks.call("on_batch_end", batch, logs)
            if self.stop_training:
                break
        if not at.seen:
            return None
        return self._epoch_logs(active_time, trained)

    def _epoch_logs(self, active_time: float, trained: int) -> Logs:
        """The epoch's logs: its loss (and accuracy) over all its batches, those trained
        before a resume too (the position's running sums); the speed of this fit's part; and
        the loss (and accuracy) on the validation data."""
        at = self._position
        classification = self.loss.task == "classification"
        logs = {
            "epoch": self.epoch,
            "step": self.global_step,
            "loss": at.loss_sum / at.seen,
            **self.hyperparameters(),
            "seconds": active_time,
            "samples_per_sec": _speed(trained, active_time),
        }
        if classification:
            logs["accuracy"] = at.correct / at.seen
        if self.validation_data is not None:
            xv, yv = self.validation_data
            with np.errstate(over="ignore", invalid="ignore"):  # after a divergence, too
                self.validation_outputs = self.model.predict(xv)
                logs["val_loss"] = self.loss(self.validation_outputs, yv)
            if classification:
                logs["val_accuracy"] = accuracy(self.validation_outputs, yv)
        return logs

    def _train_batch(self, xb: np.ndarray, yb: np.ndarray) -> Logs:
        """One forward/backward/update, its parts on the fit's replicas (`nnlib.replicas`).
        A non-finite loss skips the update, so the weights stay the last finite ones; the
        divergence guard then stops the run."""
        whole, self.unsplit_batch = self.unsplit_batch, False
        assert self._replicas is not None, "a batch is trained only inside fit"
        loss, outputs = self._replicas.step(xb, yb, whole)
        logs: Logs = {
            "epoch": self.epoch,
            "batch": self.batch,
            "step": self.global_step + 1,
            "size": len(xb),
            "loss": loss,
            **self.hyperparameters(),
        }
        if self.loss.task == "classification":
            logs["accuracy"] = accuracy(outputs, yb)
        if math.isfinite(loss):
            self.optimizer.step(self.model.parameters())
        return logs

    # -- evaluation -----------------------------------------------------------------------
    def evaluate(self, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> Logs:
        """Mean loss (and accuracy for classification) over (x, y), in batches."""
        x, y = self._check_data("evaluation data", x, y)  # checks x is finite, too
        return evaluate_predictions(self.model.predict(x, batch_size), y, self.loss)

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Model outputs (logits for classification) in evaluation mode, in batches."""
        check_finite("prediction input", np.asarray(x))
        return self.model.predict(np.asarray(x), batch_size)

    def _check_data(self, name: str, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, y = np.asarray(x), np.asarray(y)
        if len(x) != len(y):
            raise ValueError(f"{name}: x has {len(x)} samples but y has {len(y)}")
        if len(x) == 0:
            raise ValueError(f"{name}: no samples")
        shape = self.model.input_shape
        if tuple(x.shape[1:]) != shape:
            raise ValueError(
                f"{name}: the model expects samples of shape {shape}, got {tuple(x.shape[1:])}"
            )
        check_finite(f"{name} x", x)
        check_finite(f"{name} y", y)
        if self.loss.task == "classification":
            classes = self.model.output_shape[-1]
            if not np.issubdtype(y.dtype, np.integer):
                raise ValueError(f"{name}: labels must be integer class indices, got {y.dtype}")
            if y.min() < 0 or y.max() >= classes:
                raise ValueError(
                    f"{name}: labels must be in 0..{classes - 1} for a model with "
                    f"{classes} outputs, got {y.min()}..{y.max()}"
                )
        return x, y

    # -- events and hyperparameters -------------------------------------------------------
    def emit(self, event: str, **data: Any) -> None:
        """Send an event to every callback's `on_event` (see `CallbackList.emit`)."""
        self.callbacks.emit(event, **data)

    def hyperparameters(self) -> dict[str, Any]:
        """The hyperparameters in force: lr (after time-based decay), the optimizer's own,
        and the batch size."""
        values = dict(self.optimizer.config())
        values["base_lr"] = values["lr"]
        values["lr"] = self.optimizer.current_lr
        values["batch_size"] = self.batch_size
        return values

    # -- run control (any thread; see nnlib.control) ------------------------------------------
    def pause(self) -> None:
        """Park the training thread at the next batch boundary."""
        self.control.pause()

    def resume(self) -> None:
        """Let a paused run go on."""
        self.control.resume()

    def step(self) -> None:
        """While paused, run exactly one more batch, then stay paused."""
        self.control.step()

    def stop(self, reason: str = RunStatus.STOPPED) -> None:
        """End the run after the current batch; see `RunControl.stop`."""
        self.control.stop(reason)

    def set(self, name: str, value: Any) -> None:
        """Change a hyperparameter: lr, momentum, weight_decay, batch_size or any other of
        the optimizer's; see `RunControl.set` for when it applies."""
        self.control.set(name, value)

    def pending(self) -> dict[str, Any]:
        """Requested values not applied yet (for a UI to show at once)."""
        return self.control.pending()

    @property
    def paused(self) -> bool:
        """True once a pause has been requested (the thread parks at the next boundary)."""
        return self.control.paused

    def wait_until_parked(self, timeout: float | None = None) -> bool:
        """Block until the run is parked by a pause; see `RunControl.wait_until_parked`."""
        return self.control.wait_until_parked(timeout)

    def validate_hyperparameter(self, name: str, value: Any, memory: bool = True) -> Any:
        """Return `value` checked for `name`, or raise ValueError naming both; a batch size
        also against the free memory (`memory`: not when a checkpoint's pending request is
        restored, which the next fit checks)."""
        if name == "batch_size":
            value = _validate.positive_int("Trainer", "batch_size", value, MAX_BATCH_SIZE)
            if memory:
                self._check_batch_memory(value)
            return value
        if name == "base_lr":
            name = "lr"
        if name not in type(self.optimizer).hyperparameters:
            settable = ", ".join([*type(self.optimizer).hyperparameters, "batch_size"])
            raise ValueError(
                f"{type(self.optimizer).__name__} has no hyperparameter {_validate.shown(name)}; "
                f"settable: {settable}"
            )
        return self.optimizer.validate(name, value)

    def _check_batch_memory(self, value: int) -> None:
        """A one-line ValueError when steering to batch size `value` needs more memory than
        is free beyond what the current batch holds (a run holds that already, so a smaller
        batch is never refused); a batch beyond the data trains on all of it. Before any fit
        nothing is known of the data: `fit` checks at its start."""
        if self._samples is None:
            return
        held, wanted = (min(size, self._samples) for size in (self.batch_size, value))
        summary = self.model.summary()
        asked = f"Trainer: batch_size {value}"
        check_growth(summary, held, wanted, self.replica_count, self.replica_processes, asked)

    def _apply(self, name: str, value: Any, source: str) -> None:
        """Set one hyperparameter and report it as an 'hparam' event naming its source."""
        if name == "batch_size":
            old, self.batch_size = self.batch_size, value
        else:
            attribute = "lr" if name == "base_lr" else name
            old = getattr(self.optimizer, attribute)
            setattr(self.optimizer, attribute, value)
        self.emit(
            "hparam",
            name=name,
            old=old,
            new=value,
            applies="next epoch" if name == "batch_size" else "next batch",
            source=source,
        )


def _speed(samples: int, seconds: float) -> float:
    """Samples trained a second of active time (0 before any time was measured)."""
    return samples / seconds if seconds > 0 else 0.0
