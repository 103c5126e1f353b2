"""`Trainer`: the training loop, its callback hooks, and live control from other threads.

Control calls (`pause`, `resume`, `step`, `stop`, `set`) may come from any thread. They only
record a request under a lock; the training thread applies requests at batch boundaries and
reports each one as an event with the step at which it took effect. A paused trainer blocks
on a condition variable, so it uses no CPU.

A run is one `fit()` call, from its start to its last `on_train_end`; a trainer runs one at a
time (a second concurrent `fit()` raises RuntimeError). Requests are never lost between runs:
a `stop()` made while no run is in progress stops the next run at its first batch boundary
(so a stop sent just after starting `fit()` in a thread always takes effect), and a `set()`
that arrives while a run is ending is applied as soon as it has ended.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _validate
from .callbacks.base import Callback, History, Logs
from .losses import Loss
from .metrics import accuracy, check_finite, evaluate_predictions
from .model import Sequential
from .optimizers import Optimizer
from .threads import AUTO, Threads, blas_threads, resolve_threads

#: Why a run ended, as recorded in logs['reason'] and the run log.
END_REASONS = ("finished", "stopped", "early_stop", "diverged", "interrupted", "error")


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
        from .callbacks.stopping import DivergenceGuard

        self.model = model
        self.loss = loss
        self.optimizer = optimizer
        self.history = History()
        extra = list(callbacks)
        if divergence_guard and not any(isinstance(c, DivergenceGuard) for c in extra):
            extra.append(DivergenceGuard())
        self.callbacks: list[Callback] = [self.history, *extra]
        self.batch_size = 32
        self.stop_training = False
        self.stop_reason: str | None = None
        self.state = "idle"
        self.epoch = 0
        self.batch = 0
        self.global_step = 0
        self.epochs = 0
        self.steps_per_epoch = 0
        self.validation_data: tuple[np.ndarray, np.ndarray] | None = None
        self.validation_outputs: np.ndarray | None = None
        self._condition = threading.Condition()
        self._paused = False
        self._parked = False
        self._pause_announced = False
        self._step_budget = 0
        self._stop_requested: str | None = None  # the end reason a stop() asked for
        self._applying = threading.RLock()  # set() requests are applied in order, one at a time
        self._runs_ended = 0
        self._in_run = False  # from fit's start to its last on_train_end: set() must queue
        self._pending: list[tuple[str, Any]] = []

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
        leaves BLAS alone elsewhere; an integer sets the count; None leaves BLAS alone.

        Raises RuntimeError if this trainer is already running a fit() (on another thread).
        """
        with self._condition:
            if self._in_run:
                raise RuntimeError(
                    "Trainer.fit: this trainer is already running fit() on another thread; "
                    "wait for that run to end, or train a second model with its own Trainer"
                )
            self._in_run = True
            runs_before = self._runs_ended
        try:
            return self._fit(
                x, y, epochs, batch_size, validation_data, validation_split, shuffle, seed, threads
            )
        finally:
            with self._condition:
                self._in_run = False
                if self._runs_ended != runs_before:  # a stop sent during the run ends with it
                    self._stop_requested = None
            self._apply_requests(epoch_boundary=True)  # sent while the run was ending

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
        self.batch_size = _validate.positive_int("fit", "batch_size", batch_size)
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
        threads = resolve_threads("fit", threads)
        self.validation_data = validation_data
        self.validation_outputs = None
        self.epochs = epochs
        self.stop_training, self.stop_reason = False, None
        with blas_threads(threads):
            return self._run(x, y, rng, shuffle)

    def _run(
        self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator, shuffle: bool
    ) -> History:
        """The run itself: hooks, epochs, and an `on_train_end` however it ends."""
        epochs = self.epochs
        self.state = "running"
        end_logs: Logs = {}
        reason = "finished"
        try:
            # Inside the try: a callback failing here still ends the run (state, log, waiters).
            self._call("on_train_begin")
            for epoch in range(epochs):
                self.epoch = epoch
                self._apply_requests(epoch_boundary=True)
                order = rng.permutation(len(x)) if shuffle else np.arange(len(x))
                self.steps_per_epoch = math.ceil(len(x) / self.batch_size)
                self._call("on_epoch_begin", epoch)
                epoch_logs = self._train_epoch(x, y, order)
                if epoch_logs is None:  # stopped before its first batch: nothing to report
                    break
                self._call("on_epoch_end", epoch, epoch_logs)
                if self.stop_training:
                    break
            if self.stop_training:
                reason = self.stop_reason or "stopped"
        except KeyboardInterrupt:
            reason = "interrupted"
            raise
        except BaseException as error:
            reason = "error"
            end_logs["error"] = f"{type(error).__name__}: {error}"
            raise
        finally:
            with self._condition:  # a pause or step left over must not park the next run
                self._paused = self._parked = self._pause_announced = False
                self._step_budget = 0
                self._runs_ended += 1
                self._condition.notify_all()  # wake wait_until_parked: no park will come
            self.state = {"finished": "finished", "diverged": "diverged", "error": "error"}.get(
                reason, "stopped"
            )
            end_logs.update(reason=reason, epoch=self.epoch, step=self.global_step)
            self._call("on_train_end", end_logs, every=True)
        return self.history

    def _train_epoch(self, x: np.ndarray, y: np.ndarray, order: np.ndarray) -> Logs | None:
        """Train one epoch; its logs, or None when the run stopped before its first batch."""
        self.model.train()
        seen, loss_sum, correct, active_time = 0, 0.0, 0.0, 0.0
        classification = self.loss.task == "classification"
        for batch, start in enumerate(range(0, len(order), self.batch_size)):
            if not self._wait_at_boundary():
                self.stop_training = True
                self.stop_reason = self.stop_reason or "stopped"
                break
            self.batch = batch
            began = time.perf_counter()
            self._call("on_batch_begin", batch)
            index = order[start : start + self.batch_size]
            logs = self._train_batch(x[index], y[index])
            self.global_step += 1
            seen += len(index)
            loss_sum += logs["loss"] * len(index)
            if classification:
                correct += logs["accuracy"] * len(index)
            active_time += time.perf_counter() - began
            logs["samples_per_sec"] = seen / active_time if active_time > 0 else 0.0
            self._call("on_batch_end", batch, logs)
            if self.stop_training:
                break
        if not seen:
            return None
        logs = {
            "epoch": self.epoch,
            "step": self.global_step,
            "loss": loss_sum / seen,
            **self.hyperparameters(),
            "seconds": active_time,
            "samples_per_sec": seen / active_time if active_time > 0 else 0.0,
        }
        if classification:
            logs["accuracy"] = correct / seen
        if self.validation_data is not None:
            xv, yv = self.validation_data
            with np.errstate(over="ignore", invalid="ignore"):  # after a divergence, too
                self.validation_outputs = self.model.predict(xv)
                logs["val_loss"] = self.loss(self.validation_outputs, yv)
            if classification:
                logs["val_accuracy"] = accuracy(self.validation_outputs, yv)
        return logs

    def _train_batch(self, xb: np.ndarray, yb: np.ndarray) -> Logs:
        """One forward/backward/update. A non-finite loss skips the update, so the weights
        stay the last finite ones; the divergence guard then stops the run."""
        with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported, not warned
            outputs = self.model.forward(xb)
            loss = self.loss(outputs, yb)
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
            self.model.backward_params(self.loss.backward())
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

    # -- hooks and events -----------------------------------------------------------------
    def _call(self, hook: str, *args: Any, every: bool = False) -> None:
        """Call `hook` on each callback in order. With `every`, an error in one callback does
        not keep the others from being called (the run log still gets its 'end'); the first
        error is raised afterwards."""
        first_error: BaseException | None = None
        for callback in self.callbacks:
            try:
                getattr(callback, hook)(self, *args)
            except BaseException as error:
                if not every:
                    raise
                first_error = first_error or error
        if first_error is not None:
            raise first_error

    def emit(self, event: str, **data: Any) -> None:
        """Send an event to every callback's `on_event` (histograms, checkpoints, ...)."""
        data.setdefault("step", self.global_step)
        for callback in self.callbacks:
            callback.on_event(self, event, data)

    def hyperparameters(self) -> dict[str, Any]:
        """The hyperparameters in force: lr (after time-based decay), the optimizer's own,
        and the batch size."""
        values = dict(self.optimizer.config())
        values["base_lr"] = values["lr"]
        values["lr"] = self.optimizer.current_lr
        values["batch_size"] = self.batch_size
        return values

    # -- control (any thread) -------------------------------------------------------------
    def pause(self) -> None:
        """Park the training thread at the next batch boundary."""
        with self._condition:
            self._paused = True
            self._step_budget = 0
            self._condition.notify_all()

    def resume(self) -> None:
        with self._condition:
            self._paused = self._parked = False
            self._condition.notify_all()

    def step(self) -> None:
        """While paused, run exactly one more batch, then stay paused."""
        with self._condition:
            if self._paused:
                self._step_budget += 1
                self._parked = False  # so that wait_until_parked waits for the next park
                self._condition.notify_all()

    def stop(self, reason: str = "stopped") -> None:
        """Finish the current batch, then end the run with `reason` ('stopped', or
        'interrupted' for a signal). Made while no run is in progress, the request waits: the
        next fit() calls on_train_begin, stops at its first batch boundary and ends with
        `reason` (unlike Keras's stop_training, which fit resets), so a stop() sent just
        after a thread started fit() is never lost."""
        if reason not in END_REASONS:
            raise ValueError(f"Trainer.stop: reason must be one of {END_REASONS}, got {reason!r}")
        with self._condition:
            self._stop_requested = self._stop_requested or reason
            self._parked = False
            self._condition.notify_all()

    @property
    def paused(self) -> bool:
        """True once a pause has been requested (the thread parks at the next boundary)."""
        return self._paused

    def wait_until_parked(self, timeout: float | None = None) -> bool:
        """Block until the training thread is parked by a pause (its 'pause' event sent and
        `state` 'paused'); True if it is. After `step()`, this waits for the next park. Returns
        False at the timeout, or when the run ends without parking."""
        with self._condition:
            ended = self._runs_ended
            return (
                self._condition.wait_for(lambda: self._parked or self._runs_ended != ended, timeout)
                and self._parked
            )

    def set(self, name: str, value: Any) -> None:
        """Change a hyperparameter: lr, momentum, weight_decay, batch_size or any other of
        the optimizer's. Validated now (ValueError, nothing changed); applied by the training
        thread before the next batch, or — for batch_size — from the next epoch."""
        value = self.validate_hyperparameter(name, value)
        with self._condition:
            self._pending.append((name, value))
            in_run = self._in_run
        if not in_run:  # no training thread to apply it: apply it now, on this thread
            self._apply_requests(epoch_boundary=True)
        # else the training thread applies it, at a boundary or once its run has ended

    def validate_hyperparameter(self, name: str, value: Any) -> Any:
        """Return `value` checked for `name`, or raise ValueError naming both."""
        if name == "batch_size":
            return _validate.positive_int("Trainer", "batch_size", value)
        if name == "base_lr":
            name = "lr"
        if name not in type(self.optimizer).hyperparameters:
            settable = ", ".join([*type(self.optimizer).hyperparameters, "batch_size"])
            raise ValueError(
                f"{type(self.optimizer).__name__} has no hyperparameter {name!r}; "
                f"settable: {settable}"
            )
        return self.optimizer.validate(name, value)

    def pending(self) -> dict[str, Any]:
        """Requested values not applied yet (for a UI to show at once)."""
        with self._condition:
            return dict(self._pending)

    # -- the training thread's side of control ---------------------------------------------
    def _wait_at_boundary(self) -> bool:
        """Park while paused, then apply requests. Returns False when the run must stop."""
        with self._condition:
            park = self._must_park()
        if park:
            self.state = "paused"
            if not self._pause_announced:
                self._pause_announced = True
                self.emit("pause")
            with self._condition:
                while self._must_park():
                    # Marked parked only now (waiters see the state and the event), and again
                    # after every wake-up that leaves it parked: resume() clears the mark, and a
                    # pause() that follows before this thread runs must see it set again.
                    self._parked = True
                    self._condition.notify_all()
                    self._condition.wait()
                self._parked = False
        with self._condition:
            stop = self._stop_requested
            stepping = self._paused and self._step_budget > 0
            if stepping:
                self._step_budget -= 1
            resumed = self._pause_announced and not self._paused
        if stop:
            self.stop_reason = self.stop_reason or stop
            return False
        if resumed:
            self._pause_announced = False
            self.emit("resume")
        self._apply_requests(epoch_boundary=False)
        self.state = "paused" if stepping else "running"
        return True

    def _must_park(self) -> bool:
        """Paused with no single step granted and no stop requested (hold the lock)."""
        return self._paused and not self._step_budget and not self._stop_requested

    def _apply_requests(self, epoch_boundary: bool) -> None:
        """Apply pending set() requests in order; batch_size waits for an epoch boundary.
        Requests are taken and applied under one lock, so that two threads applying at once
        (a set() just as a run ends) apply them in the order they were made."""
        with self._applying:
            with self._condition:
                now = [(n, v) for n, v in self._pending if epoch_boundary or n != "batch_size"]
                self._pending = [
                    (n, v) for n, v in self._pending if not epoch_boundary and n == "batch_size"
                ]
            for name, value in now:
                self._apply(name, value)

    def _apply(self, name: str, value: Any) -> None:
        """Set one hyperparameter and report it as an 'hparam' event."""
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
        )
