"""Tracer: one validation sample through the network (`nnlib.trace`), for the app's Trace view.

On request (`request(index, update)`) it traces validation sample `index` on the training
thread — at the next batch boundary, or at once while the run is parked by a pause, when the
weights hold still — and emits a 'trace' event: per layer each array, every value of a small
one and shape, range, mean and a heat strip of a large one (`summary`), so the event stays
small whatever the model. With `update`, the next batch's step is watched: each parameter is
copied before it, and the trace after it carries, per layer, W before, the batch's gradient
dW and the change ΔW the optimizer made, with the learning rate and the optimizer's rule
(`rule`): ΔW = −lr·dW only for plain SGD. The watched batch trains whole on one thread
(`Trainer.unsplit_batch`), so its dW is that batch's one pass even with replicas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..events import RASTER_ALPHABET, RASTER_EMPTY, TRACE_STRIP_MAX, TRACE_VALUES_MAX
from ..optimizers import SGD, Optimizer
from ..trace import LayerTrace, trace
from .base import Logs
from .ondemand import OnDemand

if TYPE_CHECKING:
    from ..layers.base import Param
    from ..trainer import Trainer


def _finite(number: Any) -> float | None:
    number = float(number)
    return number if np.isfinite(number) else None


def summary(label: str, array: np.ndarray) -> dict[str, Any]:
    """One array of a trace event: its shape, min, max and mean, and every value when it has
    at most TRACE_VALUES_MAX, else a heat strip (`_strip`)."""
    flat = np.asarray(array, dtype=np.float64).ravel()
    record: dict[str, Any] = {"label": label, "shape": list(np.shape(array))}
    with np.errstate(over="ignore", invalid="ignore"):
        for key, measure in (("min", np.min), ("max", np.max), ("mean", np.mean)):
            record[key] = _finite(measure(flat)) if flat.size else None
        if flat.size <= TRACE_VALUES_MAX:
            record["values"] = [_finite(value) for value in flat]
        else:
            record["strip"] = _strip(flat)
    return record


def _strip(flat: np.ndarray) -> str:
    """The values in at most TRACE_STRIP_MAX equal runs, each run's mean as a raster
    character scaled to the finite values' [min, max]: a large array in one line."""
    finite = flat[np.isfinite(flat)]
    lo, hi = (finite.min(), finite.max()) if finite.size else (np.nan, np.nan)
    # One run per value below TRACE_STRIP_MAX values: an empty run would draw as non-finite.
    runs = np.array([run.mean() for run in np.array_split(flat, min(TRACE_STRIP_MAX, flat.size))])
    top = len(RASTER_ALPHABET) - 1
    span = hi - lo if hi > lo else 1.0
    return "".join(
        RASTER_ALPHABET[int(round((run - lo) / span * top))] if np.isfinite(run) else RASTER_EMPTY
        for run in runs
    )


def rule(optimizer: Optimizer) -> str | None:
    """None where a step is exactly W ← W − lr·dW (SGD without momentum, weight decay or L1,
    and no velocity left from an earlier momentum); else the optimizer and its settings that
    are not zero ("SGD, momentum 0.9"): the rule that made the change."""
    if _plain_sgd(optimizer):
        return None
    shown = "".join(
        f", {key} {value:g}"
        for key, value in optimizer.config().items()
        if isinstance(value, int | float) and value and key != "lr"
    )
    return f"{type(optimizer).__name__}{shown}"


def _plain_sgd(optimizer: Optimizer) -> bool:
    """Whether the optimizer's step is exactly W ← W − lr·dW: SGD with no momentum, weight
    decay or L1, and no velocity left from an earlier momentum to add."""
    return (
        isinstance(optimizer, SGD)
        and not any((optimizer.momentum, optimizer.weight_decay, optimizer.l1))
        and not any("velocity" in state for state in optimizer.state.values())
    )


