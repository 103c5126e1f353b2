"""Terminal charts drawn with numpy into rich Text: braille line charts, percentile bands,
bar histograms, a confusion heat map and a predicted-vs-true density plot.

Owned here rather than taken from plotext because the charts are redrawn several times a
second next to a training thread that competes for the GIL: numpy rasterising keeps a
120x40 frame to about a millisecond. Everything stays readable without colour (NO_COLOR):
series differ by shape (a faint spread, a solid line, point markers, a dotted mark line),
bands by shade characters, heat by weight.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np
from rich.color import Color
from rich.style import Style
from rich.text import Text

# The one smoothing of training curves, defined in nnlib: `nnlib runs export` and `nnlib plot`
# use it too. Re-exported here for the charts.
from nnlib._validate import is_finite_number
from nnlib.runindex import ema  # noqa: F401

# Braille dot bits for a 4-row x 2-column cell, indexed [row][column].
_BRAILLE_BITS = np.array([[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]], dtype=np.int32)
_BARS = " ▁▂▃▄▅▆▇█"
_SHADES = " ░▒▓"


@dataclass(frozen=True)
class Series:
    """One thing drawn on a line chart.

    kind: "line" connects the points; "spread" fills, per pixel column, the range of the
    points that fall in it (raw, noisy values); "points" only sets the points' dots.
    `marker` is a character drawn over the cell of every point (e.g. epoch values).
    `cell`, if set, replaces the braille dots in every cell the series shows in, so that
    two series differ by shape without colour (NO_COLOR).
    """

    xs: Sequence[float] | np.ndarray
    ys: Sequence[float] | np.ndarray
    style: str
    kind: str = "line"
    marker: str | None = None
    cell: str | None = None


def format_number(value: float | None, width: int = 7, trim: bool = False) -> str:
    """The app's one way to write a number: compact, in at most `width` characters (0.0123,
    1.2e-5, 12,345), precision giving way to width, never the exponent or the sign. '–' for
    no value, 'nan' or '±inf' for a non-finite one. Not padded: a column pads it.

    Numbers that tick (losses, axis labels) keep a fixed count of decimals so they do not
    jitter; `trim` drops trailing zeros for values a person typed (lr 0.1, not 0.100)."""
    if value is None:
        return "–"
    if not math.isfinite(value):
        return str(float(value))  # nan, inf, -inf
    text = _fixed_point(value)
    if len(text) > width:
        one = format_exponent(value, 1)
        text = one if len(one) <= width else format_exponent(value, 0)
    if trim and "." in text and "e" not in text:
        text = text.rstrip("0").rstrip(".")
    return text


#: The decimals a number gets by its magnitude, so that a ticking value keeps its length:
#: `_DECIMALS[i]` from `_MAGNITUDES[i - 1]` (included) to `_MAGNITUDES[i]`; None, outside
#: [1e-3, 1e5): an exponent.
_MAGNITUDES = (1e-3, 1.0, 10.0, 100.0, 1e5)
_DECIMALS = (None, ".3f", ".2f", ".1f", ",.0f", None)


def _fixed_point(value: float) -> str:
    """A finite number at the precision its magnitude gets (`_DECIMALS`), before the width is
    considered: the first guess of `format_number`."""
    magnitude = abs(value)
    if magnitude == 0:
        return "0"
    spec = _DECIMALS[bisect.bisect_right(_MAGNITUDES, magnitude)]
    return format_exponent(value, 1) if spec is None else f"{value:{spec}}"


def format_exponent(value: float, digits: int = 1) -> str:
    """1.2e-5 rather than Python's 1.2e-05: two characters fewer for the axis labels; for a
    column whose values span decades (update/weight ratios)."""
    if not math.isfinite(value):
        return format_number(value)
    mantissa, exponent = f"{value:.{digits}e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def format_percent(value: float, span: float) -> str:
    """A fraction as a percent axis label: whole percents, with a decimal when the axis
    spans less than 10 points (so that its labels differ)."""
    return f"{value * 100:.{0 if span >= 0.1 else 1}f}%"


def format_value(value: object) -> str:
    """A hyperparameter or event value: a float as `format_number` writes a typed value
    (trimmed), anything else as it prints (an int, True, 'adam')."""
    if isinstance(value, float):
        return format_number(value, trim=True)
    return str(value)


def _scale(values: np.ndarray, lo: float, hi: float, pixels: int) -> np.ndarray:
    """Map values in [lo, hi] to pixel indices 0..pixels-1 (lo -> 0)."""
    span = hi - lo if hi > lo else 1.0
    return np.clip(np.rint((values - lo) / span * (pixels - 1)), 0, pixels - 1).astype(np.int64)


def _column_values(
    px: np.ndarray, py: np.ndarray, reduce: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per occupied pixel column: (columns, low y, high y) or (columns, mean y, mean y)."""
    order = np.argsort(px, kind="stable")
    px, py = px[order], py[order]
    columns, starts = np.unique(px, return_index=True)
    if reduce == "spread":
        return columns, np.minimum.reduceat(py, starts), np.maximum.reduceat(py, starts)
    sums = np.add.reduceat(py.astype(np.float64), starts)
    counts = np.diff(np.append(starts, len(py)))
    mean = sums / counts
    return columns, mean, mean


