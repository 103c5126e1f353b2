"""Real pictures in a terminal that can draw them: the Kitty graphics protocol or Sixel, through
`textual-image`; elsewhere (and in tests, and when asked: `nntui --graphics cells`) the
half-block cells of `pixels`.

Every panel draws its pictures as half blocks through `Pictures.draw`, the one call. In a
graphics mode those cells are also tagged (a style meta key) with the image behind them at its
own resolution; when the panel is rendered, `placements` finds the tagged rectangles that are
wholly in view and the panel lays a `Picture` over each, so a 28x28 map drawn in 14x7 cells
shows its 28x28 pixels scaled up. The half blocks stay underneath: what is cut by the edge of
a scrolled panel, or not yet placed, shows as before.

The mode is chosen once, by nntui's entry (`choose`) before the app starts: `textual_image`
asks the terminal what it supports when it is imported, which cannot work once Textual reads
the terminal's input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.widget import Widget

from ..cli import GRAPHICS
from .pixels import enlarged, halfblocks, rgb

#: `--graphics` values: ask the terminal, a protocol, or half-block cells.
MODES = GRAPHICS
#: The style meta key that marks a picture's cells (its value: the picture's number).
TAG = "nntui-picture"

_chosen = "cells"


def choose(requested: str, tty: bool) -> str:
    """Set how pictures are drawn from now on and return it ("kitty", "sixel" or "cells").

    "auto" asks the terminal (through textual_image's own detection) when `tty`, else takes
    cells; "kitty" and "sixel" are taken as asked. Must run before Textual starts."""
    global _chosen
    if requested not in MODES:
        raise ValueError(f"graphics mode {requested!r}: expected one of {', '.join(MODES)}")
    mode = "cells" if requested == "auto" and not tty else requested
    if mode == "auto":
        from textual_image import renderable  # this import asks the terminal

        mode = {renderable.TGPImage: "kitty", renderable.SixelImage: "sixel"}.get(
            renderable.Image, "cells"
        )
    if mode != "cells":
        import textual_image.widget  # noqa: F401  (measures the cell size, now or never)
    _chosen = mode
    return mode


def mode() -> str:
    """How pictures are drawn: "kitty", "sixel" or "cells"."""
    return _chosen


@dataclass(frozen=True)
class Placement:
    """A picture in view: its image over `cols` x `rows` cells from (x, y) of the panel."""

    x: int
    y: int
    cols: int
    rows: int
    image: np.ndarray

    def same(self, other: Placement | None) -> bool:
        """Whether `other` is this picture at this place (then nothing is drawn again)."""
        return (
            other is not None
            and (self.x, self.y, self.cols, self.rows) == (other.x, other.y, other.cols, other.rows)
            and np.array_equal(self.image, other.image)
        )


class Pictures:
    """The pictures of one panel's latest drawing, by the number its cells are tagged with."""

    def __init__(self) -> None:
        self.images: list[tuple[np.ndarray, int, int]] = []  # (image, cols, rows)

    def clear(self) -> None:
        self.images = []

    def draw(
        self,
        image: np.ndarray,
        factor: int = 1,
        color: bool = True,
        source: np.ndarray | None = None,
    ) -> Text:
        """`image` as half blocks (`pixels.halfblocks`, `factor` pixels a pixel); in a
        graphics mode with colour, tagged so that `source` (default: `image` itself, at full
        resolution) is drawn over them."""
        text = halfblocks(image, factor, color)
        if _chosen == "cells" or not color:
            return text
        lines = text.split("\n")
        number = len(self.images)
        self.images.append(
            (image if source is None else source, lines[0].cell_len if lines else 0, len(lines))
        )
        text.stylize(Style(meta={TAG: number}))
        return text

    def placements(self, lines: list[Text]) -> list[Placement]:
        """The tagged pictures wholly within `lines` (the panel's lines in view), in order."""
        if not self.images:
            return []
        shown = []
        for number, cells in sorted(_tagged(lines).items()):
            image, cols, rows = self.images[number]
            y, x, end = cells[0]
            whole = [(y + i, x, x + cols) for i in range(rows)]
            if cells == whole:
                shown.append(Placement(x, y, cols, rows, image))
        return shown

    def large(
        self,
        image: np.ndarray,
        title: Text,
        facts: list[Text],
        width: int,
        height: int,
        color: bool,
    ) -> Text:
        """One picture as large as the panel allows, each pixel at least a half cell: the
        `title` line above it, the `facts` beside it where they fit (else below)."""
        side = max((fact.cell_len for fact in facts), default=0) + 2
        beside = width - side >= image.shape[1]
        big, _ = enlarged(image, width - side if beside else width, height - 1)
        picture = self.draw(big, 1, color, source=image)
        if beside:
            rows = []
            lines = picture.split("\n")
            for index in range(max(len(lines), len(facts))):
                line = lines[index].copy() if index < len(lines) else Text(" " * big.shape[1])
                line.append("  ")
                if index < len(facts):
                    line.append_text(facts[index])
                rows.append(line)
            picture = Text("\n").join(rows)
        else:
            picture = Text("\n").join([picture, *facts])
        return Text("\n").join([title, picture])


def scaled(image: np.ndarray, width: int, height: int) -> Any:
    """The image as a PIL image of exactly width x height pixels: scaled by nearest neighbour
    (a whole factor when it is at least 2, so every pixel is a square of the same size) to the
    largest size that fits, centred on transparent pixels. textual-image would otherwise
    smooth a small image into a blur."""
    from PIL import Image

    pixels = rgb(image)
    h, w = pixels.shape[:2]
    scale = min(width / max(w, 1), height / max(h, 1))
    if scale >= 2:
        scale = int(scale)
    size = (max(1, min(width, round(w * scale))), max(1, min(height, round(h * scale))))
    picture = Image.fromarray(pixels, "RGB").resize(size, Image.Resampling.NEAREST)
    canvas = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    canvas.paste(picture, ((width - size[0]) // 2, (height - size[1]) // 2))
    return canvas


class Picture(Widget):
    """One image over a rectangle of its panel, drawn by textual-image's widget for the
    chosen protocol (TGPImage for kitty, SixelImage for sixel)."""

    DEFAULT_CSS = """
    Picture { position: absolute; }
    Picture > * { width: 100%; height: 100%; }
    """

    def __init__(self, placement: Placement) -> None:
        from textual_image.widget import SixelImage, TGPImage

        super().__init__()
        kind = SixelImage if _chosen == "sixel" else TGPImage
        self.drawn = kind(self._pil(placement))
        self.placement = placement
        self.move(placement)

    def compose(self) -> ComposeResult:
        yield self.drawn

    def _pil(self, placement: Placement) -> Any:
        from textual_image._terminal import get_cell_size

        cell = get_cell_size()
        return scaled(placement.image, placement.cols * cell.width, placement.rows * cell.height)

    def move(self, placement: Placement) -> None:
        """Show `placement`: its place and size, and its image if that changed."""
        self.styles.offset = (placement.x, placement.y)
        self.styles.width, self.styles.height = placement.cols, placement.rows
        old = self.placement
        if (placement.cols, placement.rows) != (old.cols, old.rows) or not np.array_equal(
            placement.image, old.image
        ):
            self.drawn.image = self._pil(placement)
        self.placement = placement

    def on_unmount(self) -> None:
        """Free the image the terminal holds (Kitty keeps it until told)."""
        self.drawn.image = None


def _tagged(lines: list[Text]) -> dict[int, list[tuple[int, int, int]]]:
    """Where each tagged picture's spans sit in `lines`: its number to the (line, first
    cell, end cell) of each span, in order; a picture is shown only if they are all there."""
    found: dict[int, list[tuple[int, int, int]]] = {}
    for y, line in enumerate(lines):
        plain = line.plain
        for span in line.spans:
            style = span.style
            if not isinstance(style, Style) or not style._meta:
                continue
            number = style.meta.get(TAG)
            if isinstance(number, int) and span.end > span.start:
                x = Text(plain[: span.start]).cell_len
                found.setdefault(number, []).append(
                    (y, x, x + Text(plain[span.start : span.end]).cell_len)
                )
    return found
