"""Learning-rate schedules: step, exponential, cosine and time-based decay.

A schedule scales the learning rate the run started with by factor(t), t counted in epochs
(default) or batches. When someone sets lr by hand mid-run, the schedule carries on from the
new value instead of overwriting it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .. import _validate
from .base import Callback

if TYPE_CHECKING:
    from ..trainer import Trainer


class LearningRateSchedule(Callback):
    """Base class: subclasses define `factor(t)`; `per` is 'epoch' or 'batch'."""

    def __init__(self, per: str = "epoch") -> None:
        if per not in ("epoch", "batch"):
            raise ValueError(f"{type(self).__name__}: per must be 'epoch' or 'batch', got {per!r}")
        self.per = per
        self.base_lr: float | None = None  # the lr at the first step, or as rebased by hand
        self._t = 0  # the epoch or batch of the last factor applied

    def factor(self, t: int) -> float:
        """The multiplier of base_lr at epoch or batch `t` (1.0 here: no decay)."""
        return 1.0

    def _apply(self, trainer: Trainer, t: int) -> None:
        if self.base_lr is None:
            self.base_lr = trainer.optimizer.lr
        self._t = t
        trainer.optimizer.lr = max(self.base_lr * self.factor(t), 1e-12)

    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None:
        if self.per == "epoch":
            self._apply(trainer, epoch)

    def on_batch_begin(self, trainer: Trainer, batch: int) -> None:
        if self.per == "batch":
            self._apply(trainer, trainer.global_step)

    def on_event(self, trainer: Trainer, event: str, data: dict[str, Any]) -> None:
        if event == "hparam" and data["name"] in ("lr", "base_lr"):
            self.base_lr = data["new"] / max(self.factor(self._t), 1e-12)

    def state_dict(self) -> dict[str, Any]:
        """The lr the schedule scales and the last t it applied: with them a resumed run
        sets the same lr as the uninterrupted one would."""
        return {"base_lr": self.base_lr, "t": self._t}

    def load_state(self, state: dict[str, Any]) -> None:
        owner = type(self).__name__
        base_lr, t = state.get("base_lr"), state.get("t")
        if base_lr is not None:
            base_lr = _validate.positive_float(owner, "base_lr", base_lr)
        if not isinstance(t, int) or isinstance(t, bool) or t < 0:
            raise ValueError(f"{owner}: t must be a non-negative integer, got {t!r}")
        self.base_lr, self._t = base_lr, t


class StepDecay(LearningRateSchedule):
    """lr * gamma ** floor(t / step_size)."""

    def __init__(self, step_size: int, gamma: float = 0.1, per: str = "epoch") -> None:
        super().__init__(per)
        self.step_size = _validate.positive_int("StepDecay", "step_size", step_size)
        self.gamma = _validate.positive_float("StepDecay", "gamma", gamma)

    def factor(self, t: int) -> float:
        return self.gamma ** (t // self.step_size)


class ExponentialDecay(LearningRateSchedule):
    """lr * gamma ** t."""

    def __init__(self, gamma: float, per: str = "epoch") -> None:
        super().__init__(per)
        self.gamma = _validate.positive_float("ExponentialDecay", "gamma", gamma)

    def factor(self, t: int) -> float:
        return self.gamma**t


class CosineDecay(LearningRateSchedule):
    """Cosine from lr down to lr * min_factor over `total` epochs (or batches)."""

    def __init__(self, total: int, min_factor: float = 0.0, per: str = "epoch") -> None:
        super().__init__(per)
        self.total = _validate.positive_int("CosineDecay", "total", total)
        self.min_factor = _validate.float_in(
            "CosineDecay", "min_factor", min_factor, 0.0, 1.0, include_high=True
        )

    def factor(self, t: int) -> float:
        progress = min(t, self.total) / self.total
        return self.min_factor + (1 - self.min_factor) * 0.5 * (1 + math.cos(math.pi * progress))


class TimeBasedDecay(LearningRateSchedule):
    """lr / (1 + decay * t), Keras's time-based decay, as a schedule."""

    def __init__(self, decay: float, per: str = "epoch") -> None:
        super().__init__(per)
        self.decay = _validate.non_negative_float("TimeBasedDecay", "decay", decay)

    def factor(self, t: int) -> float:
        return 1.0 / (1.0 + self.decay * t)