def _fill_spans(dots: np.ndarray, columns: np.ndarray, lows: np.ndarray, highs: np.ndarray) -> None:
    """Set dots[lo..hi, c] for every column c (y grows upward from row 0 at the bottom)."""
    rows = np.arange(dots.shape[0])[:, None]
    lo = np.rint(lows).astype(np.int64)[None, :]
    hi = np.rint(highs).astype(np.int64)[None, :]
    dots[:, columns] |= (rows >= lo) & (rows <= hi)


def _braille_cells(dots: np.ndarray) -> np.ndarray:
    """(4H, 2W) dots with row 0 at the bottom -> (H, W) braille bit masks, top row first."""
    height, width = dots.shape[0] // 4, dots.shape[1] // 2
    grid = dots[::-1].reshape(height, 4, width, 2)
    return np.einsum("hrwc,rc->hw", grid.astype(np.int32), _BRAILLE_BITS, optimize=True)


def _rows_to_text(
    chars: np.ndarray,
    styles: np.ndarray,
    palette: Sequence[str | Style],
    prefixes: Sequence[Text] | None = None,
) -> list[Text]:
    """Rows of characters with a palette index per cell (-1: no style) into Text lines."""
    styled = [*palette, ""]  # index -1 (no style) is the last
    lines = []
    for index, (row, row_styles) in enumerate(zip(chars, styles, strict=True)):
        line = prefixes[index].copy() if prefixes is not None else Text()
        starts = np.flatnonzero(np.diff(row_styles, prepend=-2))  # where the style changes
        for start, end in zip(starts, [*starts[1:], len(row)], strict=True):
            line.append("".join(row[start:end]), styled[row_styles[start]])
        lines.append(line)
    return lines


#: With more points than this, the y axis ignores the outer 1% on each side (TensorBoard's
#: "ignore outliers"): the first batches' loss would otherwise flatten the rest of the run.
ROBUST_AFTER = 200


def _y_range(
    values: list[np.ndarray], log: bool, limits: tuple[float | None, float | None]
) -> tuple[float, float] | None:
    """The range of the (finite) `values` with a little room, kept inside `limits` (e.g.
    accuracy in 0..1) unless the axis is `log`."""
    finite = np.concatenate([np.empty(0), *values])
    if not finite.size:
        return None
    outer = 0.01 if finite.size > ROBUST_AFTER else 0.0
    lo, hi = map(float, np.quantile(finite, (outer, 1 - outer)))
    pad = (hi - lo) * 0.04 if hi - lo >= 1e-12 else (abs(hi) * 0.05 or 0.05)
    lo, hi = lo - pad, hi + pad
    if log:
        return lo, hi
    low, high = limits
    return (lo if low is None else max(lo, low)), (hi if high is None else min(hi, high))


@dataclass
class _Layers:
    """A chart's dot layers in drawing order (later on top), each with its style and the
    glyph that replaces its braille (None: braille), and the markers drawn over them: what
    `_compose` turns into characters."""

    shape: tuple[int, int]  # pixel rows, columns
    dots: list[np.ndarray] = field(default_factory=list)
    palette: list[str] = field(default_factory=list)
    glyphs: list[str | None] = field(default_factory=list)
    overlays: list[tuple[np.ndarray, np.ndarray, str, int]] = field(default_factory=list)

    def add(self, style: str, glyph: str | None = None) -> np.ndarray:
        """A new empty layer on top, drawn in `style`, for the caller to set dots in."""
        self.dots.append(np.zeros(self.shape, dtype=bool))
        self.palette.append(style)
        self.glyphs.append(glyph)
        return self.dots[-1]


def line_chart(
    width: int,
    height: int,
    series: Sequence[Series],
    *,
    log_y: bool = False,
    x_range: tuple[float, float] | None = None,
    marks: Sequence[float] = (),
    mark_style: str = "yellow",
    cursor: float | None = None,
    cursor_style: str = "bold magenta",
    axis_style: str = "dim",
    y_limits: tuple[float | None, float | None] = (None, None),
    percent: bool = False,
) -> Text:
    """A braille line chart of `series` with y labels on the left and x labels below.

    `marks` are x positions drawn as dotted vertical lines behind the data (hyperparameter
    changes); `cursor` is one x drawn as a solid vertical line (the step the dashboard's
    time axis shows). With `log_y`, values <= 0 are left out. The y axis follows the data
    but stays within `y_limits` (so a loss axis does not dip below 0). With `percent`, the
    values are fractions labelled as percents (an accuracy, which the legends give in
    percent).
    """
    if width < 12 or height < 3:
        return Text("")
    prepared = [_finite(s, log_y) for s in series]
    y_bounds = _y_range([ys for _, _, ys in prepared], log_y, y_limits)
    if y_bounds is None:
        return Text("waiting for data…", style=axis_style)
    x_bounds = _x_extent([xs for _, xs, _ in prepared], x_range)
    labels = _y_labels(y_bounds, log_y, percent)
    plot_w, plot_h = width - _margin(labels), height - 1
    layers = _Layers((plot_h * 4, plot_w * 2))
    if marks:  # dotted
        _verticals(layers.add(mark_style), marks, x_bounds, every=2)
    if cursor is not None:  # solid
        _verticals(layers.add(cursor_style), [cursor], x_bounds, every=1)
    for s, xs, ys in prepared:
        _plot_series(layers, s, np.stack([xs, ys]), (x_bounds, y_bounds))
    chars, styles = _compose(layers, (plot_h, plot_w))
    return _with_axes(chars, styles, layers.palette, labels, x_bounds, axis_style)


