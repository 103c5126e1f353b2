"""Monitor: what a training dashboard needs, as small summaries rather than raw arrays.

Every `every` batches it emits a 'histograms' event with, per layer that has weights (the
parameter its `monitored_weights` names: W of a Dense or Conv2D, gamma of a BatchNorm):
fixed-bin histogram counts and percentiles of the weights (and of their gradients), the
gradient norm of its trainable parameters, the update-to-weight ratio
||W_after - W_before|| / ||W_before|| of that step,
and, for ReLU layers, the fraction of dead units (never active over the batch; with
replicas, `ThreadPlan(replicas=N)`, over the model's own part of it, the first 1/N: an
estimate, the gradients being the whole batch's). After each
epoch with validation data it emits a 'confusion' event: the validation confusion matrix with
per-class precision and recall; for regression, a 'regression' event instead: predicted against
true as a small 2-D histogram with R² and MAE. Summaries are plain lists, safe to hand to
another thread.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from ..layers import ReLU
from ..metrics import confusion_matrix, precision_recall
from .base import Callback, Logs

if TYPE_CHECKING:
    from ..layers import Layer, Param
    from ..trainer import Trainer

PERCENTILES = (0, 7, 16, 50, 84, 93, 100)  # TensorBoard's distribution bands
PERCENTILE_SAMPLE = 4_096  # values the inner percentiles are estimated from, at most


def histogram(values: np.ndarray, bins: int) -> dict[str, Any]:
    """Counts of every finite value over `bins` equal bins spanning [min, max], plus
    percentiles, in the array's own dtype. Percentiles other than min and max are read from
    the sorted sample of at most 4,096 evenly strided values (exact ones cost 10 ms on a
    784x512 layer, 3x the histogram; sorting a sample of 16,384 took 0.25-0.27 ms of the
    Monitor's 0.7 ms a histogram on an MLP's trained layers, this one 0.05; its inner
    percentiles stray from the exact ones by ~3% of the layer's standard deviation, where a
    column of the 30-bin histogram drawn is ~20% of it);
    counts come from one bincount of the bin indices.
    np.histogram and np.percentile converted the layer to float64 and partitioned it: 7.7 ms
    against 2.2 ms for the same numbers, the Monitor's main cost on an MLP."""
    values = values.ravel()
    lo, hi = float(values.min()), float(values.max())  # NaN or inf shows up here
    finite = values if math.isfinite(lo) and math.isfinite(hi) else values[np.isfinite(values)]
    if finite.size == 0:
        return _no_finite_histogram(bins, values.size)
    if finite is not values:
        lo, hi = float(finite.min()), float(finite.max())
    percentiles = _percentiles(np.sort(finite[:: max(1, finite.size // PERCENTILE_SAMPLE)]))
    percentiles[0], percentiles[-1] = lo, hi  # exact, whatever the sample missed
    if hi == lo:
        # One value (a BatchNorm's gamma starts all ones): every count in the first bin.
        hi = lo + 1e-12
        counts = np.zeros(bins, dtype=np.int64)
        counts[0] = finite.size
    else:
        counts = _bin_counts(finite, lo, hi, bins)
    return {
        "lo": lo,
        "hi": hi,
        "counts": counts.tolist(),
        "percentiles": percentiles,
        "nonfinite": int(values.size - finite.size),
    }


def _no_finite_histogram(bins: int, size: int) -> dict[str, Any]:
    """The histogram of `size` values none of which is finite: empty, its range [0, 0]."""
    return {
        "lo": 0.0,
        "hi": 0.0,
        "counts": [0] * bins,
        "percentiles": [0.0] * len(PERCENTILES),
        "nonfinite": int(size),
    }


def _percentiles(ordered: np.ndarray) -> list[float]:
    """PERCENTILES of a sorted sample, interpolated as np.percentile's default (linear);
    between neighbours whose difference overflows (-1e308 and 1e308) as a weighted sum,
    which cannot (its terms have opposite signs)."""
    out = []
    for q in PERCENTILES:
        position = q / 100 * (ordered.size - 1)
        below = int(position)
        above = min(below + 1, ordered.size - 1)
        low, high = float(ordered[below]), float(ordered[above])
        share = position - below
        if math.isfinite(high - low):
            out.append(low + (high - low) * share)
        else:
            out.append(low * (1 - share) + high * share)
    return out


#: Values from which bin indices are counted in groups (below, one by one is as fast).
PAIRED_FROM = 4096


def _bin_counts(values: np.ndarray, lo: float, hi: float, bins: int) -> np.ndarray:
    """Counts over `bins` equal bins of [lo, hi], the last bin closed (as np.histogram).

    Each value's bin index is counted in bins + 1 slots, the last one (hi itself) then
    added to the last bin: that spares a clipping pass over the values. A large array's
    indices are counted in groups of three (of two from 40 bins), see `_grouped_counts`.
    784x512 values: one by one 0.69 ms, pairs 0.46, triples 0.36; without the clip 0.33."""
    index = _bin_positions(values, lo, hi, bins)
    slots = bins + 1
    group = next((g for g in (3, 2) if slots**g <= 1 << 16), 1)  # a group's code in 16 bits
    if group == 1 or index.size < PAIRED_FROM:
        counts = np.bincount(index.astype(np.intp), minlength=slots)
    else:
        counts = _grouped_counts(index.astype(np.uint16), slots, group)
    counts[bins - 1] += counts[bins:].sum()  # hi (and what rounding put past it)
    return counts[:bins]


def _bin_positions(values: np.ndarray, lo: float, hi: float, bins: int) -> np.ndarray:
    """Each value's place on [0, bins], its bin the whole part (bins: hi itself, which
    belongs to the last bin), computed in the values' dtype with one temporary. Rounding
    can pass bins by a few ulps: below 2**20 bins that stays under bins + 1."""
    dtype = values.dtype if values.dtype.kind == "f" else np.dtype(np.float64)
    limit = float(np.finfo(dtype).max)
    if not (hi - lo <= limit and bins / (hi - lo) <= limit):
        # A span or a scale the dtype cannot hold (a layer's gradients from 0 to 1e-42
        # made bins / span infinite in float32, 0 * inf a NaN, and bincount a negative):
        # float64 values scaled by a power of two (exact) so the largest is about 1.
        values, lo, hi, dtype = (*_unit_scaled(values, lo, hi), np.dtype(np.float64))
    index = np.subtract(values, dtype.type(lo), dtype=dtype)  # >= 0: values are >= lo
    index *= dtype.type(bins / (hi - lo))
    return index


def _grouped_counts(codes: np.ndarray, bins: int, group: int) -> np.ndarray:
    """Counts of the bin indices `codes` taken `group` at a time: the first part's index
    times bins² plus the second's times bins plus the third's (for three), over bins³
    cells then summed along each axis. bincount's loop is bound by converting its input
    to intp and incrementing a few counters, and this cuts both by the group size."""
    part = codes.size // group
    combined = codes[:part].copy()
    for i in range(1, group):
        combined *= np.uint16(bins)
        combined += codes[i * part : (i + 1) * part]
    grid = np.bincount(combined, minlength=bins**group).reshape((bins,) * group)
    axes = set(range(group))
    counts = sum(grid.sum(axis=tuple(axes - {axis})) for axis in axes)
    counts += np.bincount(codes[group * part :], minlength=bins)  # the rest, fewer than group
    return counts


def _unit_scaled(values: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, float, float]:
    """`values` (finite, within [lo, hi], lo < hi) and their bounds as float64 times the
    power of two that brings the largest magnitude into [0.5, 1): exact for every value
    that does not fall below the smallest float64, and then bins / (hi - lo) is at most
    about bins * 2**54, whatever the range was (tiny, subnormal or huge)."""
    exponent = -math.frexp(max(abs(lo), abs(hi)))[1]
    scaled = np.ldexp(values.astype(np.float64), exponent)
    return scaled, math.ldexp(lo, exponent), math.ldexp(hi, exponent)


class Monitor(Callback):
    """Emit 'histograms' every `every` batches and, after every epoch with validation data,
    'confusion' (or 'regression'); `confusion=False` leaves out that validation summary."""

    essential = False  # a view (see Callback.essential)

    def __init__(
        self,
        every: int = 50,
        bins: int = 30,
        gradients: bool = True,
        confusion: bool = True,
        class_names: list[str] | None = None,
    ) -> None:
        if every < 1 or bins < 1:
            raise ValueError(f"Monitor: every and bins must be >= 1, got {every} and {bins}")
        self.every = every
        self.bins = bins
        self.gradients = gradients
        self.confusion = confusion
        self.class_names = class_names
        self._before: dict[str, np.ndarray] = {}  # weights before a due step, by layer
        self._kept: dict[str, np.ndarray] = {}  # the last due step's, reused as buffers

    def _due(self, trainer: Trainer) -> bool:
        step = trainer.global_step + 1  # the step of the batch about to run (or just run)
        return step == 1 or step % self.every == 0

    def on_train_begin(self, trainer: Trainer) -> None:
        trainer.emit("histograms", epoch=0, batch=0, layers=self._summaries(trainer, False))

    def on_batch_begin(self, trainer: Trainer, batch: int) -> None:
        if self._due(trainer):
            # Into the buffers of the last due step: the largest layer's 1.6 MB copy on
            # an MLP is not allocated again every time.
            kept, self._before = self._kept, {}
            for layer in trainer.model.layers:
                if (weights := layer.monitored_weights()) is not None:
                    name = str(layer.name)  # a built model names every layer
                    self._before[name] = _copy_into(kept.get(name), weights.value)

    def on_batch_end(self, trainer: Trainer, batch: int, logs: Logs) -> None:
        if self._before:
            trainer.emit(
                "histograms",
                epoch=trainer.epoch,
                batch=batch,
                layers=self._summaries(trainer, True),
            )
            self._kept, self._before = self._before, {}

    def _summaries(self, trainer: Trainer, trained: bool) -> dict[str, dict[str, Any]]:
        layers: dict[str, dict[str, Any]] = {}
        for layer in trainer.model.layers:
            weights = layer.monitored_weights()
            if weights is not None:
                summary: dict[str, Any] = {"weights": histogram(weights.value, self.bins)}
                if trained:
                    summary.update(self._step_summary(layer, weights))
                layers[layer.name] = summary
            elif isinstance(layer, ReLU) and trained:
                layers[layer.name] = {"dead_fraction": dead_fraction(layer)}
        return layers

    def _step_summary(self, layer: Layer, weights: Param) -> dict[str, Any]:
        """What the step just trained did to a layer with weights: its gradients' histogram
        (when asked for), the norm of its trainable parameters' gradients, and the update
        ratio of its weights (from the copy `on_batch_begin` took)."""
        summary: dict[str, Any] = {}
        if self.gradients:
            summary["grads"] = histogram(weights.grad, self.bins)
        summary["grad_norm"] = math.sqrt(
            sum(float(np.vdot(p.grad, p.grad)) for p in layer.params.values() if p.trainable)
        )
        before = self._before.get(layer.name)
        if before is not None:
            summary["update_ratio"] = _update_ratio(weights.value, before)
        return summary

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Logs) -> None:
        outputs = trainer.validation_outputs
        if not self.confusion or outputs is None or trainer.validation_data is None:
            return
        labels = trainer.validation_data[1]
        if trainer.loss.task == "regression":
            trainer.emit("regression", epoch=epoch, **regression_summary(outputs, labels))
        else:
            summary = _confusion_summary(outputs, labels, self.class_names)
            trainer.emit("confusion", epoch=epoch, **summary)


def _confusion_summary(
    outputs: np.ndarray, labels: np.ndarray, class_names: list[str] | None
) -> dict[str, Any]:
    """The confusion matrix of the predicted classes (rows true, columns predicted), its
    per-class precision and recall, and the classes' names (their numbers by default)."""
    classes = outputs.shape[1]
    matrix = confusion_matrix(labels, outputs.argmax(axis=1), classes)
    precision, recall = precision_recall(matrix)
    return {
        "matrix": matrix.tolist(),
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "class_names": class_names or [str(i) for i in range(classes)],
    }


def _copy_into(buffer: np.ndarray | None, value: np.ndarray) -> np.ndarray:
    """A copy of `value`, in `buffer` when it has the shape (else in a new array)."""
    if buffer is None or buffer.shape != value.shape:
        buffer = np.empty_like(value)
    np.copyto(buffer, value)
    return buffer


def _update_ratio(after: np.ndarray, before: np.ndarray) -> float:
    """||after - before|| / ||before|| (0 for zero weights before). The change is written
    over `before` (not read again until the next due step copies into it): no 1.6 MB
    temporary on an MLP."""
    scale = math.sqrt(float(np.vdot(before, before)))
    change = np.subtract(after, before, out=before)
    return math.sqrt(float(np.vdot(change, change))) / scale if scale else 0.0


def regression_summary(
    outputs: np.ndarray, targets: np.ndarray, bins: tuple[int, int] = (12, 24)
) -> dict[str, Any]:
    """Predictions against targets (first output column) for a small plot: a 2-D histogram
    (rows: predicted, from high to low; columns: true, low to high) over one shared range,
    so the diagonal is y = x, with R² and the mean absolute error."""
    predicted = np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1)[:, 0]
    true = np.asarray(targets, dtype=np.float64).reshape(len(targets), -1)[:, 0]
    finite = np.isfinite(predicted)
    shown = np.concatenate([true, predicted[finite]])
    lo, hi = float(shown.min()), float(shown.max())
    if hi <= lo:
        hi = lo + 1.0
    counts, _, _ = np.histogram2d(
        np.clip(predicted[finite], lo, hi), true[finite], bins=bins, range=((lo, hi), (lo, hi))
    )
    residual = true - np.where(finite, predicted, np.nan)
    total = float(np.sum((true - true.mean()) ** 2))
    sse = float(np.nansum(residual**2)) if finite.all() else math.inf
    return {
        "counts": counts[::-1].astype(np.int64).tolist(),
        "lo": lo,
        "hi": hi,
        "r2": 1.0 - sse / total if total else 0.0,
        "mae": float(np.nanmean(np.abs(residual))) if finite.any() else math.inf,
    }


def dead_fraction(layer: ReLU) -> float:
    """Fraction of a ReLU's units that were zero for every sample of the last batch (of the
    model's part of it, with replicas); for images a unit is a channel (zero at every
    position)."""
    active = layer.active_mask
    if active is None:
        return 0.0
    # Over the batch first, a reduction across whole contiguous samples, then over the
    # positions of one sample's map: any(axis=(0, 1, 2)) at once took 520 us on LeNet-5's
    # first ReLU (64x28x28x6), this 17 us.
    alive = active.reshape(len(active), -1).any(axis=0)
    if active.ndim > 2:
        alive = alive.reshape(-1, active.shape[-1]).any(axis=0)
    return float(1.0 - np.mean(alive))
