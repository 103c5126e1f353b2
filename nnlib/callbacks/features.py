"""FeatureMaps: what the conv and pooling layers of an image model make of a few validation
images, for the app's Features panel.

For `images` validation images (the first of as many different classes) it runs one forward
pass in evaluation mode, layer by layer, and keeps the output of every Conv2D and pooling
layer: up to `channels` channels a layer, each subsampled to at most `side` x `side`
pixels, as uint8 scaled to its own [lo, hi] (the scale travels with it). The first conv
layer's filters, averaged over input channels, come the same way. It emits a
'feature_maps' event when training begins (the random filters), after every epoch, and on
request (`request()`, served at the next batch boundary; see OnDemand). LeNet-5 on 28x28
digits: 7,880 values an image; the run log puts the pixels of four images (31.5 kB, about
14 kB compressed) in the run's side file (nnlib.arrays), where they were 110 kB of JSON.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..layers import Conv2D
from ..layers.pooling import _Pool2D
from .base import Logs
from .ondemand import OnDemand

if TYPE_CHECKING:
    from ..model import Sequential
    from ..trainer import Trainer


def scaled(maps: np.ndarray, name: str) -> dict[str, Any]:
    """Channels (C, H, W) as one maps record: uint8 data, each channel scaled to its own
    [lo, hi] (a constant channel is all zeros)."""
    maps = np.asarray(maps, dtype=np.float64)
    flat = maps.reshape(len(maps), -1)
    lo, hi = flat.min(axis=1), flat.max(axis=1)
    span = np.where(hi > lo, hi - lo, 1.0)
    data = np.rint((flat - lo[:, None]) / span[:, None] * 255).astype(np.uint8)
    return {
        "name": name,
        "shape": list(maps.shape),
        "lo": lo.tolist(),
        "hi": hi.tolist(),
        "data": data.ravel().tolist(),
    }


def layer_maps(
    model: Sequential, image: np.ndarray, channels: int, side: int
) -> list[dict[str, Any]]:
    """The conv and pooling outputs for one image (H, W, C), in evaluation mode; the model's
    training mode is restored however this ends."""
    was_training = model.training
    model.eval()
    out = []
    try:
        x = image[None].astype(model.dtype, copy=False)
        for layer in model.layers:
            x = layer.forward(x)
            if isinstance(layer, Conv2D | _Pool2D):
                height, width = x.shape[1:3]
                step_h, step_w = -(-height // side), -(-width // side)  # ceil: at most `side`
                maps = np.moveaxis(x[0, ::step_h, ::step_w, :channels], -1, 0)
                out.append(scaled(maps, layer.name))
    finally:
        model.train(was_training)
    return out


def first_filters(model: Sequential, channels: int) -> dict[str, Any] | None:
    """The first conv layer's kernels (kh, kw, C_in, F) as F images averaged over C_in."""
    conv = next((layer for layer in model.layers if isinstance(layer, Conv2D)), None)
    if conv is None:
        return None
    kernel = conv.params["W"].value.mean(axis=2)  # (kh, kw, F)
    return scaled(np.moveaxis(kernel[..., :channels], -1, 0), conv.name)


def pick_images(labels: np.ndarray, count: int) -> list[int]:
    """Indices of the first image of each class, in order of appearance, `count` of them
    (fewer classes than `count`: the next images in order)."""
    _, first = np.unique(labels, return_index=True)
    chosen = sorted(int(i) for i in first)[:count]
    rest = (i for i in range(len(labels)) if i not in chosen)
    while len(chosen) < min(count, len(labels)):
        chosen.append(next(rest))
    return chosen


class FeatureMaps(OnDemand):
    """Emit 'feature_maps' for `images` validation images at the start, every epoch and on
    request; only for models with a Conv2D layer and validation data."""

    essential = False  # a view (see Callback.essential)

    def __init__(self, images: int = 4, channels: int = 16, side: int = 28) -> None:
        super().__init__()
        if images < 1 or channels < 1 or side < 1:
            raise ValueError(
                f"FeatureMaps: images, channels and side must be >= 1, got "
                f"{images}, {channels} and {side}"
            )
        self.images, self.channels, self.side = images, channels, side
        self.indices: list[int] = []

    def on_train_begin(self, trainer: Trainer) -> None:
        self.indices = []
        has_conv = any(isinstance(layer, Conv2D) for layer in trainer.model.layers)
        if has_conv and trainer.validation_data is not None:
            labels = trainer.validation_data[1]
            self.indices = pick_images(labels.reshape(len(labels), -1)[:, 0], self.images)
            self.serve(trainer, "start")

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Logs) -> None:
        self.serve(trainer, "epoch")

    def serve(self, trainer: Trainer, trigger: str) -> None:
        if not self.indices or trainer.validation_data is None:
            return
        x = trainer.validation_data[0]
        images = [
            {"index": i, "layers": layer_maps(trainer.model, x[i], self.channels, self.side)}
            for i in self.indices
        ]
        filters = first_filters(trainer.model, self.channels)
        trainer.emit(
            "feature_maps",
            epoch=trainer.epoch,
            images=images,
            trigger=trigger,
            **({"filters": filters} if filters else {}),
        )