def _finite(s: Series, log_y: bool) -> tuple[Series, np.ndarray, np.ndarray]:
    """A series' finite points as float64 arrays; with `log_y`, its positive ones in log10."""
    xs = np.asarray(s.xs, dtype=np.float64)
    ys = np.asarray(s.ys, dtype=np.float64)
    keep = np.isfinite(xs) & np.isfinite(ys)
    if log_y:
        keep &= ys > 0
        ys = np.log10(np.where(keep, ys, 1.0))
    return s, xs[keep], ys[keep]


def _x_extent(
    columns: Sequence[np.ndarray], x_range: tuple[float, float] | None
) -> tuple[float, float]:
    """The x axis's ends: `x_range` if given, else the lowest and highest x of every series
    that has points ((0, 1) when none has); at least 1 apart, so that points can be scaled."""
    if x_range is None:
        xs = np.concatenate([np.empty(0), *columns])
        x_range = (float(xs.min()), float(xs.max())) if xs.size else (0.0, 1.0)
    lo, hi = x_range
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def _y_labels(bounds: tuple[float, float], log_y: bool = False, percent: bool = False) -> list[str]:
    """The y axis's labels at its top, middle and bottom: percents of a fraction, or the
    numbers (back from log10 on a log axis)."""
    lo, hi = bounds
    ends = (hi, (lo + hi) / 2, lo)
    if percent:
        return [format_percent(value, hi - lo) for value in ends]
    return [format_number(10**value if log_y else value) for value in ends]


def _verticals(
    dots: np.ndarray, xs: Sequence[float], x_range: tuple[float, float], every: int
) -> None:
    """A vertical line in `dots` at each of `xs` on `x_range`, a dot every `every` rows."""
    dots[::every, _scale(np.asarray(xs, dtype=np.float64), *x_range, dots.shape[1])] = True


