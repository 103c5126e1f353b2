"""The records of the views a run may have beside its curves: the decision boundary and its
data points, the diagnostics' warnings, predictions on sample images, feature maps, the test
split's results, the training process's system figures and one sample traced through the
model. Their fields' checks and bounds are in `checks`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .._memory import human_bytes
from ..arrays import FILTERS, MAPS, UINTS
from . import checks
from .records import Event, epoch_text, field_of


@dataclass(frozen=True, kw_only=True)
class Boundary(Event):
    """The model over its input plane, on a grid of at most 64x64 (rasters: one character per
    cell, a value 0-63 or "." for none). `kind` "classes": `predicted` class and `confidence`
    level per cell over the box `lo`-`hi` (x, y); "surface": the predicted value's level over
    [vmin, vmax] per cell and `truth`, the mean target per cell; "curve": one row, the
    predicted y level per column over lo[1]-hi[1]. `train` and `val` mark the data points
    (their class, or "0"); `neurons`: per hidden layer of up to 64 units (the first 64 such
    layers, up to 9,216 map cells in all), each unit's activation map (levels over [-scale,
    scale]; 16x16 for up to 36 units, coarser beyond), bias and incoming weights (up to 4,096
    in all)."""

    TYPE = "boundary"
    kind: str = field_of(checks.one_of("classes", "surface", "curve"))
    lo: list = field_of(checks.pair)
    hi: list = field_of(checks.pair)
    predicted: list = field_of(checks.raster)
    confidence: list | None = field_of(checks.raster, optional=True)
    truth: list | None = field_of(checks.raster, optional=True)
    vmin: float | None = field_of(checks.number, optional=True)
    vmax: float | None = field_of(checks.number, optional=True)
    train: list | None = field_of(checks.raster, optional=True)
    val: list | None = field_of(checks.raster, optional=True)
    neurons: list | None = field_of(checks.neurons, optional=True)
    epoch: int | None = field_of(checks.integer, optional=True)

    def describe(self) -> str:
        rows, columns = len(self.predicted), len(self.predicted[0])
        return f"boundary ({self.kind}, {columns}x{rows}) at step {self.step}"


@dataclass(frozen=True, kw_only=True)
class BoundaryPoints(Event):
    """The data points under a run's boundary events, sent once at its start (they do not
    change): `train` and `val` mark them over the boundary's box (their class, or "0"), and
    `truth` is a surface's mean target per cell. Older logs carry these in every boundary."""

    TYPE = "boundary_points"
    train: list = field_of(checks.raster)
    val: list | None = field_of(checks.raster, optional=True)
    truth: list | None = field_of(checks.raster, optional=True)

    def describe(self) -> str:
        return f"boundary data points ({len(self.train[0])}x{len(self.train)})"


@dataclass(frozen=True, kw_only=True)
class Diagnostic(Event):
    """Something in the run looks wrong: `kind` (loss_spike, loss_rising, exploding_gradients,
    vanishing_gradients, dead_relu, saturated, overfitting, or view_failed: a view raised
    and is off for the rest of the run), a one-line explanation, a suggestion, the layer and
    measured value it is about, and where the suggestion is one hyperparameter change that
    can be applied live, that change (`fix`), or where it comes too late live, that change
    made in a fork from the newest checkpoint before step `before` (`fork`)."""

    TYPE = "warning"
    kind: str = field_of(checks.string)
    message: str = field_of(checks.string)
    suggestion: str = field_of(checks.string)
    layer: str | None = field_of(checks.string, optional=True)
    value: float | None = field_of(checks.number_or_null, optional=True)
    epoch: int | None = field_of(checks.integer, optional=True)
    fix: dict | None = field_of(checks.fix, optional=True)
    fork: dict | None = field_of(checks.fork, optional=True)

    def describe(self) -> str:
        return f"warning: {self.message} — {self.suggestion}"

    def fix_text(self) -> str | None:
        """What A does, for the end of the warning's Log line: 'lr 0.05' (a change applied
        live), 'fork from before step 1200 with lr 0.05', or None (nothing to apply)."""
        if self.fork is not None:
            fork = self.fork
            return f"fork from before step {fork['before']} with {fork['name']} {fork['value']:g}"
        return None if self.fix is None else f"{self.fix['name']} {self.fix['value']:g}"


@dataclass(frozen=True, kw_only=True)
class Samples(Event):
    """Predictions on the validation images stored once in the run directory (`file`, a
    .npz of uint8 images and labels): per image by index, the predicted class and its
    confidence in percent."""

    TYPE = "samples"
    file: str = field_of(checks.string)
    predicted: list = field_of(checks.list_of(checks.integer, "class indices"), packer=UINTS)
    confidence: list = field_of(checks.list_of(checks.percent, "integers in 0..100"), packer=UINTS)
    epoch: int | None = field_of(checks.integer, optional=True)

    def describe(self) -> str:
        epoch, images = epoch_text(self.epoch), len(self.predicted)
        return f"samples, epoch {epoch}: predictions for {images:,} images"


