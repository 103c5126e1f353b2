"""BoundaryView: what a model with 1 or 2 input features does over its whole input plane.

Every so often it evaluates the model on a grid over the training data's bounding box (with a
margin) in one batched forward pass in eval mode, and emits a 'boundary' event: the predicted
class and its confidence per cell (classification), the predicted surface beside the mean
target per cell (2-D regression), or the fitted curve (1-D regression); the data points as
rasters; and, for hidden Dense layers of up to 64 units, each unit's own activation over the
plane (TensorFlow Playground's neurons; of a deeper model, the first 64 such layers), on a
grid coarser than the boundary's: 16x16 for up to 36 units, coarser beyond so that all maps
together stay within `NEURON_CELLS_MAX` cells. Rasters are strings, one character per cell
(`nnlib.events.RASTER_ALPHABET`): a 48x48 grid is about 2.5 kB a raster. Measured on spirals:
a 2-8-8-3 event is 11.4 kB (neurons 6.3 kB), a 2-32-32-3 one 27.3 kB (neurons 22.2 kB: 64
maps of 12x12, 11.6 kB, and 1,088 weights, 7.4 kB). The data points (and a surface's mean
target) do not change during a run: they are sent once, at its start, in a 'boundary_points'
event, not in every 'boundary' event.

How often: at the first step; between epoch ends every N steps, with N chosen from measured
times so that the view costs at most `budget` (3%) of training time; at an epoch end when
the views so far plus this one stay within `budget` of the run's wall time — always at the
first and the last epoch end, and at least every REFRESH_SECONDS (2 s) of wall time — so
that tiny epochs (spirals: about 10 ms) are not drawn at every end; at every epoch end of a
run paced (`RunControl.set_pace`) to epochs of PACED_EPOCH_SECONDS or more, which a person
watches epoch by epoch; and once more as the run ends if it stopped after the last view. A
view's cost is measured with the emitting (the run log and the app's bridge), not the forward
pass alone.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from ..events import (
    NEURON_CELLS_MAX,
    NEURON_LAYERS_MAX,
    NEURON_WEIGHTS_MAX,
    NEURONS_MAX,
    RASTER_ALPHABET,
    RASTER_EMPTY,
    RASTER_MAX,
)
from ..layers import Dense
from .base import Callback, Logs

if TYPE_CHECKING:
    from ..trainer import Trainer

LEVELS = len(RASTER_ALPHABET)  # 64
#: Share of the box added on each side, so points at the edge are not on the frame.
MARGIN = 0.1
#: Rows of the data-point raster of a 1-D curve (its columns are the grid's).
CURVE_ROWS = 32
#: Thumbnail side of a neuron's activation map, at most (less when the units are many).
THUMBNAIL = 16
#: Incoming weights are sent per neuron when a unit has at most this many.
MAX_FAN_IN = 64
#: Seconds of wall time after which an epoch end always gets a view, whatever it costs.
REFRESH_SECONDS = 2.0
#: A run paced to epochs at least this long gets a view at every epoch end (its ~2 ms is then
#: a small share of the epoch's wall time).
PACED_EPOCH_SECONDS = 0.1
#: What 'boundary_points' carries (what `_static` computes once per run).
POINT_FIELDS = ("train", "val", "truth")


_CODES = np.frombuffer((RASTER_ALPHABET + RASTER_EMPTY).encode("ascii"), dtype=np.uint8)


def raster(levels: np.ndarray) -> list[str]:
    """Integer levels 0..63 (or -1 for none) as rows of characters (one table lookup and
    one decode: joining characters row by row cost 1.4 ms of a 2 ms view)."""
    rows, columns = levels.shape
    text = _CODES[np.where(levels < 0, LEVELS, levels)].tobytes().decode("ascii")
    return [text[row * columns : (row + 1) * columns] for row in range(rows)]


def to_levels(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Values over [lo, hi] as levels 0..63 (clipped); -1 where not finite."""
    span = hi - lo if hi > lo else 1.0
    with np.errstate(invalid="ignore"):
        scaled = np.clip((values - lo) / span * (LEVELS - 1) + 0.5, 0, LEVELS - 1)
    return np.where(np.isfinite(values), np.nan_to_num(scaled), -1).astype(np.int64)


