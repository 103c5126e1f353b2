"""Diagnostics: 'warning' events that explain what looks wrong in a run and what to try.

It reads what the run already measures — each batch's loss, each epoch's metrics, the
Monitor's 'histograms' events (gradient norms), the 'hparam' events of changes made while it
runs — plus, when those histograms are taken, the outputs of the ReLU, sigmoid and tanh
layers on that batch (with replicas, `ThreadPlan(replicas=N)`, on the model's own part of it,
the first 1/N of its samples: dead units are then judged over as many samples as they were
measured on, and saturation is an estimate from that part). Each kind of warning is raised
once per run (dead ReLUs and saturation once per layer), with a one-line explanation, a
suggestion that takes what the user already changed into account, and where it can be
applied live, the change itself (`fix`). Where a live change comes too late (dead units
rarely recover; exploded weights are already thrown), the change is a fork from before the
step the evidence began at (`fork`).

The thresholds (module constants, all documented in the README) were calibrated with
`benchmarks/bench_warnings.py` on a corpus of healthy runs (every preset on datasets it suits,
several seeds, runs whose loss goes to about 0) and of runs broken on purpose. What they
replaced, and why: a batch 3x its moving average fired on 14 of 17 healthy runs (a hard batch
of 32 or fewer points near a zero loss), an epoch loss rising twice (by 0.001) did too, and a
ReLU layer idle over one batch of 16 points is not dead; with momentum 0.9 and lr 0.1 a
healthy spirals run rose for 2 epochs from 0.04 to 0.34 and recovered to 7e-5.

- loss_spike: twice within SPIKE_WINDOW (100) batches, a batch loss above LOSS_SPIKE (3)
  times the moving average of the batches before it (after LOSS_WARMUP batches) *and* above
  SPIKE_START (2) times the loss the run started from (its first batch's, before any step):
  steps that throw away what was learned (one such batch of 10 happens in healthy runs);
- loss_rising: the epoch's training loss above ABOVE_START (1.5) times the loss the run
  started from, or risen RISING_EPOCHS (3) epochs in a row by more than RISE_SHARE (10%) of
  it in all — only epochs after the last change of the learning rate count for the rise;
- exploding_gradients: a layer's gradient norm above GRAD_EXPLODING (100);
- vanishing_gradients: a layer's gradient norm below GRAD_VANISHING (3e-3) times the largest
  layer's, in VANISHING_TIMES (3) measurements in a row (healthy runs measured 0.2 and more;
  six stacked sigmoid layers 3e-4 to 1e-3); a norm of exactly 0 is dead units instead;
- dead_relu: more than DEAD_RELU (50%) of a ReLU layer's units output 0 for every sample of
  the last DEAD_WINDOW (3) or more measured batches, DEAD_SAMPLES (256) samples at least;
- saturated: more than SATURATED (50%) of a sigmoid or tanh layer's outputs within
  SATURATION_MARGIN (2% of its range) of its limits, where its gradient is nearly 0;
- overfitting: training accuracy above validation accuracy by more than OVERFIT_GAP (10
  points), the gap having grown for WIDENING_EPOCHS (2) epochs in a row while the training
  loss fell (a gap that opens while the training loss rises is instability, said above).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TypeGuard

import numpy as np

from ..layers import Layer, ReLU, Sigmoid, Tanh
from .base import Callback, Logs

if TYPE_CHECKING:
    from ..trainer import Trainer

LOSS_SPIKE = 3.0
SPIKE_WINDOW = 100
LOSS_WARMUP = 10
LOSS_AVERAGE = 0.1  # weight of the newest batch in the moving average
SPIKE_START = 2.0
ABOVE_START = 1.5
RISING_EPOCHS = 3
RISE_SHARE = 0.1
GRAD_EXPLODING = 100.0
GRAD_VANISHING = 3e-3
VANISHING_TIMES = 3
DEAD_RELU = 0.5
DEAD_WINDOW = 3
DEAD_SAMPLES = 256
SATURATED = 0.5
SATURATION_MARGIN = 0.02
OVERFIT_GAP = 0.10
WIDENING_EPOCHS = 2
#: The kinds raised once per layer rather than once per run.
PER_LAYER = ("dead_relu", "saturated")


def _positive(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and value > 0


def _finite(value: Any) -> Any:
    """`value` when it is a finite number to judge, else None: a missing measurement, or a
    diverged one (divergence is the DivergenceGuard's to report, not a warning's)."""
    return value if value is not None and math.isfinite(value) else None


def _rose_in_a_row(values: list[float], times: int) -> bool:
    """Whether each of the last `times` values rose above the one before: the test behind a
    rising loss and a widening gap."""
    recent = values[-times - 1 :]
    return len(recent) == times + 1 and all(a < b for a, b in zip(recent, recent[1:], strict=False))


def _moving_average(average: float | None, value: float) -> float:
    """The moving average of the batch losses with `value` (the first value starts it)."""
    return value if average is None else average + LOSS_AVERAGE * (value - average)


def _grad_norms(layers: dict[str, Any]) -> dict[str, float]:
    """The finite gradient norms of a 'histograms' event's layers, by layer."""
    norms = {}
    for name, entry in layers.items():
        norm = _finite(entry.get("grad_norm"))
        if norm is not None:
            norms[name] = norm
    return norms


