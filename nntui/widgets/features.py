"""Features: what the conv and pooling layers of an image model make of one validation
image — every channel of every such layer as a small picture, laid out by layer — and the
first conv layer's filters. Each map is scaled to its own range (black its minimum, white its
maximum); the range of each layer's values is shown beside it.

The maps come from the latest 'feature_maps' event (a few images each, cycled by ←/→), so a
recorded run shows what was recorded; a live run also takes `u` (update at the next batch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive

from nnlib.callbacks.samples import FILE as SAMPLES_FILE
from nnlib.events import FeatureMaps

from .panel import StatePanel, fit, side_by_side
from .pixels import fit_factor, halfblocks, tile_row
from .samples import SampleFile

#: Columns of the label beside each layer's maps.
LABEL_W = 13


def maps_of(record: dict[str, Any]) -> np.ndarray:
    """A maps record's channels as a uint8 array (C, H, W)."""
    return np.asarray(record["data"], dtype=np.uint8).reshape(record["shape"])


def layer_block(record: dict[str, Any], width: int, lines: int, color: bool) -> Text:
    """One layer: its name, size and value range, then as many of its channels side by side
    as fit `width` cells, each at most `lines` lines high."""
    maps = maps_of(record)
    channels, height, map_w = maps.shape
    room = max(width - LABEL_W - 2, 1)
    factor = fit_factor(height, map_w, max(room // channels - 1, 3), lines)
    shown = max(1, min(channels, room // (-(-map_w // factor) + 1)))
    label = Text.assemble(
        (record["name"][:LABEL_W], "bold"),
        "\n",
        (f"{channels}@{height}x{map_w}", "dim"),
        "\n",
        (f"{min(record['lo']):.2g}…{max(record['hi']):.2g}"[:LABEL_W], "dim"),
    )
    row = tile_row([halfblocks(channel, factor, color) for channel in maps[:shown]])
    block = side_by_side(label, row, LABEL_W)
    if shown < channels:
        block.append(f"\n{'':{LABEL_W + 2}}+{channels - shown} more channels", style="dim")
    return block


class FeaturesPanel(StatePanel, can_focus=True):
    """The maps of one of the recorded images, layer by layer."""

    HELP: ClassVar[str] = (
        "What each convolution and pooling layer computes from one validation image (left: "
        "the image). Every small picture is one channel (one filter's output): bright where "
        "the filter found its pattern, dark where it did not; each is scaled to its own "
        "range, shown beside the layer. The last row is the first layer's 5x5 filters "
        "themselves. Keys: ←/→ another image, u update now (paused: then n steps one batch "
        "and the maps follow it). Good: early maps pick out edges and strokes, later ones "
        "become coarser and more specific. Bad: maps that are all black (dead ReLUs) or "
        "all the same, or filters that stay noise after a few epochs."
    )
    INTERVAL = 0.5
    BINDINGS = [
        Binding("left", "image(-1)", "Prev image", show=False),
        Binding("right", "image(1)", "Next image", show=False),
        Binding("u", "update", "Update maps", show=False),
    ]
    image: reactive[int] = reactive(0)

    class UpdateRequested(Message):
        """The user asked for fresh maps (the dashboard asks the training thread)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.file = SampleFile()

    def data_key(self) -> tuple[int, str]:
        started = self.state.started
        return id(self.state.latest("feature_maps")), started.run_dir if started else ""

    def options(self) -> tuple[int]:
        return (self.image,)

    def action_image(self, offset: int) -> None:
        event = self.state.latest("feature_maps")
        count = len(event.images) if isinstance(event, FeatureMaps) else 1
        self.image = (self.image + offset) % max(count, 1)

    def action_update(self) -> None:
        self.post_message(self.UpdateRequested())

    def draw(self, width: int, height: int) -> Text:
        event = self.state.latest("feature_maps")
        if not isinstance(event, FeatureMaps) or not event.images:
            return Text("feature maps appear when training starts (conv layers)", style="dim")
        color = not self.app.no_color
        chosen = event.images[min(self.image, len(event.images) - 1)]
        index = chosen["index"]
        when = f"epoch {(event.epoch or 0) + 1}" + (
            ", on request" if event.trigger == "request" else ""
        )
        title = fit(
            width,
            Text.assemble(
                (f"validation image {index}", "bold"),
                f" ({self.image + 1} of {len(event.images)}) · {when} · each map scaled "
                "to its own range",
                ("   ←→ image  u update", "dim"),
            ),
            Text.assemble(
                (f"validation image {index}", "bold"),
                f" ({self.image + 1} of {len(event.images)}) · {when}",
            ),
            Text.assemble((f"image {index}", "bold"), f" · {when}"),
        )
        blocks = list(chosen["layers"])
        if event.filters:
            blocks.append({**event.filters, "name": f"{event.filters['name']} filters"})
        lines = max(2, (height - 1) // max(len(blocks), 1) - 1)
        left = self._input(index, lines * 2, color)
        left_w = max((line.cell_len for line in left.split("\n")), default=0)
        room = width - (left_w + 2 if left_w else 0)
        right = Text("\n").join(layer_block(block, room, lines, color) for block in blocks)
        body = side_by_side(left, right, left_w) if left_w else right
        return Text("\n").join([title, body])

    def _input(self, index: int, lines: int, color: bool) -> Text:
        """The image itself, from the samples file when the run has one."""
        started = self.state.started
        if started is None:
            return Text()
        self.file.load(Path(started.run_dir) / SAMPLES_FILE)
        if self.file.problem or index >= len(self.file.images):
            return Text()
        image = self.file.images[index]
        return halfblocks(image, fit_factor(*image.shape[:2], 14, max(lines // 2, 4)), color)