@dataclass(frozen=True, kw_only=True)
class FeatureMaps(Event):
    """What the conv and pooling layers make of a few validation images (by index into the
    samples file): per image and layer, every channel as uint8 scaled to its own [lo, hi];
    and the first conv layer's filters (averaged over input channels) the same way."""

    TYPE = "feature_maps"
    images: list = field_of(checks.image_maps, packer=MAPS)
    filters: dict | None = field_of(checks.maps, optional=True, packer=FILTERS)
    epoch: int | None = field_of(checks.integer, optional=True)
    trigger: str | None = field_of(checks.string, optional=True)

    def describe(self) -> str:
        why = " (on request)" if self.trigger == "request" else ""
        return f"feature maps of {len(self.images)} images, epoch {epoch_text(self.epoch)}{why}"


@dataclass(frozen=True, kw_only=True)
class TestResult(Event):
    """The model on the test split (at the end of a run, or on request): loss and accuracy,
    or MSE and MAE for regression; for classification the confusion matrix (rows true) with
    per-class precision and recall."""

    TYPE = "test"
    __test__: ClassVar[bool] = False  # not a pytest class, whatever its name
    loss: float | None = field_of(checks.number_or_null)
    samples: int = field_of(checks.integer)
    accuracy: float | None = field_of(checks.number_or_null, optional=True)
    mse: float | None = field_of(checks.number_or_null, optional=True)
    mae: float | None = field_of(checks.number_or_null, optional=True)
    matrix: list | None = field_of(checks.matrix, optional=True)
    precision: list | None = field_of(checks.list_of(checks.number, "numbers"), optional=True)
    recall: list | None = field_of(checks.list_of(checks.number, "numbers"), optional=True)
    class_names: list | None = field_of(checks.list_of(checks.string, "strings"), optional=True)
    epoch: int | None = field_of(checks.integer, optional=True)
    trigger: str | None = field_of(checks.string, optional=True)

    def scores(self) -> str:
        """'loss 0.1234  accuracy 97.1%' (or MSE and MAE), the line the CLI and app show."""
        parts = [f"loss {'-' if self.loss is None else f'{self.loss:.4f}'}"]
        if self.accuracy is not None:
            parts.append(f"accuracy {self.accuracy:.1%}")
        for name in ("mse", "mae"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name.upper()} {value:.4g}")
        return "  ".join(parts)

    def describe(self) -> str:
        when = "on request" if self.trigger == "request" else "end of run"
        return f"test ({when}, {self.samples:,} samples): {self.scores()}"


# -- the training process (issue 20) -------------------------------------------------------------
def _bytes(value: int | None) -> str:
    return "-" if value is None else human_bytes(value)


@dataclass(frozen=True, kw_only=True)
class System(Event):
    """The training process over the last `seconds` (every few seconds, at a pause and at
    the end of a run): its CPU time in percent of that wall time (above 100 with several
    threads busy), the samples it trained and their rate per second of wall time, and its
    resident memory now and at its peak in bytes (left out where the system does not say)."""

    TYPE = "system"
    seconds: float = field_of(checks.number)
    cpu_percent: float | None = field_of(checks.number_or_null)
    samples: int = field_of(checks.integer)
    samples_per_sec: float | None = field_of(checks.number_or_null)
    rss_bytes: int | None = field_of(checks.integer, optional=True)
    peak_rss_bytes: int | None = field_of(checks.integer, optional=True)

    def describe(self) -> str:
        cpu = "-" if self.cpu_percent is None else f"{self.cpu_percent:.0f}%"
        speed = "-" if self.samples_per_sec is None else f"{self.samples_per_sec:,.0f}"
        return (
            f"system: cpu {cpu}  rss {_bytes(self.rss_bytes)} (peak "
            f"{_bytes(self.peak_rss_bytes)})  {speed} samples/s over {self.seconds:.1f}s"
        )


@dataclass(frozen=True, kw_only=True)
class Trace(Event):
    """One validation sample (`index` of `samples`, its `label` and the `predicted` output)
    through the model in evaluation mode, in float64 (`nnlib.trace`): per layer its input,
    output, the gradient at its output (δ) and at its input, each parameter and its gradient,
    every value of an array of at most 32, else shape, range, mean and a heat strip. After a
    single step (`update`), each layer's `update` holds each parameter before the step, the
    batch's gradient dW and the change ΔW, and `lr` and `rule` the optimizer's: `rule` is
    left out where ΔW = −lr·dW holds (plain SGD), else the optimizer and its settings that
    made ΔW."""

    TYPE = "trace"
    index: int = field_of(checks.integer)
    samples: int = field_of(checks.integer)
    label: str = field_of(checks.string)
    predicted: str = field_of(checks.string)
    loss: float | None = field_of(checks.number_or_null)
    layers: list = field_of(checks.trace_layers)
    epoch: int | None = field_of(checks.integer, optional=True)
    lr: float | None = field_of(checks.number, optional=True)
    rule: str | None = field_of(checks.string, optional=True)
    trigger: str | None = field_of(checks.string, optional=True)

    def describe(self) -> str:
        after = " after one step" if self.lr is not None else ""
        return f"trace of validation sample {self.index} (label {self.label}){after}"