class Tracer(OnDemand):
    """Emit 'trace' for a validation sample on request (and with `update`, after the next
    step, what that step did to every parameter)."""

    essential = False  # a view (see Callback.essential)
    WHILE_PARKED = True

    def __init__(self, class_names: list[str] | None = None) -> None:
        super().__init__()
        self.class_names = class_names
        self.index = 0
        self._watch = False  # copy the parameters before the next step
        self._before: dict[str, dict[str, np.ndarray]] | None = None
        self._lr = 0.0

    def request(self, index: int = 0, update: bool = False) -> None:
        """Trace validation sample `index` (taken modulo the validation samples) at the next
        batch boundary or while parked; with `update`, after the next step, with what the
        step did."""
        self.index = index
        self._watch = self._watch or update
        super().request()

    def on_batch_begin(self, trainer: Trainer, batch: int) -> None:
        if self._watch:
            self._watch = False
            trainer.unsplit_batch = True
            self._lr = trainer.optimizer.current_lr
            self._before = {
                layer.name: {key: p.value.copy() for key, p in layer.params.items() if p.trainable}
                for layer in trainer.model.layers
            }

    def on_batch_end(self, trainer: Trainer, batch: int, logs: Logs) -> None:
        if self._before is not None:
            self._asked.clear()
            self.serve(trainer, "step")
        else:
            super().on_batch_end(trainer, batch, logs)

    def serve(self, trainer: Trainer, trigger: str) -> None:
        before, self._before = self._before, None
        if trainer.validation_data is None or not len(trainer.validation_data[0]):
            return
        x, y = trainer.validation_data
        i = self.index % len(x)
        classes = trainer.loss.task == "classification"
        result = trace(trainer.model, x[i : i + 1], y[i : i + 1], trainer.loss)
        layers = [
            _layer_record(traced, layer.params, (before or {}).get(traced.name))
            for traced, layer in zip(result.layers, trainer.model.layers, strict=True)
        ]
        trainer.emit(
            "trace",
            index=i,
            samples=len(x),
            label=self._label(y[i], classes),
            predicted=self._label(result.layers[-1].output[0], classes, predicted=True),
            loss=_finite(result.loss),
            layers=layers,
            epoch=trainer.epoch,
            trigger=trigger,
            **({} if before is None else self._step(trainer.optimizer)),
        )

    def _step(self, optimizer: Optimizer) -> dict[str, Any]:
        """The watched step's learning rate and, unless it was plain SGD, its rule: what
        turned dW into ΔW."""
        fields: dict[str, Any] = {"lr": self._lr}
        shown = rule(optimizer)
        if shown is not None:
            fields["rule"] = shown
        return fields

    def _label(self, value: np.ndarray, classes: bool, predicted: bool = False) -> str:
        """A class's name (predicted: the largest output's), or regression values."""
        if classes:
            k = int(np.argmax(value)) if predicted else int(value)
            names = self.class_names or []
            return names[k] if k < len(names) else str(k)
        return " ".join(f"{v:.4g}" for v in np.ravel(value)[:TRACE_VALUES_MAX])


def _layer_record(
    layer: LayerTrace, params: dict[str, Param], before: dict[str, np.ndarray] | None
) -> dict[str, Any]:
    """One layer of a trace event: its arrays (`summary`) and, when its parameters were
    copied `before` the watched step, what that step did to each: W before, the batch's
    dW, and ΔW (after − before) from the model's `params` now."""
    record: dict[str, Any] = {
        "name": layer.name,
        "kind": layer.kind,
        "arrays": [
            summary(label, array)
            for label, array in (
                ("input", layer.input),
                ("output", layer.output),
                ("δ (grad output)", layer.grad_output),
                ("grad input", layer.grad_input),
                *layer.parameter_rows(),
            )
        ],
    }
    if before:
        record["update"] = [
            summary(label, array)
            for key, old in before.items()
            for label, array in (
                (f"{key} before", old),
                (f"batch d{key}", params[key].grad),
                (f"Δ{key} = after − before", params[key].value - old),
            )
        ]
    return record