def point_raster(
    x: np.ndarray, labels: np.ndarray, lo: np.ndarray, hi: np.ndarray, shape: tuple[int, int]
) -> list[str]:
    """Data points on a (rows, columns) raster over [lo, hi] (row 0 at the top, the high y):
    each cell holds the label most of its points have, or "." if it has none."""
    rows, columns = shape
    column = np.clip(
        ((x[:, 0] - lo[0]) / (hi[0] - lo[0]) * columns).astype(np.int64), 0, columns - 1
    )
    if x.shape[1] > 1:
        row = (
            rows
            - 1
            - np.clip(((x[:, 1] - lo[1]) / (hi[1] - lo[1]) * rows).astype(np.int64), 0, rows - 1)
        )
    else:
        row = np.zeros(len(x), dtype=np.int64)
    labels = np.clip(labels.astype(np.int64), 0, LEVELS - 1)
    counts = np.zeros((rows * columns, int(labels.max(initial=0)) + 1), dtype=np.int64)
    np.add.at(counts, (row * columns + column, labels), 1)
    levels = np.where(counts.any(axis=1), counts.argmax(axis=1), -1)
    return raster(levels.reshape(rows, columns))


class BoundaryView(Callback):
    """Emit 'boundary' for a model with 1 or 2 input features trained on `x`, `y` (the
    training data; the validation data is the trainer's). Other models: nothing.

    `grid`: cells per side (at most 64); `budget`: the largest share of training time the
    view may take between epoch ends; `max_points`: training points drawn, at most."""

    essential = False  # a view (see Callback.essential)

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        grid: int = 48,
        budget: float = 0.03,
        max_points: int = 2000,
    ) -> None:
        if not 2 <= grid <= RASTER_MAX:
            raise ValueError(f"BoundaryView: grid must be 2 to {RASTER_MAX} cells, got {grid}")
        if not 0 < budget <= 1:
            raise ValueError(f"BoundaryView: budget must be in (0, 1], got {budget}")
        self.x, self.y = x, y
        self.grid = grid
        self.budget = budget
        self.max_points = max_points
        self.applies = False
        self.next_step = 0
        self.cost = 0.0  # seconds one view took (the latest measurement)
        self.spent = 0.0  # seconds all views of this run took
        self._began = 0.0  # perf_counter at the run's start
        self._shown_at = 0.0  # perf_counter at the latest view
        self._shown_step = -1  # global step of the latest view
        self._step_seconds = 0.0  # a training step's wall time between the latest two views
        self._fixed: dict[str, Any] = {}

    # -- hooks -----------------------------------------------------------------------------
    def on_train_begin(self, trainer: Trainer) -> None:
        shape = tuple(trainer.model.input_shape or ())
        self.applies = len(shape) == 1 and shape[0] in (1, 2) and len(self.x) > 0
        if not self.applies:
            return
        self._began = time.perf_counter()
        self.spent = 0.0
        self._fixed = self._static(trainer)
        self._shown_step = -1
        points = {key: self._fixed[key] for key in POINT_FIELDS if key in self._fixed}
        trainer.emit("boundary_points", **points)
        self._emit(trainer)

    def on_batch_end(self, trainer: Trainer, batch: int, logs: Logs) -> None:
        # Nothing else per batch: on spirals a batch is ~130 us, and timing every one
        # cost 3% of it; the step time is measured between views instead (`_emit`).
        if self.applies and trainer.global_step >= self.next_step:
            self._emit(trainer)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Logs) -> None:
        if not self.applies:
            return
        edge = epoch == 0 or epoch + 1 >= trainer.epochs or trainer.stop_training
        pace = trainer.control.pace
        watched = pace is not None and 1 / pace >= PACED_EPOCH_SECONDS
        if edge or watched or self.epoch_due(time.perf_counter()):
            self._emit(trainer, epoch=epoch)

    def on_train_end(self, trainer: Trainer, logs: Logs) -> None:
        if self.applies and self._shown_step != trainer.global_step:
            self._emit(trainer, epoch=trainer.epoch)  # stopped after the latest view

    # -- the view --------------------------------------------------------------------------
    def every(self) -> int:
        """Steps between two views so that they cost at most `budget` of training time."""
        if self._step_seconds <= 0:
            return 1
        return max(1, math.ceil(self.cost / (self.budget * self._step_seconds)))

    def epoch_due(self, now: float) -> bool:
        """Whether an epoch end at `now` (perf_counter) gets a view: when the views so far
        and one more stay within `budget` of the wall time since the run began, or when the
        latest view is REFRESH_SECONDS old."""
        if now - self._shown_at >= REFRESH_SECONDS:
            return True
        return self.spent + self.cost <= self.budget * (now - self._began)

    def _emit(self, trainer: Trainer, epoch: int | None = None) -> None:
        began = time.perf_counter()
        steps = trainer.global_step - self._shown_step
        if self._shown_step >= 0 and steps > 0:  # the wall time since the latest view
            self._step_seconds = (began - self._shown_at) / steps
        fields = self.compute(trainer)
        if epoch is not None:
            fields["epoch"] = epoch
        trainer.emit("boundary", **fields)
        self._shown_at = time.perf_counter()
        self.cost = self._shown_at - began
        self.spent += self.cost
        self._shown_step = trainer.global_step
        self.next_step = trainer.global_step + self.every()

    def _static(self, trainer: Trainer) -> dict[str, Any]:
        """What does not change during a run: the box, the grid's inputs and the data
        rasters."""
        x, y = _as_table(self.x), np.asarray(self.y)
        features = x.shape[1]
        if trainer.loss.task == "classification":
            kind = "classes"
        else:
            kind = "surface" if features == 2 else "curve"
        lo, hi = _padded(x)
        fixed: dict[str, Any] = {"kind": kind, **_grid(lo, hi, self.grid)}
        if kind != "classes":
            fixed.update(self._targets(kind, x, y, lo, hi))
        frame = _frame(fixed, lo, hi)
        fixed["lo"], fixed["hi"] = frame[0].tolist(), frame[1].tolist()
        fixed["train"] = self._points(kind, x, y, *frame)
        if trainer.validation_data is not None and len(trainer.validation_data[0]):
            xv, yv = trainer.validation_data
            fixed["val"] = self._points(kind, _as_table(xv), np.asarray(yv), *frame)
        return fixed

    def _targets(
        self, kind: str, x: np.ndarray, y: np.ndarray, lo: np.ndarray, hi: np.ndarray
    ) -> dict[str, Any]:
        """A regression's target range (`vmin`, `vmax`, padded as the box is) and, for a
        surface, the target's mean per cell (`truth`)."""
        target = y.reshape(len(y), -1)[:, 0].astype(np.float64)
        vmin, vmax = (float(value) for value in _padded(target))
        fields: dict[str, Any] = {"vmin": vmin, "vmax": vmax}
        if kind == "surface":
            fields["truth"] = self._truth(x, target, lo, hi, vmin, vmax)
        return fields

    def _points(
        self,
        kind: str,
        x: np.ndarray,
        y: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
        shape: tuple[int, int],
    ) -> list[str]:
        """The raster of at most `max_points` of the data (x, y) over [lo, hi], the same for
        the training and the validation data: classes are drawn by label; a curve's points
        are (x, target); a surface's, its inputs."""
        if kind == "classes":
            labels = y.astype(np.int64).ravel()
        else:
            labels = np.zeros(len(x), dtype=np.int64)
        if kind == "curve":
            x = np.stack([x[:, 0], y.reshape(len(y), -1)[:, 0]], axis=1)
        step = max(1, math.ceil(len(x) / self.max_points))
        return point_raster(x[::step], labels[::step], lo, hi, shape)

    def _truth(
        self,
        x: np.ndarray,
        target: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
        vmin: float,
        vmax: float,
    ) -> list[str]:
        """The mean target per cell of a grid half as fine (so most cells hold a point)."""
        n = max(2, self.grid // 2)
        column = np.clip(((x[:, 0] - lo[0]) / (hi[0] - lo[0]) * n).astype(np.int64), 0, n - 1)
        row = n - 1 - np.clip(((x[:, 1] - lo[1]) / (hi[1] - lo[1]) * n).astype(np.int64), 0, n - 1)
        cell = row * n + column
        sums = np.bincount(cell, weights=target, minlength=n * n)
        counts = np.bincount(cell, minlength=n * n)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        return raster(to_levels(means, vmin, vmax).reshape(n, n))

    def compute(self, trainer: Trainer) -> dict[str, Any]:
        """The event's fields now: one forward pass over the grid in eval mode (the model's
        training mode is restored after)."""
        fixed = self._fixed
        out, hidden = _forward(trainer.model, fixed["inputs"])
        shape = fixed["shape"]
        fields: dict[str, Any] = {
            key: fixed[key] for key in ("kind", "lo", "hi", "vmin", "vmax") if key in fixed
        }
        if fixed["kind"] == "classes":
            fields.update(_classes(out, shape))
        else:  # a surface, or a curve (one row): the first output's level
            levels = to_levels(out[:, 0], fixed["vmin"], fixed["vmax"])
            fields["predicted"] = raster(levels.reshape(shape))
        if shape[0] > 1 and hidden:
            fields["neurons"] = self._neuron_maps(hidden, shape)
        return fields

    def _neuron_maps(
        self, hidden: list[tuple[Dense, np.ndarray]], shape: tuple[int, int]
    ) -> list[dict[str, Any]]:
        """Every drawn layer's units (`_neurons`), their maps of one side so that all fit in
        NEURON_CELLS_MAX cells, and incoming weights while NEURON_WEIGHTS_MAX lasts."""
        units = sum(layer.units for layer, _ in hidden)
        stride = max(1, math.ceil(shape[0] / thumbnail_side(units)))
        weights = NEURON_WEIGHTS_MAX
        maps = []
        for layer, activations in hidden:
            entry = self._neurons(layer, activations, shape, stride, weights)
            weights -= sum(len(unit.get("weights", ())) for unit in entry["units"])
            maps.append(entry)
        return maps

    def _neurons(
        self,
        layer: Dense,
        activations: np.ndarray,
        shape: tuple[int, int],
        stride: int,
        weights_left: int,
    ) -> dict[str, Any]:
        """Each unit of `layer`: its activation over the plane (every `stride`-th cell, levels
        over [-scale, scale]), its bias and, if few (within `weights_left` for the layer),
        its incoming weights."""
        maps = np.asarray(activations, dtype=np.float64).reshape(*shape, -1)[::stride, ::stride]
        weights = layer.params["W"].value
        bias = layer.params["b"].value
        send_weights = weights.shape[0] <= MAX_FAN_IN and weights.size <= weights_left
        units = []
        for unit in range(maps.shape[2]):
            values = maps[:, :, unit]
            finite = values[np.isfinite(values)]
            scale = float(np.abs(finite).max()) if finite.size else 0.0
            entry: dict[str, Any] = {
                "map": raster(
                    to_levels(values, -scale, scale)
                    if scale
                    else np.full(values.shape, LEVELS // 2)
                ),
                "scale": float(f"{scale:.4g}"),
                "bias": float(f"{np.nan_to_num(bias[unit]):.4g}"),
            }
            if send_weights:
                entry["weights"] = [float(f"{w:.3g}") for w in np.nan_to_num(weights[:, unit])]
            units.append(entry)
        return {"layer": layer.name, "units": units}


def _padded(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The range of `values` (per column) with MARGIN of it added on each side, 1e-3 at least,
    so that the points at its edges are not on the frame."""
    lo, hi = values.min(axis=0), values.max(axis=0)
    pad = np.maximum((hi - lo) * MARGIN, 1e-3)
    return lo - pad, hi + pad


def _grid(lo: np.ndarray, hi: np.ndarray, n: int) -> dict[str, Any]:
    """The `inputs` at the centres of n cells per side over the box [lo, hi] (row 0 at the
    top, the high y), and the grid's `shape`: (n, n) for two features, (1, n) for one."""
    xs = lo[0] + (np.arange(n) + 0.5) / n * (hi[0] - lo[0])
    if len(lo) == 1:
        return {"inputs": xs[:, None], "shape": (1, n)}
    ys = hi[1] - (np.arange(n) + 0.5) / n * (hi[1] - lo[1])
    gx, gy = np.meshgrid(xs, ys)
    return {"inputs": np.stack([gx.ravel(), gy.ravel()], axis=1), "shape": (n, n)}


def _frame(
    fixed: dict[str, Any], lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """The box and the raster shape the data points are drawn in: the input plane; for one
    feature, the target's axis of a curve (CURVE_ROWS rows), or a band under the classes."""
    shape = fixed["shape"]
    if fixed["kind"] == "curve":
        box_lo, box_hi = np.array([lo[0], fixed["vmin"]]), np.array([hi[0], fixed["vmax"]])
        return box_lo, box_hi, (CURVE_ROWS, shape[1])
    if shape[0] == 1:
        return np.array([lo[0], 0.0]), np.array([hi[0], 1.0]), shape
    return lo, hi, shape


def _as_table(x: np.ndarray) -> np.ndarray:
    """Samples as rows of float64 features (a 1-D input's too)."""
    return np.asarray(x, dtype=np.float64).reshape(len(x), -1)


def _forward(model: Any, inputs: np.ndarray) -> tuple[np.ndarray, list[tuple[Dense, np.ndarray]]]:
    """The model's float64 output for `inputs` in eval mode (its mode restored after), and
    each drawn hidden layer (`neuron_layers`) with the output of the activation after it:
    what its units show once activated."""
    drawn = neuron_layers(model.layers)  # kept no further: memory, too
    hidden: list[tuple[Dense, np.ndarray]] = []
    out, pending = inputs.astype(model.dtype), None
    was_training = model.training
    model.eval()
    try:
        for layer in model.layers:
            if isinstance(layer, Dense) and pending is not None:
                hidden.append((pending, out))  # the output of its activation
                pending = None
            with np.errstate(over="ignore", invalid="ignore"):
                out = layer.forward(out)
            if any(layer is chosen for chosen in drawn):
                pending = layer
    finally:
        model.train(was_training)
    return np.asarray(out, dtype=np.float64), hidden


def _classes(out: np.ndarray, shape: tuple[int, int]) -> dict[str, list[str]]:
    """The predicted class per cell and how sure the model is of it: the largest softmax
    probability, scaled from 1/k (a guess among k classes) to 1."""
    # Classes as rows, cells as columns: the reductions over a few classes run along
    # contiguous rows (over a row of 3 values per cell they took 0.18 of 0.45 ms).
    columns = np.ascontiguousarray(out.T)
    k = columns.shape[0]
    with np.errstate(over="ignore", invalid="ignore"):
        # The largest probability of a softmax: its largest exp is exp(0) = 1.
        best = 1.0 / np.exp(columns - columns.max(axis=0)).sum(axis=0)
    best = np.nan_to_num(best, nan=1.0 / k)
    predicted = np.where(np.isfinite(columns).all(axis=0), columns.argmax(axis=0), -1)
    confidence = (best - 1.0 / k) / (1.0 - 1.0 / k) if k > 1 else np.ones_like(best)
    return {
        "predicted": raster(np.clip(predicted, -1, LEVELS - 1).reshape(shape)),
        "confidence": raster(to_levels(confidence, 0.0, 1.0).reshape(shape)),
    }


def neuron_layers(layers: list[Any]) -> list[Dense]:
    """The hidden Dense layers whose units a boundary event draws: those of up to NEURONS_MAX
    units, the first NEURON_LAYERS_MAX of them while all their units get maps of at least
    4x4 within NEURON_CELLS_MAX cells (the last Dense layer is the output, not hidden)."""
    dense = [layer for layer in layers if isinstance(layer, Dense)][:-1]
    chosen: list[Dense] = []
    units = 0
    for layer in dense:
        if layer.units > NEURONS_MAX:
            continue
        if len(chosen) == NEURON_LAYERS_MAX or (units + layer.units) * 16 > NEURON_CELLS_MAX:
            break
        chosen.append(layer)
        units += layer.units
    return chosen


def thumbnail_side(units: int) -> int:
    """The side of each unit's map when `units` maps share NEURON_CELLS_MAX cells (at most
    THUMBNAIL)."""
    return max(1, min(THUMBNAIL, math.isqrt(NEURON_CELLS_MAX // max(units, 1))))
