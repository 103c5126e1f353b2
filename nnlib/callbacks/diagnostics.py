"""Diagnostics: 'warning' events that explain what looks wrong in a run and what to try.

It reads what the run already measures — each batch's loss, each epoch's metrics, and the
Monitor's 'histograms' events (gradient norms, dead ReLU fractions) — plus, when those
histograms are taken, the outputs of the sigmoid and tanh layers on that batch. Each kind of
warning is raised once per run (dead ReLUs and saturation once per layer), with a one-line
explanation and a suggestion.

The thresholds (module constants, all documented in the README):

- loss_spike: a batch loss above LOSS_SPIKE (3) times the moving average of the batches
  before it (after LOSS_WARMUP batches) — the learning rate is too high;
- loss_rising: the epoch's training loss rose RISING_EPOCHS (2) epochs in a row;
- exploding_gradients: a layer's gradient norm above GRAD_EXPLODING (100);
- vanishing_gradients: a layer's gradient norm below GRAD_VANISHING (1e-4) times the largest
  layer's (with at least two weighted layers; a norm of exactly 0 is dead units instead);
- dead_relu: more than DEAD_RELU (50%) of a ReLU layer's units output 0 for every sample of
  a batch;
- saturated: more than SATURATED (50%) of a sigmoid or tanh layer's outputs within
  SATURATION_MARGIN (2% of its range) of its limits, where its gradient is nearly 0;
- overfitting: training accuracy above validation accuracy by more than OVERFIT_GAP (10
  points), the gap having grown for WIDENING_EPOCHS (2) epochs in a row.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from ..layers import Sigmoid, Tanh
from .base import Callback, Logs

if TYPE_CHECKING:
    from ..trainer import Trainer

LOSS_SPIKE = 3.0
LOSS_WARMUP = 10
LOSS_AVERAGE = 0.1  # weight of the newest batch in the moving average
RISING_EPOCHS = 2
GRAD_EXPLODING = 100.0
GRAD_VANISHING = 1e-4
DEAD_RELU = 0.5
SATURATED = 0.5
SATURATION_MARGIN = 0.02
OVERFIT_GAP = 0.10
WIDENING_EPOCHS = 2

LOWER_LR = "the learning rate is probably too high: lower it (the - key in the app)"


class Diagnostics(Callback):
    """Emit 'warning' events (see the module's thresholds): each kind once per run, dead
    ReLUs and saturation once per layer."""

    essential = False  # a view (see Callback.essential)

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._raised: set[tuple[str, str]] = set()
        self._pending: list[dict[str, Any]] = []
        self._average: float | None = None
        self._batches = 0
        self._losses: list[float] = []
        self._gaps: list[float] = []

    def on_train_begin(self, trainer: Trainer) -> None:
        self._reset()  # a new run starts with nothing raised

    # -- what is measured -------------------------------------------------------------------
    def on_batch_end(self, trainer: Trainer, batch: int, logs: Logs) -> None:
        loss = logs.get("loss")
        if loss is not None and math.isfinite(loss):
            average = self._average
            if average is not None and self._batches >= LOSS_WARMUP and loss > LOSS_SPIKE * average:
                self._warn(
                    "loss_spike",
                    f"the loss jumped to {loss:.3g}, {loss / average:.1f}x its recent average "
                    f"{average:.3g}",
                    LOWER_LR,
                    value=loss,
                )
            self._average = loss if average is None else average + LOSS_AVERAGE * (loss - average)
            self._batches += 1
        self._flush(trainer)

    def on_event(self, trainer: Trainer, event: str, data: Logs) -> None:
        if event != "histograms":
            return
        layers = data.get("layers") or {}
        norms = {
            name: entry["grad_norm"]
            for name, entry in layers.items()
            if entry.get("grad_norm") is not None and math.isfinite(entry["grad_norm"])
        }
        if norms:  # one warning for the worst layer: the others usually follow it
            name = max(norms, key=norms.__getitem__)
            if norms[name] > GRAD_EXPLODING:
                self._warn(
                    "exploding_gradients",
                    f"{name}: gradient norm {norms[name]:.3g}, above {GRAD_EXPLODING:g}: each "
                    "step throws the weights far",
                    "lower the learning rate; normalise the inputs or add batchnorm",
                    layer=name,
                    value=norms[name],
                )
        # Exactly 0 is not vanishing: no unit passed a gradient at all (dead ReLUs, said above).
        flowing = {name: norm for name, norm in norms.items() if norm > 0}
        if len(flowing) >= 2:
            biggest = max(flowing, key=flowing.__getitem__)
            name = min(flowing, key=flowing.__getitem__)
            if flowing[name] < GRAD_VANISHING * flowing[biggest]:
                self._warn(
                    "vanishing_gradients",
                    f"{name}: gradient norm {flowing[name]:.2g}, under {GRAD_VANISHING:g} of "
                    f"{biggest}'s ({flowing[biggest]:.2g}): this layer barely learns",
                    "use relu rather than sigmoid/tanh in hidden layers, or fewer layers",
                    layer=name,
                    value=flowing[name],
                )
        for name, entry in layers.items():
            dead = entry.get("dead_fraction")
            if dead is not None and dead > DEAD_RELU:
                self._warn(
                    "dead_relu",
                    f"{name}: {dead:.0%} of its units output 0 for every sample (dead ReLUs "
                    "get no gradient and never recover)",
                    "lower the learning rate, or use leakyrelu",
                    layer=name,
                    value=dead,
                )
        if any("grads" in entry or "grad_norm" in entry for entry in layers.values()):
            self._saturation(trainer)

    def _saturation(self, trainer: Trainer) -> None:
        """Sigmoid and tanh outputs of the batch just trained, near their limits."""
        for layer in trainer.model.layers:
            output = getattr(layer, "_y", None)
            if not isinstance(layer, Sigmoid | Tanh) or output is None:
                continue
            lo, hi = (0.0, 1.0) if isinstance(layer, Sigmoid) else (-1.0, 1.0)
            margin = SATURATION_MARGIN * (hi - lo)
            share = float(np.mean((output <= lo + margin) | (output >= hi - margin)))
            if share > SATURATED:
                limits = "0 or 1" if isinstance(layer, Sigmoid) else "-1 or 1"
                self._warn(
                    "saturated",
                    f"{layer.name}: {share:.0%} of its outputs are stuck near {limits}, where "
                    "its gradient is almost 0",
                    "normalise the inputs, or lower the learning rate; relu does not saturate",
                    layer=layer.name,
                    value=share,
                )

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Logs) -> None:
        loss = logs.get("loss")
        if loss is not None and math.isfinite(loss):
            self._losses.append(loss)
            recent = self._losses[-RISING_EPOCHS - 1 :]
            rising = len(recent) == RISING_EPOCHS + 1 and all(
                a < b for a, b in zip(recent, recent[1:], strict=False)
            )
            if rising:
                self._warn(
                    "loss_rising",
                    f"the training loss rose {RISING_EPOCHS} epochs in a row "
                    f"({recent[0]:.3g} → {recent[-1]:.3g})",
                    LOWER_LR,
                    value=loss,
                    epoch=epoch,
                )
        train, val = logs.get("accuracy"), logs.get("val_accuracy")
        if train is not None and val is not None:
            self._gaps.append(train - val)
            recent = self._gaps[-WIDENING_EPOCHS - 1 :]
            widening = len(recent) == WIDENING_EPOCHS + 1 and all(
                a < b for a, b in zip(recent, recent[1:], strict=False)
            )
            if widening and recent[-1] > OVERFIT_GAP:
                self._warn(
                    "overfitting",
                    f"training accuracy {train:.1%} but validation {val:.1%}: the gap grew "
                    f"{WIDENING_EPOCHS} epochs in a row (overfitting)",
                    "add weight decay, use more data or a smaller model, or stop earlier",
                    value=recent[-1],
                    epoch=epoch,
                )
        self._flush(trainer)

    # -- raising ---------------------------------------------------------------------------
    def _warn(self, kind: str, message: str, suggestion: str, **fields: Any) -> None:
        per_layer = kind in ("dead_relu", "saturated")
        key = (kind, fields.get("layer") or "" if per_layer else "")
        if key not in self._raised:
            self._raised.add(key)
            self._pending.append(
                {"kind": kind, "message": message, "suggestion": suggestion, **fields}
            )

    def _flush(self, trainer: Trainer) -> None:
        """Emit what was found, after the event that showed it (not inside its dispatch)."""
        pending, self._pending = self._pending, []
        for fields in pending:
            trainer.emit("warning", **{"epoch": trainer.epoch, **fields})
