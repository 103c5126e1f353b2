"""Features: what the conv and pooling layers of an image model make of one validation
image — every channel of every such layer as a small picture, laid out by layer — and the
first conv layer's filters. Each map is scaled to its own range (black its minimum, white its
maximum); the range of each layer's values is shown beside it.

The maps come from the latest 'feature_maps' event (a few images each, cycled by ←/→), so a
recorded run shows what was recorded; a live run also takes `u` (update at the next batch).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive

from nnlib.callbacks.samples import FILE as SAMPLES_FILE
from nnlib.events import FeatureMaps
from nnlib.runs import UNREADABLE

from .panel import StatePanel, fit, side_by_side
from .picture import Pictures
from .pixels import fit_factor, tile_row
from .samples import SampleFile

#: Columns of the label beside each layer's maps.
LABEL_W = 13
#: Lines each layer's maps take at least (the panel scrolls when they do not fit).
MIN_LINES = 4


def maps_of(record: dict[str, Any]) -> np.ndarray:
    """A maps record's channels as a uint8 array (C, H, W)."""
    return np.asarray(record["data"], dtype=np.uint8).reshape(record["shape"])


def layer_block(
    record: dict[str, Any],
    width: int,
    lines: int,
    color: bool,
    pictures: Pictures,
    selected: int | None = None,
) -> Text:
    """One layer: its name, size and value range, then as many of its channels side by side
    as fit `width` cells, each at most `lines` lines high; a mark under channel `selected`."""
    maps = maps_of(record)
    channels, height, map_w = maps.shape
    room = max(width - LABEL_W - 2, 1)
    factor = fit_factor(height, map_w, max(room // channels - 1, 3), lines)
    tile_w = -(-map_w // factor)
    shown = max(1, min(channels, room // (tile_w + 1)))
    label = Text.assemble(
        (record["name"][:LABEL_W], "bold"),
        "\n",
        (f"{channels}@{height}x{map_w}", "dim"),
        "\n",
        (f"{min(record['lo']):.2g}…{max(record['hi']):.2g}"[:LABEL_W], "dim"),
    )
    row = tile_row([pictures.draw(channel, factor, color) for channel in maps[:shown]])
    block = side_by_side(label, row, LABEL_W)
    if shown < channels:
        block.append(f"\n{'':{LABEL_W + 2}}+{channels - shown} more channels", style="dim")
    if selected is not None:
        block.append_text(Text("\n" + " " * (LABEL_W + 2)))
        block.append_text(mark(selected, channels, shown, tile_w))
    return block


def mark(selected: int, count: int, shown: int, tile_w: int) -> Text:
    """The line under a row of pictures that points at the selected one."""
    if selected >= shown:
        return Text(f"▸ channel {selected + 1} of {count} (Enter: large)", style="bold yellow")
    number = f" {selected + 1}" if count > 1 else ""
    return Text.assemble(" " * (selected * (tile_w + 1)), ("▔" * tile_w, "bold yellow"), number)


@dataclass(frozen=True)
class Row:
    """One row of pictures the cursor moves over: the input image, a layer's channels or
    the first layer's filters, each picture with the values black and white stand for."""

    name: str
    pictures: list[np.ndarray]
    lo: list[float]
    hi: list[float]
    record: dict[str, Any] | None = None  # a layer's maps record (None: the input image)


class FeaturesPanel(StatePanel, can_focus=True):
    """The maps of one of the recorded images, layer by layer; any of them opened large."""

    HELP: ClassVar[str] = (
        "What each convolution and pooling layer computes from one validation image (left: "
        "the image). Every small picture is one channel (one filter's output): bright where "
        "the filter found its pattern, dark where it did not; each is scaled to its own "
        "range, shown beside the layer. The last row is the first layer's 5x5 filters "
        "themselves. Keys: arrows select a picture (the mark under it), Enter opens it "
        "large (the whole panel, a pixel a half cell: a 28x28 map is 28 columns by 14 "
        "lines; there the arrows go on to the next channel or layer, Enter or Esc come "
        "back), PgUp/PgDn another image, u update now (paused: then n steps one "
        "batch and the maps follow it); the mouse wheel scrolls what does not fit. Good: "
        "early maps pick out edges and strokes, later ones become coarser and more "
        "specific. Bad: maps that are all black (dead ReLUs) or all the same, or filters "
        "that stay noise after a few epochs."
    )
    INTERVAL = 0.5
    SCROLLS = True
    BINDINGS = [
        Binding("up", "move(-1, 0)", "Up", show=False),
        Binding("down", "move(1, 0)", "Down", show=False),
        Binding("left", "move(0, -1)", "Left", show=False),
        Binding("right", "move(0, 1)", "Right", show=False),
        Binding("enter", "large", "Open large", show=False),
        Binding("escape", "close", "Back", show=False),
        Binding("pageup", "image(-1)", "Prev image", show=False),
        Binding("pagedown", "image(1)", "Next image", show=False),
        Binding("u", "update", "Update maps", show=False),
    ]
    image: reactive[int] = reactive(0)
    #: The selected picture: (row, picture in the row); see `rows`.
    cursor: reactive[tuple[int, int]] = reactive((0, 0))
    #: The selected picture fills the panel.
    large: reactive[bool] = reactive(False)

    class UpdateRequested(Message):
        """The user asked for fresh maps (the dashboard asks the training thread)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.file = SampleFile()

    def data_key(self) -> tuple[int, str]:
        started = self.state.started
        return id(self.state.latest("feature_maps")), started.run_dir if started else ""

    def options(self) -> tuple[int, tuple[int, int], bool]:
        return self.image, self.cursor, self.large

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Esc closes the large view; otherwise it is the dashboard's (back to setup)."""
        return self.large if action == "close" else True

    def action_image(self, offset: int) -> None:
        event = self.state.latest("feature_maps")
        count = len(event.images) if isinstance(event, FeatureMaps) else 1
        self.image = (self.image + offset) % max(count, 1)

    def action_move(self, rows: int, columns: int) -> None:
        """Arrows: another row or another picture of the row (in the large view, any
        channel; in the overview, those shown, then the next row's)."""
        shown = self.rows()
        if not shown:
            return
        row, column = self.cursor
        row = min(max(row + rows, 0), len(shown) - 1)
        column = min(max(column + columns, 0), len(shown[row].pictures) - 1)
        self.cursor = (row, column)

    def action_large(self) -> None:
        self.large = not self.large and bool(self.rows())

    def action_close(self) -> None:
        self.large = False

    def action_update(self) -> None:
        self.post_message(self.UpdateRequested())

    def _chosen(self) -> dict[str, Any] | None:
        """The recorded image shown (its index and its layers' maps)."""
        event = self.state.latest("feature_maps")
        if not isinstance(event, FeatureMaps) or not event.images:
            return None
        return event.images[min(self.image, len(event.images) - 1)]

    def rows(self) -> list[Row]:
        """What the cursor moves over, top to bottom: the input image (when the run's
        samples file has it), every layer's maps, the first layer's filters."""
        chosen, event = self._chosen(), self.state.latest("feature_maps")
        if chosen is None or not isinstance(event, FeatureMaps):
            return []
        rows = []
        image = self._image(chosen["index"])
        if image is not None:
            rows.append(Row("input", [image], [float(image.min())], [float(image.max())]))
        records = list(chosen["layers"])
        if event.filters:
            records.append({**event.filters, "name": f"{event.filters['name']} filters"})
        for record in records:
            maps = maps_of(record)
            rows.append(Row(record["name"], list(maps), record["lo"], record["hi"], record))
        return rows

    def draw(self, width: int, height: int) -> Text:
        event = self.state.latest("feature_maps")
        chosen = self._chosen()
        if isinstance(event, FeatureMaps) and event.get(UNREADABLE):
            return Text(str(event.get(UNREADABLE)), style="yellow")  # the side file's fault
        if not isinstance(event, FeatureMaps) or chosen is None:
            return Text("feature maps appear when training starts (conv layers)", style="dim")
        rows = self.rows()
        row_at, column = self.cursor
        row_at = min(row_at, len(rows) - 1)
        column = min(column, len(rows[row_at].pictures) - 1)
        index = chosen["index"]
        when = f"epoch {(event.epoch or 0) + 1}" + (
            ", on request" if event.trigger == "request" else ""
        )
        if self.large:
            return self._large(rows[row_at], column, index, when, width, height)
        title = self._title(event, index, when, width)
        return Text("\n").join([title, self._overview(rows, row_at, column, width, height)])

    def _overview(self, rows: list[Row], row_at: int, column: int, width: int, height: int) -> Text:
        """The input image at the left of every layer's maps, the picture at the cursor
        (`row_at`, `column`) marked and scrolled into view."""
        color = not self.app.no_color
        layers = [row for row in rows if row.record is not None]
        lines = max(MIN_LINES, (height - 1) // max(len(layers), 1) - 1)
        left = self._input(rows[0], row_at == 0, lines, color)
        left_w = max((line.cell_len for line in left.split("\n")), default=0)
        room = width - (left_w + 2 if left_w else 0)
        selected = rows[row_at] if rows[row_at].record is not None else None
        right, first, last = self._layers(layers, selected, column, room, lines, color)
        if selected is None:
            first, last = 1, len(left.split("\n"))
        body = side_by_side(left, right, left_w) if left_w else right
        self.reveal(0 if first == 1 else first, last, height)
        return body

    def _title(self, event: FeatureMaps, index: int, when: str, width: int) -> Text:
        """The overview's first line, shorter where the panel is narrow."""
        image = (f"validation image {index}", "bold")
        of = f" ({self.image + 1} of {len(event.images)})"
        return fit(
            width,
            Text.assemble(
                image,
                f"{of} · {when} · each map scaled to its own range",
                ("   arrows select  ⏎ large  PgUp/PgDn image  u update", "dim"),
            ),
            Text.assemble(image, f"{of} · {when}", ("  ⏎ large", "dim")),
            Text.assemble((f"image {index}", "bold"), f" · {when}"),
        )

    def _input(self, row: Row, selected: bool, lines: int, color: bool) -> Text:
        """The input image at the left (`row`, the first; nothing when it is a layer's),
        marked when the cursor is on it."""
        if row.record is not None:
            return Text()
        image = row.pictures[0]
        tall, wide = image.shape[:2]
        left = self.pictures.draw(image, fit_factor(tall, wide, 14, lines), color)
        if selected:
            left.append_text(Text("\n"))
            left.append_text(mark(0, 1, 1, left.split("\n")[0].cell_len))
        return left

    def _layers(
        self,
        layers: list[Row],
        selected: Row | None,
        column: int,
        room: int,
        lines: int,
        color: bool,
    ) -> tuple[Text, int, int]:
        """Every layer's maps, one block below the other in `room` columns (the `selected`
        row's picture at `column` marked), and the first and last line of that row's block."""
        blocks: list[Text] = []
        first = last = 1
        for row in layers:
            assert row.record is not None
            chosen = column if row is selected else None
            block = layer_block(row.record, room, lines, color, self.pictures, chosen)
            if chosen is not None:
                first = 1 + sum(len(b.split("\n")) for b in blocks)
                last = first + len(block.split("\n")) - 1
            blocks.append(block)
        return Text("\n").join(blocks), first, last

    def _large(self, row: Row, column: int, index: int, when: str, width: int, height: int) -> Text:
        """The selected picture over the whole panel, with what it is and its range."""
        picture = row.pictures[column]
        what = "filter" if row.name.endswith("filters") else "channel"
        part = "" if row.record is None else f" · {what} {column + 1} of {len(row.pictures)}"
        label = self._label(index)
        title = fit(
            width,
            Text.assemble(
                (f"{row.name}{part}", "bold"),
                f" · validation image {index}{label} · {when}",
                ("   ⏎/esc back", "dim"),
            ),
            Text.assemble((f"{row.name}{part}", "bold"), f" · image {index}{label}"),
        )
        lo, hi = row.lo[column], row.hi[column]
        size = "x".join(str(n) for n in picture.shape[:2])
        facts = [
            Text(f"{size} pixels", style="bold"),
            Text(f"black {lo:.3g}"),
            Text(f"white {hi:.3g}"),
            Text(""),
            Text("←→ channel  ↑↓ layer", style="dim"),
            Text("⏎/esc back", style="dim"),
        ]
        return self.pictures.large(picture, title, facts, width, height, not self.app.no_color)

    def _label(self, index: int) -> str:
        """' (true class 7)' for a recorded image whose label the samples file has."""
        if self.file.problem or index >= len(self.file.labels):
            return ""
        names = list(self.state.started.class_names) if self.state.started else []
        label = int(self.file.labels[index])
        return f" (label {names[label] if label < len(names) else label})"

    def _image(self, index: int) -> np.ndarray | None:
        """The image itself, from the samples file when the run has one."""
        started = self.state.started
        if started is None:
            return None
        self.file.load(Path(started.run_dir) / SAMPLES_FILE)
        if self.file.problem or index >= len(self.file.images):
            return None
        return self.file.images[index]
