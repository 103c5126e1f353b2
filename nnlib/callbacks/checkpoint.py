"""ModelCheckpoint: save the best model, or every N epochs, atomically."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .base import Callback, Logs
from .stopping import improvement_mode, read_monitor

if TYPE_CHECKING:
    from ..trainer import Trainer


class ModelCheckpoint(Callback):
    """Write `model.save(path)` when `monitor` improves (`save_best_only`), or every `every`
    epochs, and/or once when the run ends however it ends (`at_end`). The file name of `path`
    may hold {epoch} and {step}; its folder is used as written (braces and all). Files are
    written to a temporary name and renamed, so a crash never leaves a half-written
    checkpoint; weights holding NaN are never saved as the best."""

    def __init__(
        self,
        path: str | Path,
        monitor: str = "val_loss",
        save_best_only: bool = True,
        every: int | None = None,
        at_end: bool = False,
        mode: str = "auto",
    ) -> None:
        if every is not None and every < 1:
            raise ValueError(f"ModelCheckpoint: every must be >= 1 epochs, got {every}")
        self.folder, self.name = Path(path).parent, Path(path).name
        self._file_name(0, 0)  # a bad template fails here, not after the first epoch
        self.monitor = monitor
        self.save_best_only = save_best_only and every is None
        self.every = every
        self.at_end = at_end
        self.mode = improvement_mode(monitor, mode)
        self.best = math.inf if self.mode == "min" else -math.inf
        self.saved: list[Path] = []

    def on_train_end(self, trainer: Trainer, logs: Logs) -> None:
        if self.at_end:
            logs["checkpoint"] = str(self._save(trainer, trainer.epoch, "end", None))

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Logs) -> None:
        if self.save_best_only:
            value = read_monitor("ModelCheckpoint", self.monitor, logs)
            better = value < self.best if self.mode == "min" else value > self.best
            if math.isfinite(value) and better and _finite_weights(trainer):
                self.best = value
                self._save(trainer, epoch, "best", value)
        elif self.every is not None and (epoch + 1) % self.every == 0:
            self._save(trainer, epoch, f"every {self.every}", logs.get(self.monitor))

    def _save(self, trainer: Trainer, epoch: int, why: str, value: float | None) -> Path:
        written = trainer.model.save(self.folder / self._file_name(epoch + 1, trainer.global_step))
        self.saved.append(written)
        trainer.emit(
            "checkpoint",
            path=str(written),
            epoch=epoch,
            reason=why,
            monitor=self.monitor,
            value=value,
        )
        return written

    def _file_name(self, epoch: int, step: int) -> str:
        """The file name with {epoch} and {step} filled in; ValueError for any other field."""
        try:
            return self.name.format(epoch=epoch, step=step)
        except (KeyError, IndexError, ValueError, AttributeError) as error:
            raise ValueError(
                f"ModelCheckpoint: the file name {self.name!r} may hold only {{epoch}} and "
                f"{{step}} (write a literal brace as {{{{ or }}}}): {type(error).__name__}: {error}"
            ) from None


def _finite_weights(trainer: Trainer) -> bool:
    return all(np.isfinite(p.value).all() for p in trainer.model.parameters())
