"""Images in a terminal: half-block characters, two pixels a cell (the upper one the
character's colour, the lower its background), downsampled by block means to fit. Without
colour, each cell is one shade of the mean of its two pixels."""

from __future__ import annotations

import math

import numpy as np
from rich.style import Style
from rich.text import Text

SHADES = " ░▒▓█"


def fit_factor(height: int, width: int, cols: int, rows: int) -> int:
    """The smallest whole downsampling factor that fits an image into cols x rows cells."""
    return max(1, math.ceil(width / max(cols, 1)), math.ceil(height / max(2 * rows, 1)))


def downsample(image: np.ndarray, factor: int) -> np.ndarray:
    """Block means over factor x factor pixels (edges padded by repetition); (H, W, C)."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 2:
        image = image[..., None]
    if factor <= 1:
        return image
    height, width = image.shape[:2]
    pad_h, pad_w = -height % factor, -width % factor
    image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    h, w = image.shape[0] // factor, image.shape[1] // factor
    return image.reshape(h, factor, w, factor, -1).mean(axis=(1, 3))


def rgb(image: np.ndarray, factor: int = 1) -> np.ndarray:
    """uint8-range pixels (H, W) or (H, W, C) as (H, W, 3) uint8 colours, `factor` pixels
    a pixel: three channels are colours, others grey (their mean)."""
    pixels = downsample(image, factor)
    if pixels.shape[2] != 3:
        pixels = pixels.mean(axis=2, keepdims=True).repeat(3, 2)
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def halfblocks(image: np.ndarray, factor: int = 1, color: bool = True) -> Text:
    """uint8-range pixels (H, W) or (H, W, C) as lines of half blocks, `factor` pixels a
    pixel; three channels are drawn in colour, others as grey (their mean)."""
    colours = rgb(image, factor).astype(np.int64)
    if len(colours) % 2:
        colours = np.concatenate([colours, np.zeros_like(colours[:1])])
    lines = []
    for top, bottom in zip(colours[0::2], colours[1::2], strict=True):
        line = Text()
        for upper, lower in zip(top, bottom, strict=True):
            if color:
                line.append(
                    "▀",
                    Style(
                        color=f"rgb({upper[0]},{upper[1]},{upper[2]})",
                        bgcolor=f"rgb({lower[0]},{lower[1]},{lower[2]})",
                    ),
                )
            else:
                level = (int(upper.sum()) + int(lower.sum())) / (6 * 255)
                line.append(SHADES[min(int(level * len(SHADES)), len(SHADES) - 1)])
        lines.append(line)
    return Text("\n").join(lines)


def tile_row(tiles: list[Text], gap: int = 1) -> Text:
    """Blocks of lines side by side, each padded to its own widest line."""
    split = [tile.split("\n") for tile in tiles]
    widths = [max((line.cell_len for line in lines), default=0) for lines in split]
    rows = []
    for index in range(max((len(lines) for lines in split), default=0)):
        row = Text()
        for lines, width in zip(split, widths, strict=True):
            line = lines[index].copy() if index < len(lines) else Text()
            line.pad_right(width - line.cell_len + gap)
            row.append_text(line)
        rows.append(row)
    return Text("\n").join(rows)


def enlarged(image: np.ndarray, cols: int, rows: int) -> tuple[np.ndarray, int]:
    """An image (H, W[, C]) scaled up by the largest whole factor (nearest neighbour) that
    fits cols x rows cells at one pixel a half cell, and that factor; at least 1 (a bigger
    image is left as it is: the panel scrolls)."""
    height, width = image.shape[:2]
    factor = max(1, min(cols // max(width, 1), 2 * rows // max(height, 1)))
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1), factor