def _plot_series(
    layers: _Layers,
    s: Series,
    points: np.ndarray,
    ranges: tuple[tuple[float, float], tuple[float, float]],
) -> None:
    """One series' finite `points` (xs and ys stacked) as a new layer scaled to `ranges` (x,
    y), and its markers while they stay apart (at most one per 3 cell columns)."""
    dots = layers.add(s.style, s.cell)
    if not points.shape[1]:
        return
    (x_lo, x_hi), (y_lo, y_hi) = ranges
    pixel_h, pixel_w = layers.shape
    px = _scale(points[0], x_lo, x_hi, pixel_w)
    py = np.clip((points[1] - y_lo) / (y_hi - y_lo) * (pixel_h - 1), 0, pixel_h - 1)
    _draw_series(dots, s.kind, px, py)
    if s.marker and px.size <= pixel_w // 2 // 3:
        cell_rows = pixel_h // 4 - 1 - (np.rint(py).astype(np.int64) // 4)
        layers.overlays.append((cell_rows, px // 2, s.marker, len(layers.palette) - 1))


def _draw_series(dots: np.ndarray, kind: str, px: np.ndarray, py: np.ndarray) -> None:
    """One series into its dot layer: a "line" joins its column means; "spread" fills each
    column from its lowest to its highest point; anything else marks the column means."""
    if kind == "line" and px.size > 1:
        columns, mean, _ = _column_values(px, py, "mean")
        span = np.arange(columns[0], columns[-1] + 1)
        values = np.interp(span, columns, mean)
        after = np.append(values[1:], values[-1])
        _fill_spans(dots, span, np.minimum(values, after), np.maximum(values, after))
    else:
        columns, lows, highs = _column_values(px, py, "spread" if kind == "spread" else "mean")
        _fill_spans(dots, columns, lows, highs)


def _compose(layers: _Layers, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The chart's characters in `shape` (cell rows, columns) and each cell's layer (-1:
    empty): braille of every layer, the last layer with a dot in a cell giving its style; a
    layer's glyph replaces its braille; the overlays' markers go on top."""
    cells = np.zeros(shape, dtype=np.int32)
    styles = np.full(shape, -1, dtype=np.int32)
    for index, dots in enumerate(layers.dots):
        bits = _braille_cells(dots)
        cells |= bits
        styles[bits > 0] = index
    chars = np.vectorize(chr, otypes=[object])(cells + 0x2800)
    chars[cells == 0] = " "
    for index, glyph in enumerate(layers.glyphs):
        if glyph is not None:
            chars[styles == index] = glyph
    for rows, cols, marker, style_index in layers.overlays:
        chars[rows, cols] = marker
        styles[rows, cols] = style_index
    return chars, styles


def stacked_heights(total: int, parts: int) -> list[int]:
    """Heights for `parts` stacked charts filling `total` lines (the first ones a line
    taller when they do not divide evenly)."""
    base = total // parts
    return [base + (1 if i < total % parts else 0) for i in range(parts)]


def framed(
    picture: Callable[[int, int], list[Text]],
    width: int,
    height: int,
    x_range: tuple[float, float],
    y_range: tuple[float, float] | None,
    axis_style: str = "dim",
) -> list[Text]:
    """`picture(columns, rows)` with the axes of the charts around it, in width x height
    cells: the y values (`y_range`, its high end at the top; None: no labels) on the left
    and the x values below, so a map over a plane says where it is."""
    labels = _y_labels(y_range) if y_range else []
    margin = _margin(labels)
    plot_w, plot_h = max(width - margin, 1), max(height - 1, 1)
    prefixes = _y_axis(labels, plot_h, margin, axis_style)
    lines = [prefix + line for prefix, line in zip(prefixes, picture(plot_w, plot_h), strict=False)]
    lines.append(_x_axis(margin, plot_w, *x_range, axis_style, format_number))
    return lines


def _margin(labels: Sequence[str]) -> int:
    """The cells left of a chart: its longest y label and the axis."""
    return max(map(len, labels), default=0) + 1


def _y_axis(
    labels: Sequence[str], rows: int, margin: int, style: str, tick: str = "┤"
) -> list[Text]:
    """The y axis left of `rows` lines: the labels (top, middle, bottom) at `tick`s (a band
    of shades or a density has none: "│")."""
    at = dict(zip((0, rows // 2, rows - 1), labels, strict=False))
    return [
        Text.assemble((at.get(r, "").strip().rjust(margin - 1) + (tick if r in at else "│"), style))
        for r in range(rows)
    ]


def _steps(value: float) -> str:
    return f"{value:,.0f}"


def _x_axis(
    margin: int, width: int, lo: float, hi: float, style: str, fmt: Callable[[float], str] = _steps
) -> Text:
    left, middle, right = (fmt(v) for v in (lo, (lo + hi) / 2, hi))
    row = [" "] * width
    row[: len(left)] = left
    start = max(len(left) + 1, (width - len(middle)) // 2)
    if start + len(middle) < width - len(right) - 1:
        row[start : start + len(middle)] = middle
    row[width - len(right) :] = right
    return Text(" " * (margin - 1) + "└" + "".join(row)[:width], style=style)


def _with_axes(
    chars: np.ndarray,
    styles: np.ndarray,
    palette: Sequence[str | Style],
    labels: Sequence[str],
    x_range: tuple[float, float],
    axis_style: str,
    tick: str = "┤",
    fmt: Callable[[float], str] = _steps,
) -> Text:
    """A chart's cells (characters, and palette indices as `_rows_to_text` takes them) as
    text, its y axis's `labels` (top, middle, bottom) at `tick`s on the left and the x
    axis's ends and middle below, written by `fmt` (default: whole steps)."""
    margin = _margin(labels)
    prefixes = _y_axis(labels, len(chars), margin, axis_style, tick)
    lines = _rows_to_text(chars, styles, palette, prefixes)
    lines.append(_x_axis(margin, chars.shape[1], *x_range, axis_style, fmt))
    return Text("\n").join(lines)


def bar_histogram(
    width: int,
    height: int,
    counts: Sequence[int],
    lo: float,
    hi: float,
    style: str = "cyan",
    axis_style: str = "dim",
) -> Text:
    """Counts as vertical bars (eighth-block resolution) with the value range below."""
    if width < 8 or height < 2 or not len(counts):
        return Text("")
    counts_array = np.asarray(counts, dtype=np.float64)
    # Resample the bins onto `width` columns, each summing the bins it covers.
    edges = np.linspace(0, len(counts_array), width + 1)
    cumulative = np.concatenate([[0.0], np.cumsum(counts_array)])
    columns = np.diff(np.interp(edges, np.arange(len(cumulative)), cumulative))
    plot_h = height - 1
    top = columns.max()
    eighths = np.rint(columns / top * plot_h * 8) if top > 0 else np.zeros(width)
    eighths[(columns > 0) & (eighths == 0)] = 1
    below = (plot_h - 1 - np.arange(plot_h))[:, None] * 8  # the eighths under each row
    level = np.clip(eighths - below, 0, 8).astype(np.int64)
    lines = [Text("".join(row), style=style) for row in np.array(list(_BARS))[level].tolist()]
    left, right = format_number(lo), format_number(hi)
    axis = left + " " * max(1, width - len(left) - len(right)) + right
    lines.append(Text(axis[:width], style=axis_style))
    return Text("\n").join(lines)


def band_chart(
    width: int,
    height: int,
    steps: Sequence[float],
    percentiles: Sequence[Sequence[float]],
    palette: Sequence[str] = ("blue", "blue", "bright_blue", "bold bright_white"),
    axis_style: str = "dim",
) -> Text:
    """TensorBoard's distributions view: per step, the 0-100, 7-93 and 16-84 percentile
    bands as shades and the median as a line, so you see where a distribution moves."""
    if width < 12 or height < 3 or not len(steps):
        return Text("")
    p = np.asarray(percentiles, dtype=np.float64)  # (n, 7)
    lo, hi = float(np.nanmin(p[:, 0])), float(np.nanmax(p[:, -1]))
    if hi - lo < 1e-12:
        lo, hi = lo - 1e-3, hi + 1e-3
    labels = _y_labels((lo, hi))
    plot_w, plot_h = width - _margin(labels), height - 1
    # One snapshot per column: the latest one at or before the column's step.
    xs = np.asarray(steps, dtype=np.float64)
    grid = np.linspace(xs[0], xs[-1], plot_w)
    index = np.clip(np.searchsorted(xs, grid, side="right") - 1, 0, len(xs) - 1)
    columns = p[index]  # (plot_w, 7)
    step = (hi - lo) / plot_h
    top = hi - step * np.arange(plot_h)[:, None]  # cell bounds, row 0 at the top
    bottom = top - step
    # The 0-100, 7-93 and 16-84 bands (levels 1 to 3) a cell meets: it shows the innermost.
    inside = (bottom[..., None] <= columns[:, [6, 5, 4]]) & (top[..., None] >= columns[:, :3])
    shade = np.max(inside * np.arange(1, 4), axis=-1)
    median = (bottom <= columns[None, :, 3]) & (top >= columns[None, :, 3])
    chars = np.array(list(_SHADES), dtype=object)[shade]
    chars[median] = "━"
    styles = np.where(median, 3, shade - 1)
    return _with_axes(chars, styles, palette, labels, (xs[0], xs[-1]), axis_style, tick="│")


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> Color:
    t = min(max(t, 0.0), 1.0)
    return Color.from_rgb(*(round(x + (y - x) * t) for x, y in zip(a, b, strict=True)))


#: The precision row's label: its numbers are percentages (100 fits a 4-cell column).
PRECISION_LABEL = "prec%"
#: Cells of the recall column ("  95.0%").
RECALL_W = 8
#: Longest row label (class name) shown whole.
MAX_LABEL = 12


def confusion_heatmap(
    matrix: Sequence[Sequence[int]],
    precision: Sequence[float],
    recall: Sequence[float],
    names: Sequence[str],
    width: int,
    color: bool = True,
    cursor: tuple[int, int] | None = None,
) -> Text:
    """Counts coloured by their share of the true class (row): the diagonal green, errors
    red. Recall per row on the right, precision per predicted column below. Without colour,
    cells holding >= 25% of their row are bold and zeros are dots. The `cursor` cell (true,
    predicted), if any, is drawn reversed and underlined."""
    m = np.asarray(matrix, dtype=np.int64)
    label_w, cell_w = _confusion_widths(m, names, width)
    share, heat = _confusion_heat(m)
    header = Text(" " * (label_w + 1))
    for name in names:
        header.append(name[: cell_w - 1].rjust(cell_w), style="bold")  # one space between
    header.append("  recall", style="bold")
    lines = [Text.assemble(("true \\ predicted", "dim")), header]
    for i in range(len(m)):
        line = Text.assemble((names[i][:label_w].rjust(label_w) + " ", "bold"))
        for j, count in enumerate(m[i].tolist()):
            style = _confusion_style(i == j, count, share[i, j], heat[i, j], color)
            if (i, j) == cursor:
                style += Style(reverse=True, underline=True, bold=True)
            line.append(_count_cell(count, cell_w), style=style)
        line.append(f"  {recall[i]:6.1%}" if i < len(recall) else "")
        lines.append(line)
    lines.append(_precision_row(precision, len(m), label_w, cell_w))
    return Text("\n").join(lines)


def _precision_row(precision: Sequence[float], k: int, label_w: int, cell_w: int) -> Text:
    """The footer: the `k` predicted classes' precisions in percent, each under its column
    ('–' for none, or past the end of `precision`)."""
    values = [*precision[:k], *[math.nan] * (k - len(precision))]
    cells = ((f"{v * 100:.0f}" if math.isfinite(v) else "–").rjust(cell_w) for v in values)
    return Text.assemble((PRECISION_LABEL.rjust(label_w) + " ", "bold"), "".join(cells))


def _confusion_widths(m: np.ndarray, names: Sequence[str], width: int) -> tuple[int, int]:
    """The row labels' and the cells' widths in `width`: a cell wants the biggest count, a
    space, and at least "100" (a precision); the labels take what the cells leave (whole
    class names where they fit), at least the footer's label; headers are cut to a cell."""
    k = len(m)
    biggest = len(f"{int(m.max()):,}") if m.size else 1
    wanted = max(biggest + 1, 4)
    spare = width - RECALL_W - 1 - k * wanted
    label_w = max(min(max(len(n) for n in names), spare, MAX_LABEL), len(PRECISION_LABEL))
    cell_w = max(3, min(wanted, (width - label_w - 1 - RECALL_W) // max(k, 1)))
    return label_w, cell_w


def _confusion_heat(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each cell's share of its row, and its heat: the share on the diagonal, and for errors
    the share scaled to the worst confusion, so that the pairs that matter stand out even
    when every error is a small share of its row."""
    k = len(m)
    rows = m.sum(axis=1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros(m.shape, dtype=np.float64), where=rows > 0)
    errors = share * (1 - np.eye(k))
    return share, np.where(np.eye(k, dtype=bool), share, errors / (errors.max() or 1.0))


def _count_cell(count: int, cell_w: int) -> str:
    """A count right-aligned in its cell: grouped, in thousands when it does not fit, a dot
    for none (readable without colour)."""
    if not count:
        return "·".rjust(cell_w)
    text = f"{count:,}" if count < 10 ** (cell_w - 1) else f"{count / 1000:.0f}k"
    return text.rjust(cell_w)


#: The confusion map's colours: an empty cell, a right answer, a wrong one.
_DARK, _GOOD, _BAD = (30, 30, 40), (40, 170, 90), (200, 60, 60)


def _confusion_style(right: bool, count: int, share: float, heat: float, color: bool) -> Style:
    """A cell's style: with colour, its heat from dark to green (`right`, on the diagonal) or
    red, the text black on a bright right cell; without colour, bold for a quarter of its
    row or more, dim for an empty one."""
    if not color:
        return Style.parse("bold" if share >= 0.25 else ("dim" if not count else ""))
    bg = _mix(_DARK, _GOOD if right else _BAD, heat**0.7)
    return Style(color="black" if right and share >= 0.5 else "white", bgcolor=bg)


def density_plot(
    counts: Sequence[Sequence[int]],
    lo: float,
    hi: float,
    width: int,
    height: int,
    style: str = "cyan",
    axis_style: str = "dim",
) -> Text:
    """A 2-D histogram (rows predicted, high first; columns true) as shaded cells, with the
    ideal y = x diagonal dotted where no sample falls."""
    grid = np.asarray(counts, dtype=np.float64)
    if grid.size == 0 or width < 12 or height < 4:
        return Text("")
    labels = [format_number(hi), "", format_number(lo)]  # no middle
    plot_w, plot_h = width - _margin(labels), height - 1
    rows = np.minimum((np.arange(plot_h) * grid.shape[0]) // plot_h, grid.shape[0] - 1)
    cols = np.minimum((np.arange(plot_w) * grid.shape[1]) // plot_w, grid.shape[1] - 1)
    cells = grid[rows][:, cols]
    scale = np.log1p(cells) / np.log1p(cells.max()) if cells.max() > 0 else cells
    levels = np.where(cells > 0, 1 + np.minimum((scale * 4).astype(np.int64), 3), 0)
    chars = np.array(list(" ·░▒▓"), dtype=object)[np.minimum(levels, 4)]
    diagonal = np.rint((1 - (np.arange(plot_w) + 0.5) / plot_w) * (plot_h - 1)).astype(int)
    empty = levels[diagonal, np.arange(plot_w)] == 0
    chars[diagonal[empty], np.arange(plot_w)[empty]] = "╱"
    styles = np.where(levels > 0, 0, 1)
    palette = [style, axis_style]
    return _with_axes(chars, styles, palette, labels, (lo, hi), axis_style, "│", format_number)


# -- a sweep: parallel coordinates and the metric against each parameter ---------------------------
@dataclass(frozen=True)
class ParallelAxis:
    """One vertical axis of a parallel-coordinates chart: its values' positions run from 0
    (bottom) to 1 (top); `ticks` are the (position, label) pairs to write: a numeric axis's
    low and high ends, or every category of a categorical one (spaced evenly)."""

    name: str
    ticks: tuple[tuple[float, str], ...]
    categorical: bool = False
    log: bool = False


#: A numeric axis whose positive values span this factor or more is drawn on a log scale
#: (learning rates are chosen by decades).
LOG_SPAN = 20.0


def parallel_layout(
    names: Sequence[str], rows: Sequence[Sequence[object]]
) -> tuple[list[ParallelAxis], np.ndarray]:
    """The axes of a parallel-coordinates chart of `rows` (one per trial, a value per name;
    None where it has none) and each value's position on its axis, shape (rows, names),
    NaN where there is none. An axis whose values are all numbers is linear from its lowest
    to its highest value (log when they are positive and span LOG_SPAN; one value sits in
    the middle); any other axis is categorical: its values in order of appearance, evenly
    spaced from bottom to top."""
    positions = np.full((len(rows), len(names)), np.nan)
    axes = []
    for j, name in enumerate(names):
        given = [i for i, row in enumerate(rows) if row[j] is not None]
        axis, positions[given, j] = _axis(name, [rows[i][j] for i in given])
        axes.append(axis)
    return axes, positions


def _axis(name: str, values: Sequence[object]) -> tuple[ParallelAxis, np.ndarray | list[float]]:
    """The axis of `values` (those given) and each one's position on it: numeric when there
    are some and all are numbers, else categorical."""
    numeric = values and all(map(is_finite_number, values))
    return (_numeric_axis if numeric else _categorical_axis)(name, values)


def _numeric_axis(name: str, values: Sequence[object]) -> tuple[ParallelAxis, np.ndarray]:
    """A linear (or, spanning LOG_SPAN, log) axis from the lowest of `values` (numbers) to
    the highest, and each value's position on it (one value alone sits in the middle)."""
    numbers = cast("list[float]", values)
    lo, hi = min(numbers), max(numbers)
    log = lo > 0 and hi / lo >= LOG_SPAN
    scaled = np.log10(numbers) if log else np.asarray(numbers, dtype=np.float64)
    bottom, span = scaled.min(), scaled.max() - scaled.min()
    if span <= 0:
        return ParallelAxis(name, ((0.5, format_value(lo)),), log=log), np.full(len(values), 0.5)
    ends = ((0.0, format_value(lo)), (1.0, format_value(hi)))
    return ParallelAxis(name, ends, log=log), (scaled - bottom) / span


def _categorical_axis(name: str, values: Sequence[object]) -> tuple[ParallelAxis, list[float]]:
    """An axis of the values as text, in order of appearance, evenly spaced from bottom to
    top, and each value's position on it."""
    labels = list(map(str, values))
    categories = list(dict.fromkeys(labels))
    last = len(categories) - 1
    place = {c: k / last if last else 0.5 for k, c in enumerate(categories)}
    return ParallelAxis(name, tuple((place[c], c) for c in categories), True), [
        place[label] for label in labels
    ]


def _segment(dots: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> None:
    """Set the dots of the straight line from (x0, y0) to (x1, y1) (row 0 at the bottom)."""
    count = max(abs(x1 - x0), abs(y1 - y0)) + 1
    xs = np.rint(np.linspace(x0, x1, count)).astype(np.int64)
    ys = np.rint(np.linspace(y0, y1, count)).astype(np.int64)
    dots[ys, xs] = True


def _place(row: list[str], text: str, start: int, end: int) -> None:
    """Write `text` into `row` from `start`, cut at `end` (exclusive)."""
    for k, char in enumerate(text[: max(end - start, 0)]):
        row[start + k] = char


def _layers_to_text(
    layers: np.ndarray, palette: Sequence[str], overlay: dict[tuple[int, int], str]
) -> list[Text]:
    """Dot layers (layer, dot row, dot column; the first on top) drawn as braille, each cell
    in the style of the topmost layer with a dot in it; `overlay` puts characters (labels,
    markers) over cells."""
    cells = np.stack([_braille_cells(layer) for layer in layers])
    bits = np.bitwise_or.reduce(cells, axis=0)
    styles = np.where(bits > 0, np.argmax(cells > 0, axis=0), -1)
    chars = np.where(bits > 0, np.vectorize(lambda b: chr(0x2800 + b))(bits), " ").astype(object)
    for (r, c), char in overlay.items():
        if 0 <= r < chars.shape[0] and 0 <= c < chars.shape[1]:
            chars[r, c], styles[r, c] = char, len(palette) - 1
    return _rows_to_text(chars, styles, palette)


#: Best trial first: the styles of the highlighted trials, the others, the axes, the labels.
SWEEP_PALETTE = ("bold yellow", "cyan", "dim", "bold")


def parallel_chart(
    axes: Sequence[ParallelAxis],
    positions: np.ndarray,
    best: Sequence[int],
    width: int,
    height: int,
) -> list[Text]:
    """A parallel-coordinates chart in `width` x `height` cells: the axes' names on the
    first line, their high ends on the second, the chart, their low ends on the last; each
    row of `positions` a polyline across the axes, those in `best` (row indices, best
    first) highlighted and numbered 1, 2, ... at the last axis (readable without colour).
    A categorical axis writes its categories beside it, where they sit."""
    plot_w, plot_h = max(width - 2, 2 * len(axes)), max(height - 3, 2)
    last = max(len(axes) - 1, 1)
    at = [round(j * (plot_w - 1) / last) for j in range(len(axes))]
    dots_h, dots_w = 4 * plot_h, 2 * (plot_w + 2)  # 2 cells right of the last axis: ranks
    layers = np.zeros((3, dots_h, dots_w), dtype=bool)  # best trials, the others, the axes
    layers[2][:, 2 * np.asarray(at)] = True
    highlighted = set(best)
    for i, row in enumerate(positions):
        _polyline(layers[0] if i in highlighted else layers[1], row, at)
    overlay = _category_labels(axes, [*at, plot_w + 2], plot_h)
    overlay |= _rank_labels(positions[:, -1], best, at[-1] + 1, plot_h)
    chart = _layers_to_text(layers, SWEEP_PALETTE, overlay)
    names, highs, lows = _axis_labels(axes, at, width)
    return [Text(names, "bold"), Text(highs, "dim"), *chart, Text(lows, "dim")]


def _category_labels(
    axes: Sequence[ParallelAxis], at: Sequence[int], plot_h: int
) -> dict[tuple[int, int], str]:
    """The characters (by cell row and column) of each categorical axis's categories, written
    right of the axis at the row where each sits and cut two cells before the next column
    in `at` (the axes' columns, then the end of the chart)."""
    overlay: dict[tuple[int, int], str] = {}
    for axis, start, end in zip(axes, at, at[1:], strict=False):
        if not axis.categorical:
            continue
        for value, label in axis.ticks:
            for k, char in enumerate(label[: max(end - start - 2, 0)]):
                overlay[(_cell_row(value, plot_h), start + 1 + k)] = char
    return overlay


def _rank_labels(
    last: np.ndarray, best: Sequence[int], column: int, plot_h: int
) -> dict[tuple[int, int], str]:
    """The ranks 1 to 9 of the `best` rows (best first) in cell `column`, each at the row of
    its position on the last axis (`last`, one per row; none for NaN); a tie shows the
    better rank."""
    overlay: dict[tuple[int, int], str] = {}
    for rank, i in reversed(list(enumerate(best[:9], start=1))):
        if math.isfinite(last[i]):
            overlay[(_cell_row(last[i], plot_h), column)] = str(rank)
    return overlay


def _dot_y(value: float, dots_h: int) -> int:
    """The dot row (0 at the bottom) of a position in [0, 1] on an axis `dots_h` dots high."""
    return int(round(value * (dots_h - 1)))


def _cell_row(value: float, plot_h: int) -> int:
    """The cell row (0 at the top) of a position in [0, 1] on a chart `plot_h` cells high:
    the row of its dot, so that a label sits on its line."""
    return plot_h - 1 - _dot_y(value, 4 * plot_h) // 4


def _polyline(layer: np.ndarray, row: np.ndarray, at: Sequence[int]) -> None:
    """One trial's positions (`row`, NaN where it has no value) joined across the axes at the
    cell columns `at`; a value with none on either side is a single dot (on the last axis
    too)."""
    dots_h = layer.shape[0]
    finite = np.isfinite(row)
    for j in np.flatnonzero(finite).tolist():
        x, y = 2 * at[j], _dot_y(row[j], dots_h)
        layer[y, x] = True
        if j + 1 < len(at) and finite[j + 1]:
            _segment(layer, x, y, 2 * at[j + 1], _dot_y(row[j + 1], dots_h))


def _axis_labels(
    axes: Sequence[ParallelAxis], at: Sequence[int], width: int
) -> tuple[str, str, str]:
    """The lines of the axes' names, their high ends and their low ends (a numeric axis's),
    each written from its axis's column and cut at the next axis."""
    rows = [[" "] * width for _ in range(3)]
    for axis, start, end in zip(axes, at, [*at[1:], width], strict=False):
        name = axis.name + (" (log)" if axis.log else "")
        texts = [name] if axis.categorical else [name, axis.ticks[-1][1], axis.ticks[0][1]]
        for row, text in zip(rows, texts, strict=False):
            _place(row, text, min(start, max(width - len(text), 0)), end)
    names, highs, lows = ("".join(row).rstrip() for row in rows)
    return names, highs, lows


def scatter_chart(
    x_axis: ParallelAxis,
    y_axis: ParallelAxis,
    points: np.ndarray,
    best: Sequence[int],
    width: int,
    height: int,
) -> list[Text]:
    """The metric (`y_axis`) against one parameter (`x_axis`) in `width` x `height` cells:
    a title, the points (rows of `points`: x and y positions as `parallel_layout` gave
    them), the best one as ●, the y axis's ends on the left and the x axis's values below."""
    y_labels = [label for _, label in y_axis.ticks]
    margin = _margin(y_labels)
    plot_w, plot_h = max(width - margin, 2), max(height - 2, 2)
    chart = _scatter_points(points, best, plot_w, plot_h)
    ends = {plot_h - 1 - int(round(v * (plot_h - 1))): label for v, label in y_axis.ticks}
    lines = [Text(cut_label(f"{y_axis.name} vs {x_axis.name}", width), "bold")]
    for r, line in enumerate(chart):
        tick = ends.get(r, "")
        lines.append(Text(tick.rjust(margin - 1) + ("┤" if tick else "│"), "dim") + line)
    lines.append(Text(" " * (margin - 1) + "└" + _x_ticks(x_axis, plot_w), "dim"))
    return lines


def _scatter_points(
    points: np.ndarray, best: Sequence[int], plot_w: int, plot_h: int
) -> list[Text]:
    """The rows of `points` with both positions as dots in `plot_w` x `plot_h` cells, those
    in `best` highlighted and the best one (`best[0]`) marked ●, readable without colour."""
    dots = np.zeros((2, 4 * plot_h, 2 * plot_w), dtype=bool)  # best trials, the others
    overlay: dict[tuple[int, int], str] = {}
    for i in np.flatnonzero(np.isfinite(points).all(axis=1)):
        x, y = points[i]
        dx, dy = int(round(x * (2 * plot_w - 1))), int(round(y * (4 * plot_h - 1)))
        dots[0 if i in best else 1][dy, dx] = True
        if i in best[:1]:
            overlay[(plot_h - 1 - dy // 4, dx // 2)] = "●"
    return _layers_to_text(dots, SWEEP_PALETTE[:2] + SWEEP_PALETTE[3:], overlay)


def _x_ticks(axis: ParallelAxis, plot_w: int) -> str:
    """The axis's labels on a line `plot_w` cells wide, each where its value sits (kept
    inside the line), leaving out a label that would touch one already written."""
    below = [" "] * plot_w
    for value, label in axis.ticks:
        start = min(int(round(value * (plot_w - 1))), max(plot_w - len(label), 0))
        if not "".join(below[max(start - 1, 0) : start + len(label) + 1]).strip():
            _place(below, label, start, plot_w)
    return "".join(below).rstrip()


def cut_label(text: str, width: int) -> str:
    """`text` in at most `width` characters, `…` where it was cut."""
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"