def _keep_enough(window: deque[tuple[np.ndarray, int, int]]) -> int:
    """Drop a layer's oldest measurements while more than DEAD_WINDOW of them would still
    hold DEAD_SAMPLES samples without it; the samples the window holds then."""
    seen = sum(count for _, count, _ in window)
    while len(window) > DEAD_WINDOW and seen - window[0][1] >= DEAD_SAMPLES:
        seen -= window.popleft()[1]
    return seen


def _alive_units(active: np.ndarray) -> np.ndarray:
    """Which units of a ReLU layer's batch output something for at least one sample; a unit
    of an image layer is a channel, alive at any position."""
    return np.any(active.reshape(-1, active.shape[-1]), axis=0)


def _measured(
    trainer: Trainer, kinds: type[Layer] | tuple[type[Layer], ...], attribute: str
) -> Iterator[tuple[Layer, np.ndarray]]:
    """The model's layers of `kinds` with what their last forward pass kept in `attribute`
    (None until they ran): the layers whose outputs the per-layer checks can judge."""
    for layer in trainer.model.layers:
        kept = getattr(layer, attribute, None)
        if isinstance(layer, kinds) and kept is not None:
            yield layer, kept


def _overfit_advice(trainer: Trainer) -> dict[str, Any]:
    """The suggestion against overfitting; `fix` doubles the optimizer's weight decay (or
    starts it at 5e-4) when it has one."""
    advice: dict[str, Any] = {
        "suggestion": "add weight decay, use more data or a smaller model, or stop earlier"
    }
    decay = getattr(trainer.optimizer, "weight_decay", None)
    if isinstance(decay, int | float):
        advice["fix"] = {"name": "weight_decay", "value": 2 * decay if decay > 0 else 5e-4}
    return advice


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
        self._start: float | None = None  # the first batch's loss: where the run started
        self._batches = 0  # batches judged since the start or the last lr change
        self._spikes: deque[int] = deque(maxlen=2)  # the steps of the last spikes
        self._losses: list[float] = []  # epoch losses since the last lr change
        self._gaps: list[float] = []
        self._lr_change: tuple[int, float, float] | None = None  # (step, old, new)
        self._vanishing = 0  # measurements in a row with a vanishing layer
        # per ReLU layer, its last measurements: (units alive, samples, step)
        self._alive: dict[str, deque[tuple[np.ndarray, int, int]]] = {}
        self._train_losses: list[float] = []  # every epoch's, for the overfitting check

    def on_train_begin(self, trainer: Trainer) -> None:
        self._reset()  # a new run starts with nothing raised

    # -- what is measured -------------------------------------------------------------------
    def on_batch_end(self, trainer: Trainer, batch: int, logs: Logs) -> None:
        loss = _finite(logs.get("loss"))
        if loss is not None:
            start = self._start = loss if self._start is None else self._start
            average = self._average
            if average is not None and self._is_spike(loss, average, start):
                self._spiked(trainer, loss, average, start)
            self._average = _moving_average(average, loss)
            self._batches += 1
        self._flush(trainer)

    def _is_spike(self, loss: float, average: float, start: float) -> bool:
        """Whether a batch's loss, once past LOSS_WARMUP batches, is above both LOSS_SPIKE
        times their moving `average` and SPIKE_START times the loss the run started from."""
        return self._batches >= LOSS_WARMUP and loss > max(
            LOSS_SPIKE * average, SPIKE_START * start
        )

    def _spiked(self, trainer: Trainer, loss: float, average: float, start: float) -> None:
        """Count a spike; the second within SPIKE_WINDOW batches is warned of (one alone
        happens in healthy runs)."""
        step = trainer.global_step
        if self._spikes and self._spikes[-1] > step - SPIKE_WINDOW:
            self._warn(
                "loss_spike",
                f"the loss jumped to {loss:.3g}, {loss / average:.1f}x its recent "
                f"average {average:.3g} and {loss / start:.1f}x the {start:.3g} the run "
                f"started from (the second time in {step - self._spikes[-1]} batches)",
                **self._lr_advice(trainer),
                value=loss,
            )
        self._spikes.append(step)

    def on_event(self, trainer: Trainer, event: str, data: Logs) -> None:
        if event == "hparam" and data.get("name") in ("lr", "base_lr"):
            self._lr_changed(data)
        elif event == "histograms":
            self._histograms(trainer, data.get("layers") or {})

    def _histograms(self, trainer: Trainer, layers: dict[str, Any]) -> None:
        """What a 'histograms' event shows: the gradient norms per layer and, when it was
        taken on a batch whose gradients were measured, the activations of that batch."""
        norms = _grad_norms(layers)
        self._exploding_gradients(trainer, norms)
        self._vanishing_gradients(norms)
        fields = set().union(*layers.values())  # what any layer's entry holds
        measured = not fields.isdisjoint({"grads", "grad_norm"})
        if measured or "dead_fraction" in fields:
            self._dead_units(trainer)
        if measured:
            self._saturation(trainer)

    def _lr_changed(self, data: Logs) -> None:
        """A change of the learning rate starts the evidence about it afresh: the epochs and
        batches before it say nothing about the new rate."""
        old, new = data.get("old"), data.get("new")
        if isinstance(old, int | float) and isinstance(new, int | float):
            self._lr_change = (int(data.get("step") or 0), float(old), float(new))
        self._losses, self._batches, self._average = [], 0, None

    def _exploding_gradients(self, trainer: Trainer, norms: dict[str, float]) -> None:
        """One warning for the worst layer above GRAD_EXPLODING: the others usually follow
        it."""
        if not norms:
            return
        name = max(norms, key=norms.__getitem__)
        if norms[name] > GRAD_EXPLODING:
            self._warn(
                "exploding_gradients",
                f"{name}: gradient norm {norms[name]:.3g}, above {GRAD_EXPLODING:g}: each "
                "step throws the weights far",
                **self._fork_advice(
                    trainer.global_step,
                    self._lr_advice(trainer, also="normalise the inputs or add batchnorm"),
                ),
                layer=name,
                value=norms[name],
            )

    def _vanishing_gradients(self, norms: dict[str, float]) -> None:
        # Exactly 0 is not vanishing: no unit passed a gradient at all (dead ReLUs, said below).
        flowing = {name: norm for name, norm in norms.items() if norm > 0}
        if len(flowing) < 2:
            return
        biggest = max(flowing, key=flowing.__getitem__)
        name = min(flowing, key=flowing.__getitem__)
        if flowing[name] >= GRAD_VANISHING * flowing[biggest]:
            self._vanishing = 0
            return
        self._vanishing += 1
        if self._vanishing >= VANISHING_TIMES:
            self._warn(
                "vanishing_gradients",
                f"{name}: gradient norm {flowing[name]:.2g}, under {GRAD_VANISHING:g} of "
                f"{biggest}'s ({flowing[biggest]:.2g}) {VANISHING_TIMES} times in a row: this "
                "layer barely learns",
                "use relu rather than sigmoid/tanh in hidden layers, or fewer layers",
                layer=name,
                value=flowing[name],
            )

    def _dead_units(self, trainer: Trainer) -> None:
        """ReLU units silent for every sample of each of the last DEAD_WINDOW measured
        batches: one small batch of a 2-D set leaves half the units idle in a healthy net."""
        for layer, active in _measured(trainer, ReLU, "active_mask"):
            window = self._window(
                layer.name, _alive_units(active), len(active), trainer.global_step
            )
            if window is None:
                continue
            dead = 1.0 - float(np.mean(np.logical_or.reduce([units for units, _, _ in window])))
            if dead > DEAD_RELU:
                self._warn_dead(trainer, layer.name, dead, window)

    def _window(
        self, name: str, alive: np.ndarray, samples: int, step: int
    ) -> deque[tuple[np.ndarray, int, int]] | None:
        """Layer `name`'s measurements with this one, trimmed to the last DEAD_WINDOW or more
        that hold DEAD_SAMPLES samples; None while there are fewer. A layer whose units
        changed in number starts afresh."""
        window = self._alive.setdefault(name, deque())
        if window and window[0][0].shape != alive.shape:
            window.clear()
        window.append((alive, samples, step))
        seen = _keep_enough(window)
        if len(window) < DEAD_WINDOW or seen < DEAD_SAMPLES:
            return None
        return window

    def _warn_dead(
        self, trainer: Trainer, name: str, dead: float, window: deque[tuple[np.ndarray, int, int]]
    ) -> None:
        """Dead units rarely recover: the advice is a fork from before the window began
        (with half the learning rate), not a change now."""
        lr = getattr(trainer.optimizer, "lr", None)
        halved = {"fix": {"name": "lr", "value": lr / 2}} if _positive(lr) else {}
        self._warn(
            "dead_relu",
            f"{name}: {dead:.0%} of its units output 0 for every sample of the "
            f"last {len(window)} measured batches (dead ReLUs get no gradient and rarely "
            "recover)",
            layer=name,
            value=dead,
            **self._fork_advice(
                window[0][2],
                {
                    "suggestion": "restart or fork from before they died with a lower "
                    "learning rate, or use leakyrelu",
                    **halved,
                },
            ),
        )

    def _saturation(self, trainer: Trainer) -> None:
        """Sigmoid and tanh outputs of the batch just trained, near their limits."""
        for layer, output in _measured(trainer, (Sigmoid, Tanh), "_y"):
            lo = 0.0 if isinstance(layer, Sigmoid) else -1.0  # both end at 1
            margin = SATURATION_MARGIN * (1.0 - lo)
            share = float(np.mean((output <= lo + margin) | (output >= 1.0 - margin)))
            if share > SATURATED:
                self._warn(
                    "saturated",
                    f"{layer.name}: {share:.0%} of its outputs are stuck near {lo:g} or 1, where "
                    "its gradient is almost 0",
                    "normalise the inputs, or lower the learning rate; relu does not saturate",
                    layer=layer.name,
                    value=share,
                )

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Logs) -> None:
        loss = _finite(logs.get("loss"))
        if loss is not None:
            self._train_losses.append(loss)
            if self._start is not None:
                self._check_loss(trainer, epoch, loss, self._start)
        train, val = logs.get("accuracy"), logs.get("val_accuracy")
        if train is not None and val is not None:
            self._check_gap(trainer, epoch, train, val)
        self._flush(trainer)

    def _check_loss(self, trainer: Trainer, epoch: int, loss: float, start: float) -> None:
        """Warn when the epoch's training loss is well above the run's start, or rose
        RISING_EPOCHS epochs in a row by more than RISE_SHARE of the start."""
        self._losses.append(loss)
        recent = self._losses[-RISING_EPOCHS - 1 :]
        rising = _rose_in_a_row(self._losses, RISING_EPOCHS)
        if loss > ABOVE_START * start:
            message = (
                f"the training loss {loss:.3g} is {loss / start:.1f}x the "
                f"{start:.3g} the run started from: the steps undo the learning"
            )
        elif rising and recent[-1] - recent[0] > RISE_SHARE * start:
            message = (
                f"the training loss rose {RISING_EPOCHS} epochs in a row "
                f"({recent[0]:.3g} → {recent[-1]:.3g})"
            )
        else:
            return
        self._warn("loss_rising", message, **self._lr_advice(trainer), value=loss, epoch=epoch)

    def _check_gap(self, trainer: Trainer, epoch: int, train: float, val: float) -> None:
        """Warn of overfitting: the gap between training and validation accuracy widened
        WIDENING_EPOCHS epochs in a row to above OVERFIT_GAP while the training loss fell."""
        self._gaps.append(train - val)
        widening = _rose_in_a_row(self._gaps, WIDENING_EPOCHS)
        losses = self._train_losses[-WIDENING_EPOCHS - 1 :]
        falling = len(losses) == WIDENING_EPOCHS + 1 and losses[-1] < losses[0]
        if not (widening and falling and self._gaps[-1] > OVERFIT_GAP):
            return
        self._warn(
            "overfitting",
            f"training accuracy {train:.1%} but validation {val:.1%}: the gap grew "
            f"{WIDENING_EPOCHS} epochs in a row (overfitting)",
            **_overfit_advice(trainer),
            value=self._gaps[-1],
            epoch=epoch,
        )

    # -- what to advise --------------------------------------------------------------------
    def _lr_advice(self, trainer: Trainer, also: str = "") -> dict[str, Any]:
        """The suggestion about the learning rate, from what was changed so far: set a raised
        rate back; after a lowering, the loss still misbehaving over the epochs since then is
        why to lower it again; otherwise halve it. `fix` is that change."""
        lr = getattr(trainer.optimizer, "lr", None)
        if not _positive(lr):
            return {"suggestion": "the learning rate is probably too high: lower it"}
        tail = f"; {also}" if also else ""
        if self._lr_change is None:
            text = f"the learning rate ({lr:g}) is probably too high: halve it{tail}"
        else:
            step, old, new = self._lr_change
            if new > old:
                return {
                    "suggestion": f"the learning rate was raised at step {step} "
                    f"({old:g} → {new:g}): set it back{tail}",
                    "fix": {"name": "lr", "value": old},
                }
            text = (
                f"it still happens after the learning rate was lowered at step {step} "
                f"({old:g} → {new:g}): lower it further{tail}"
            )
        return {"suggestion": text, "fix": {"name": "lr", "value": lr / 2}}

    @staticmethod
    def _fork_advice(before: int, advice: dict[str, Any]) -> dict[str, Any]:
        """`advice` with its change (`fix`) made a fork from before step `before`: the
        evidence began there, and what happened since (dead units, thrown weights) is not
        undone by changing the rate now."""
        advice = dict(advice)
        change = advice.pop("fix", None)
        if change is not None:
            advice["fork"] = {"before": before, **change}
        return advice

    # -- raising ---------------------------------------------------------------------------
    def _warn(self, kind: str, message: str, suggestion: str, **fields: Any) -> None:
        """Hold a warning for `_flush`, unless its kind (of a PER_LAYER kind: for its layer)
        was raised already in this run."""
        key = (kind, fields["layer"] if kind in PER_LAYER else "")
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
