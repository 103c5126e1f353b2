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
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._atomic import atomic_write
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
            and len(trainer.model.input_shape) == 3
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
