"""Callbacks that end a run: EarlyStopping and the DivergenceGuard."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .base import Callback, Logs

if TYPE_CHECKING:
    from ..trainer import Trainer


def improvement_mode(monitor: str, mode: str) -> str:
    """'min' or 'max': accuracies are maximised, everything else minimised (Keras's 'auto')."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    return mode


def read_monitor(owner: str, monitor: str, logs: Logs) -> float:
    """The monitored value from epoch logs, or a clear error listing what is there."""
    if monitor not in logs:
        available = ", ".join(k for k, v in logs.items() if isinstance(v, float))
        raise ValueError(
            f"{owner}: monitor {monitor!r} is not in the epoch logs "
            f"(available: {available}); give validation data for val_* metrics"
        )
    return float(logs[monitor])


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by more than `min_delta` for `patience` epochs
    in a row (as Keras does; 0 and 1 both stop at the first epoch without improvement).

    With `restore_best_weights`, the model ends with the weights of its best epoch. A NaN
    or infinite value is never the best.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 5,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best_weights: bool = True,
    ) -> None:
        if patience < 0:
            raise ValueError(f"EarlyStopping: patience must be >= 0, got {patience}")
        self.monitor = monitor
        self.patience = patience
        self.min_delta = abs(min_delta)
        self.mode = improvement_mode(monitor, mode)
        self.restore_best_weights = restore_best_weights
        self._forget_best()

    def on_train_begin(self, trainer: Trainer) -> None:
        self._forget_best()

    def _forget_best(self) -> None:
        """Also done up front, so that on_train_end is safe when another callback's
        on_train_begin failed before this one's ran."""
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch: int | None = None
        self.best_weights: dict[str, np.ndarray] | None = None
        self.wait = 0

    def _improved(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Logs) -> None:
        value = read_monitor("EarlyStopping", self.monitor, logs)
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            weights = trainer.model.get_weights()
            if all(np.isfinite(w).all() for w in weights.values()):
                self.best_weights = weights
            return
        self.wait += 1
        if self.wait >= self.patience and not trainer.stop_training:
            trainer.stop_training = True
            trainer.stop_reason = "early_stop"
            trainer.emit(
                "early_stop",
                monitor=self.monitor,
                best=self.best,
                best_epoch=self.best_epoch,
                epoch=epoch,
            )

    def on_train_end(self, trainer: Trainer, logs: Logs) -> None:
        if self.restore_best_weights and self.best_weights is not None:
            trainer.model.set_weights(self.best_weights)
            logs["restored_epoch"] = self.best_epoch


class DivergenceGuard(Callback):
    """Stop the run (reason 'diverged') as soon as the loss is NaN or infinite, or above
    `max_loss` when one is given. The trainer never applies the update of a batch whose loss
    is not finite (a finite loss above `max_loss` has been applied when the guard sees it)."""

    def __init__(self, max_loss: float | None = None) -> None:
        self.max_loss = max_loss

    def _diverged(self, loss: float) -> bool:
        return not math.isfinite(loss) or (self.max_loss is not None and loss > self.max_loss)

    def on_batch_end(self, trainer: Trainer, batch: int, logs: Logs) -> None:
        if self._diverged(logs["loss"]):
            trainer.stop_training = True
            trainer.stop_reason = "diverged"
            trainer.emit("diverged", loss=logs["loss"], epoch=trainer.epoch, batch=batch)
