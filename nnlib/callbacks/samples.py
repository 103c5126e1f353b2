"""SampleRecorder: the validation images once per run, and per epoch what the model says of
each, for the app's Samples gallery and its drill-down from the confusion matrix.

The images are written once, atomically, as uint8 into `<run>/samples.npz` (compressed:
6,000 MNIST digits take about 1 MB); every epoch a 'samples' event carries, by index, the
predicted class and its confidence in whole percent (two small integers an image: about
40 kB of JSON for 6,000 images). The predictions are the ones the trainer already computed
for validation, so an epoch costs an argmax and a softmax, no extra forward pass.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._atomic import atomic_write
from .._npy import read_npz
from .base import Callback, Logs

if TYPE_CHECKING:
    from ..trainer import Trainer

FILE = "samples.npz"
#: Validation images stored (the first ones); predictions are recorded for these.
LIMIT = 10_000


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Images of any range as uint8 for display, one linear scale over the whole set (so
    brightness compares between images); channels-last (N, H, W, C)."""
    images = np.asarray(images, dtype=np.float32)
    lo, hi = float(images.min()), float(images.max())
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    return np.rint((images - lo) * scale).astype(np.uint8)


def write_samples(
    path: Path, images: np.ndarray, labels: np.ndarray, class_names: list[str]
) -> Path:
    """Write the samples file atomically: uint8 images, int labels, class names."""

    def write(handle: io.BufferedIOBase) -> None:
        np.savez_compressed(
            handle,
            images=to_uint8(images),
            labels=np.asarray(labels, dtype=np.int64),
            class_names=np.asarray(class_names, dtype=str),
        )

    return atomic_write(path, write)  # type: ignore[arg-type]


class SamplesError(ValueError):
    """A samples file that cannot be shown; the message says why (it names the file)."""


@dataclass(frozen=True)
class SampleImages:
    """What a samples file holds: uint8 images (N, H, W, C), N labels, the class names."""

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]


def read_samples(path: Path) -> SampleImages:
    """Read a samples file written by `write_samples`: a regular file only, every header
    checked before any image is decompressed (`nnlib._npy.read_npz`). Any way it can be
    unusable (missing, not a regular file, empty, truncated, a damaged header, no images
    or images without pixels, labels that do not match) raises SamplesError."""
    arrays = read_npz(path, SamplesError, "samples file")
    if "images" not in arrays or "labels" not in arrays:
        raise SamplesError(f"{path}: no 'images' and 'labels' arrays")
    images, labels = arrays["images"], arrays["labels"]
    names = arrays.get("class_names", np.zeros(0, dtype=str))
    problem = _mismatch(images, labels, names)
    if problem is not None:
        raise SamplesError(f"{path}: {problem}")
    return SampleImages(images, labels.astype(np.int64), tuple(str(n) for n in names))


def _mismatch(images: np.ndarray, labels: np.ndarray, names: np.ndarray) -> str | None:
    """What makes a samples file's arrays unusable together (None: nothing): images with
    pixels, one integer label each, class names as text."""
    if images.dtype != np.uint8 or images.ndim != 4 or 0 in images.shape[1:]:
        return (
            "expected uint8 images (N, H, W, C) of at least one pixel, got "
            f"{images.dtype} {images.shape}"
        )
    if labels.shape != images.shape[:1] or labels.dtype.kind not in "iu":
        return f"expected {len(images)} integer labels, got {labels.dtype} {labels.shape}"
    if names.ndim != 1 or names.dtype.kind != "U":
        return "class_names must be a list of text"
    return None


def predictions(outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predicted class and its softmax probability in whole percent, per row of logits."""
    logits = np.asarray(outputs, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        shifted = logits - logits.max(axis=1, keepdims=True)
        probabilities = np.exp(shifted)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
    top = np.nan_to_num(probabilities.max(axis=1), nan=0.0)
    return logits.argmax(axis=1), np.rint(np.clip(top, 0, 1) * 100).astype(np.int64)


class SampleRecorder(Callback):
    """Store up to `limit` validation images in `run_dir` once; emit 'samples' after every
    epoch. Only for image classification (inputs (H, W, C)); anything else is left alone."""

    essential = False  # a view (see Callback.essential)

    def __init__(
        self, run_dir: str | Path, class_names: list[str] | None = None, limit: int = LIMIT
    ) -> None:
        if limit < 1:
            raise ValueError(f"SampleRecorder: limit must be >= 1, got {limit}")
        self.path = Path(run_dir) / FILE
        self.class_names = class_names
        self.limit = limit
        self.count = 0

    @staticmethod
    def applies(trainer: Trainer) -> bool:
        return (
            trainer.loss.task == "classification"
            and len(trainer.model.built_input_shape) == 3
            and trainer.validation_data is not None
        )

    def on_train_begin(self, trainer: Trainer) -> None:
        self.count = 0
        if not self.applies(trainer):
            return
        assert trainer.validation_data is not None
        x, y = trainer.validation_data
        self.count = min(len(x), self.limit)
        names = self.class_names or [str(i) for i in range(trainer.model.output_shape[-1])]
        write_samples(self.path, x[: self.count], y[: self.count], names)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Logs) -> None:
        outputs = trainer.validation_outputs
        if not self.count or outputs is None:
            return
        predicted, confidence = predictions(outputs[: self.count])
        trainer.emit(
            "samples",
            epoch=epoch,
            file=FILE,
            predicted=predicted.tolist(),
            confidence=confidence.tolist(),
        )
