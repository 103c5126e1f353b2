"""The Boundary panel: what the model does over its whole input plane, from the latest
'boundary' event (nnlib.callbacks.boundary).

Classification: the predicted class per cell, shaded by confidence, with the training points
(and, with `v`, the validation points) in their class colours; `d` shows the classes alone
(discretized). 2-D regression: the predicted surface, `t` toggles the true one (the mean target
per cell). 1-D regression: the fitted curve over the data. `u` switches to the neurons: each
hidden unit's activation over the plane, by layer; arrows select one to show it large with its
incoming weights. Half-block characters give two square pixels per cell; under NO_COLOR,
classes differ by glyph and confidence by weight (dim, plain, bold).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace
from typing import Any, ClassVar, NamedTuple

import numpy as np
from rich.color import Color
from rich.style import Style
from rich.text import Text
from textual.binding import Binding

from nnlib.events import NEURONS_MAX, RASTER_ALPHABET, Boundary, BoundaryPoints

from ..plot import format_number, framed
from .panel import StatePanel, fit, side_by_side

RGB = tuple[int, int, int]
#: Class colours (TensorFlow Playground's orange and blue first), then more.
CLASS_COLORS: tuple[RGB, ...] = (
    (245, 147, 34),
    (8, 119, 189),
    (46, 160, 67),
    (214, 39, 40),
    (148, 103, 189),
    (23, 190, 207),
    (227, 119, 194),
    (188, 189, 34),
    (140, 86, 75),
    (127, 127, 127),
)
#: Without colour: the glyph of each class's region, and of its points (hollow: validation).
REGION_GLYPHS = "·-+x~=:/\\%"
POINT_GLYPHS = "●■▲◆★✚♦▼⬟⬢"
VAL_GLYPHS = "○□△◇☆✛◊▽⬠⬡"
BACKGROUND: RGB = (16, 16, 20)
#: A value ramp for surfaces and curves (dark blue to yellow), and the neurons' diverging one.
RAMP: tuple[RGB, ...] = (
    (48, 18, 59),
    (40, 110, 190),
    (30, 180, 160),
    (160, 220, 60),
    (250, 230, 80),
)
#: Its zero is a mid grey, not a dark one: at 256 colours the dark, faintly blue mixes near 0
#: became saturated navy (0, 0, 95) squares and faint orange olive ones; from grey (90, 90, 90)
#: they go grey, slate, blue (and grey, tan, orange), and a unit at 0 stands out from the gaps.
DIVERGING: tuple[RGB, ...] = ((245, 147, 34), (90, 90, 90), (8, 119, 189))
SHADES = " ░▒▓█"
#: A neuron's |output| without colour: its zero is a dot, so a unit at 0 still shows its tile.
NEURON_SHADES = "·░▒▓█"
#: A neuron tile: 6x3 cells, 6x6 square pixels; a cell of gap on its left and below it.
TILE_COLUMNS, TILE_ROWS = 6, 3
BARS = "▁▂▃▄▅▆▇█"
#: What a class's strength means in the legend, with colour and without: in full, and short.
_SURENESS = {
    True: ("bright: sure · dark: unsure · dots: data", "bright sure · dark unsure"),
    False: (f"bold: sure · dim: unsure · {POINT_GLYPHS[:3]}: data", "bold sure · dim unsure"),
}
#: Without colour: how sure the model is, by weight (unsure, plain, sure).
_STRENGTH = np.array(["dim", "", "bold"], dtype=object)
_LEVEL = {char: index for index, char in enumerate(RASTER_ALPHABET)}
_TOP = len(RASTER_ALPHABET) - 1


def levels(rows: list[str]) -> np.ndarray:
    """A raster's rows as an int array of levels (-1 for ".")."""
    return np.array([[_LEVEL.get(c, -1) for c in row] for row in rows], dtype=np.int64)


def mix(a: RGB | np.ndarray, b: RGB | np.ndarray, t: float | np.ndarray) -> np.ndarray:
    """Colours from a to b by t (arrays broadcast)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a + (b - a) * np.asarray(t, dtype=np.float64)[..., None]


def ramp(values: np.ndarray, stops: tuple[RGB, ...]) -> np.ndarray:
    """Colours for values in [0, 1] along `stops`."""
    position = np.clip(values, 0, 1) * (len(stops) - 1)
    low = np.minimum(position.astype(np.int64), len(stops) - 2)
    table = np.asarray(stops, dtype=np.float64)
    return mix(table[low], table[low + 1], position - low)


def resample(grid: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """Nearest-neighbour resampling of a 2-D grid to rows x columns."""
    r = np.arange(rows) * grid.shape[0] // rows
    c = np.arange(columns) * grid.shape[1] // columns
    return grid[r][:, c]


def as_bytes(pixels: np.ndarray) -> np.ndarray:
    """Colours as uint8 (cut at 0 and 255, fractions dropped)."""
    return np.clip(pixels, 0, 255).astype(np.uint8)


def place(points: np.ndarray, rows: int, columns: int) -> list[tuple[int, int, int]]:
    """(row, column, label) on a rows x columns picture for each marked cell of a raster."""
    where = np.argwhere(points >= 0)
    return [
        (int(r) * rows // points.shape[0], int(c) * columns // points.shape[1], int(points[r, c]))
        for r, c in where
    ]


def _glyph_lines(glyphs: str, index: np.ndarray) -> list[Text]:
    """A picture without colour: each cell the glyph its `index` picks from `glyphs`."""
    table = np.array(list(glyphs), dtype=object)
    return [Text("".join(row)) for row in table[index].tolist()]


def _draw_line(canvas: np.ndarray, curve: np.ndarray) -> None:
    """A curve's levels per column (-1: no finite output) as a line of 1s in `canvas`, high
    levels at the top, each column joined to the one before so that a steep curve has no
    gaps."""
    height = canvas.shape[0]
    ys = np.where(curve >= 0, height - 1 - curve * (height - 1) // _TOP, -1)
    for column, y in enumerate(ys.tolist()):
        if y < 0:
            continue
        previous = ys[column - 1] if column and ys[column - 1] >= 0 else y
        low, high = sorted((int(previous), y))
        canvas[low : high + 1, column] = 1


class _View(NamedTuple):
    """What the map shows for one kind of boundary: its picture (`framed` calls it with the
    cells it has), its titles (longest first), the legend below it, and whether its rows
    differ (with one input feature they do not, and the y axis has no labels)."""

    draw: Callable[[int, int], list[Text]]
    titles: list[Text]
    legend: Text | None = None
    rows_differ: bool = True


class BoundaryPanel(StatePanel):
    """The latest 'boundary' event as a picture (see the module docstring for the keys)."""

    can_focus = True
    INTERVAL = 0.25
    HELP: ClassVar[str] = (
        "The model's answer for every point of its input plane (models with 1 or 2 input "
        "features), recomputed every few steps and at every epoch end.\n\n"
        "Classification: each colour is the class the model predicts there; bright means "
        "confident, dark means unsure (near a boundary). The dots are the training points in "
        "their true colours. Good: each dot sits in a region of its own colour and the "
        "boundaries follow the data. Bad: dots of one colour inside another colour's region "
        "(underfitting: more units, more epochs, a higher learning rate), or boundaries that "
        "wrap around single dots (overfitting).\n\n"
        "Regression: the predicted surface (t: the true one, the mean target per cell), or for "
        "1 input the fitted curve over the data points.\n\n"
        "Neurons (u): each hidden unit's own output over the plane, layer by layer (orange "
        "negative, blue positive). The first layer's units can only draw straight lines; later "
        "layers combine them into curves; grey means an output near 0 (a ReLU unit is 0 over "
        "half its plane; a dead one everywhere). Each unit is scaled to its own largest "
        "output. Up/down pick a layer, left/right a unit; a layer with more units than fit "
        "shows them page by page (PgUp/PgDn, or the arrows past the edge; on the map, PgUp/PgDn "
        "move the time axis as on the other tabs). The selected "
        "unit's incoming weights are shown by colour or sign (+ blue, - orange) and size.\n\n"
        "Keys: v validation points · d discrete classes · t true surface · u neurons · arrows "
        "select a neuron · PgUp/PgDn pages of neurons (in the Neurons view; on the map: a "
        "tenth of the run back or forward in time)"
    )
    BINDINGS = [
        Binding("v", "flip('validation')", "Val points"),
        Binding("d", "flip('discrete')", "Discrete"),
        Binding("t", "flip('truth')", "True surface"),
        Binding("u", "flip('neurons')", "Neurons"),
        Binding("left", "select(0, -1)", "Prev neuron", show=False),
        Binding("right", "select(0, 1)", "Next neuron", show=False),
        Binding("up", "select(-1, 0)", "Prev layer", show=False),
        Binding("down", "select(1, 0)", "Next layer", show=False),
        Binding("pageup", "page(-1)", "Prev page of units", show=False),
        Binding("pagedown", "page(1)", "Next page of units", show=False),
    ]

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.validation = False
        self.discrete = False
        self.truth = False
        self.neurons = False
        self.selected = (0, 0)  # (layer, unit) in the neurons view
        self.page_size = 16  # units per page of the neurons view, as last drawn

    # -- keys ------------------------------------------------------------------------------
    def action_flip(self, option: str) -> None:
        setattr(self, option, not getattr(self, option))
        self.refresh()

    def action_select(self, layer_step: int, unit_step: int) -> None:
        """Move the neuron selection (arrows), within the layers the latest event has; the
        page of tiles follows the selected unit."""
        event = self._event()
        layers = (event.neurons or []) if event else []
        if not layers:
            return
        layer = min(max(self.selected[0] + layer_step, 0), len(layers) - 1)
        units = len(layers[layer]["units"])
        unit = min(max(self.selected[1] + unit_step, 0), units - 1)
        self.selected = (layer, unit)
        self.neurons = True
        self.refresh()

    def action_page(self, step: int) -> None:
        """The next (or previous) page of the selected layer's units (PgDn, PgUp)."""
        self.action_select(0, step * self.page_size)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """PgUp/PgDn page the units in the Neurons view only: on the map they are the
        dashboard's (the time axis), as on every tab that has no pages."""
        return self.neurons if action == "page" else True

    def options(self) -> tuple[object, ...]:
        return self.validation, self.discrete, self.truth, self.neurons, self.selected

    def data_key(self) -> tuple[int, int]:
        return id(self.state.latest("boundary")), id(self.state.latest("boundary_points"))

    def _event(self) -> Boundary | None:
        """The latest boundary with the run's data points, which come once in their own
        'boundary_points' event (older logs carry them in every boundary)."""
        event = self.state.latest("boundary")
        if not isinstance(event, Boundary):
            return None
        points = self.state.latest("boundary_points")
        if isinstance(points, BoundaryPoints) and event.train is None:
            event = replace(event, train=points.train, val=points.val, truth=points.truth)
        return event

    # -- drawing ---------------------------------------------------------------------------
    def _picture(self, pixels: np.ndarray, source: np.ndarray | None = None) -> list[Text]:
        """Colours (2n, w, 3) as n lines of half blocks; in a graphics mode `source` (default:
        the same pixels) is drawn over them (`picture.Pictures.draw`)."""
        shown = self.pictures.draw(
            as_bytes(pixels), source=None if source is None else as_bytes(source)
        )
        return list(shown.split("\n"))

    def draw(self, width: int, height: int) -> Text:
        event = self._event()
        if event is None:
            return Text(
                "the boundary appears when training starts (models with 1 or 2 input features)",
                style="dim",
            )
        color = not self.app.no_color
        rows = max(height - 1, 1)
        if self.neurons:
            return Text("\n").join(self._draw_neurons(event, width, rows, color))
        when = f"step {event.step}" if event.epoch is None else f"epoch {event.epoch + 1}"
        views = {"classes": self._classes_view, "surface": self._surface_view}
        view = views.get(event.kind, self._curve_view)(event, when, width, color)
        y_range = (event.lo[1], event.hi[1]) if view.rows_differ else None
        body = framed(
            view.draw, width, rows - (view.legend is not None), (event.lo[0], event.hi[0]), y_range
        )
        titles = view.titles
        lines = [fit(width, *titles, Text(titles[-1].plain[: width - 1])), *body]
        return Text("\n").join([*lines, view.legend] if view.legend is not None else lines)

    def _classes_view(self, event: Boundary, when: str, width: int, color: bool) -> _View:
        """A classification's map: the predicted classes, titles that say which keys are on,
        the classes' legend; with one input feature its rows are all alike."""
        val, discrete = " ✓" * self.validation, " ✓" * self.discrete
        # Shorter titles rather than a cut one: the marks say which keys are on.
        keys = f"  d discrete{discrete}  u neurons"
        titles = [
            Text.assemble((head, "bold"), (f"  v {name}{val}{keys}", "dim"))
            for head, name in (
                (f"predicted class · {when}", "val points"),
                (f"predicted class · {when}", "val"),
                (f"classes · {when}", "val"),
                (when, "val"),
            )
        ]
        return _View(
            functools.partial(self._draw_classes, event, color=color),
            titles,
            self._class_legend(event, width, color),
            rows_differ=len(event.predicted) > 1,
        )

    def _surface_view(self, event: Boundary, when: str, width: int, color: bool) -> _View:
        """A 2-D regression's map: the predicted surface, or with `t` the true one (the mean
        target per cell), and its colour ramp."""
        grid = event.truth if self.truth and event.truth else event.predicted
        what = "true surface (mean target)" if self.truth else "predicted surface"
        return _View(
            functools.partial(self._draw_heat, levels(grid), color=color),
            [Text.assemble((f"{what} · {when}", "bold"), ("  t toggle  u neurons", "dim"))],
            self._ramp_legend(event, color),
        )

    def _curve_view(self, event: Boundary, when: str, width: int, color: bool) -> _View:
        """A 1-D regression's map: the fitted curve over the data points (its title is its
        legend)."""
        return _View(
            functools.partial(self._draw_curve, event, color=color),
            [Text.assemble((f"fitted curve · {when}", "bold"), ("  ● data  ━ model", "dim"))],
        )

    def _class_legend(self, event: Boundary, width: int, color: bool) -> Text:
        """The classes' colours (or region glyphs) with their names, and what brightness
        (or weight) means; "black" cells, if any, are where the model's output is not finite."""
        started = self.state.started
        predicted = levels(event.predicted)
        names = list(started.class_names) if started else []
        names += [str(i) for i in range(len(names), max(int(predicted.max()) + 1, 1))]
        swatches = _class_swatches(names, color)
        meaning, short = _SURENESS[color]
        none = " · black: no finite output" if color and (predicted < 0).any() else ""
        return fit(
            width,
            Text.assemble(swatches, (meaning + none, "dim")),
            Text.assemble(swatches, (short, "dim")),
            swatches,
        )

    def _ramp_legend(self, event: Boundary, color: bool) -> Text:
        """A surface's colours (or shades) from vmin to vmax."""
        low = format_number(event.vmin)
        high = format_number(event.vmax)
        if not color:
            return Text.assemble((f"{low} ", "dim"), SHADES, (f" {high}", "dim"))
        return Text.assemble(f"{low} ", _swatches(RAMP, 8), (f" {high}", "dim"), style="dim")

    def _draw_classes(self, event: Boundary, width: int, rows: int, color: bool) -> list[Text]:
        """Each cell's predicted class (its colour or glyph) and how sure the model is (its
        strength), with the data points over them."""
        predicted = levels(event.predicted)
        confidence = (
            levels(event.confidence) / _TOP if event.confidence else np.ones(predicted.shape)
        )
        points = self._points(event)
        if not color:
            return self._class_glyphs(predicted, confidence, points, width, rows)
        return self._class_pixels(predicted, confidence, points, width, rows)

    def _points(self, event: Boundary) -> list[tuple[list[str], bool]]:
        """The rasters of the data points to draw, each with whether it holds validation
        points (drawn hollow or lighter): the training points, and with `v` the validation
        ones."""
        shown = ((event.train, False), (event.val if self.validation else None, True))
        return [(raster, hollow) for raster, hollow in shown if raster]

    def _class_glyphs(
        self,
        predicted: np.ndarray,
        confidence: np.ndarray,
        points: list[tuple[list[str], bool]],
        width: int,
        rows: int,
    ) -> list[Text]:
        """`_draw_classes` without colour: a glyph per class, bold where sure, dim where
        not; data points as glyphs (validation points hollow)."""
        cells = resample(predicted, rows, width)
        # A class's glyph, and the last one (" ") for a cell without a finite output.
        glyphs = np.array([*REGION_GLYPHS, " "], dtype=object)[
            np.where(cells >= 0, cells % len(REGION_GLYPHS), -1)
        ].tolist()
        if self.discrete:
            styles = np.full(cells.shape, "", dtype=object).tolist()
        else:  # unsure (below a third), plain, sure (from two thirds)
            shade = resample(confidence, rows, width)
            styles = _STRENGTH[np.digitize(shade, (1 / 3, 2 / 3))].tolist()
        for raster, hollow in points:
            marks = VAL_GLYPHS if hollow else POINT_GLYPHS
            for r, c, label in place(levels(raster), rows, width):
                glyphs[r][c], styles[r][c] = marks[label % len(marks)], "bold"
        return [
            Text.assemble(*zip(line, style, strict=True))
            for line, style in zip(glyphs, styles, strict=True)
        ]

    def _class_pixels(
        self,
        predicted: np.ndarray,
        confidence: np.ndarray,
        points: list[tuple[list[str], bool]],
        width: int,
        rows: int,
    ) -> list[Text]:
        """`_draw_classes` in colour: each class's colour over the background as strong as
        the model is sure; data points lighter (validation points lighter still)."""
        pixels_rows = rows * 2
        cells = resample(predicted, pixels_rows, width)
        table = np.asarray(CLASS_COLORS, dtype=np.float64)
        hue = table[np.where(cells >= 0, cells % len(table), 0)]
        strength = 0.55 if self.discrete else 0.15 + 0.6 * resample(confidence, pixels_rows, width)
        pixels = mix(BACKGROUND, hue, np.broadcast_to(strength, cells.shape))
        pixels[cells < 0] = BACKGROUND
        for raster, hollow in points:
            for r, c, label in place(levels(raster), pixels_rows, width):
                tone = table[label % len(table)]
                pixels[r, c] = mix(tone, (255, 255, 255), 0.85 if hollow else 0.35)
        return self._picture(pixels)

    def _draw_heat(self, grid: np.ndarray, width: int, rows: int, color: bool) -> list[Text]:
        values = grid / _TOP
        if not color:
            cells = resample(values, rows, width)
            empty = resample(grid, rows, width) < 0
            index = np.clip((cells * len(SHADES)).astype(np.int64), 0, len(SHADES) - 1)
            return _glyph_lines(SHADES + "?", np.where(empty, len(SHADES), index))
        cells = resample(values, rows * 2, width)
        pixels = ramp(cells, RAMP)
        pixels[resample(grid, rows * 2, width) < 0] = BACKGROUND
        return self._picture(pixels)

    def _draw_curve(self, event: Boundary, width: int, rows: int, color: bool) -> list[Text]:
        """The data points (`v` adds the validation ones) under the fitted curve: half-block
        pixels in colour, dots and a full block without."""
        height = rows * (2 if color else 1)
        canvas = np.full((height, width), -1, dtype=np.int64)  # -1 empty, 0 data, 1 model
        for raster, _hollow in self._points(event):
            for r, c, _label in place(levels(raster), height, width):
                canvas[r, c] = 0
        _draw_line(canvas, resample(levels(event.predicted), 1, width)[0])
        if not color:
            return _glyph_lines(" ·█", canvas + 1)
        palette = np.array([BACKGROUND, (120, 150, 190), (245, 147, 34)], dtype=np.float64)
        return self._picture(palette[canvas + 1])

    def _draw_neurons(self, event: Boundary, width: int, rows: int, color: bool) -> list[Text]:
        """The selected layer's units as tiles, a page at a time (as many as fit), with the
        selected unit large beside them, and a legend for the colours."""
        layers = event.neurons or []
        if not layers:
            return [
                Text("neurons · u back", style="bold"),
                Text(
                    f"no hidden layer of up to {NEURONS_MAX} units to draw (or a 1-feature "
                    "input): try an architecture like 2-8-8-2",
                    style="dim",
                ),
            ]
        layer_index = min(self.selected[0], len(layers) - 1)
        layer = layers[layer_index]
        units = layer["units"]
        unit_index = min(self.selected[1], len(units) - 1)
        body = max(rows - 1, TILE_ROWS)  # the last line is the legend
        per_row = min(max((width // 2 + 3) // (TILE_COLUMNS + 1), 1), 6)  # about half
        left_width = per_row * (TILE_COLUMNS + 1)
        self.page_size = per_row * max(1, (body + 1) // (TILE_ROWS + 1))
        first = unit_index // self.page_size * self.page_size
        shown = units[first : first + self.page_size]
        left = self._tiles(shown, per_row, unit_index - first, color)
        right_width = max(width - left_width - 2, 8)
        right = self._unit(layer, unit_index, (right_width, max(body - 3, 2)), color)
        name = f"{layer['layer']} (layer {layer_index + 1} of {len(layers)})"
        page = f"units {first + 1}-{first + len(shown)} of {len(units)}"
        title = fit(
            width,
            Text.assemble(
                (f"neurons · {name} · {page}", "bold"),
                ("  ←→ unit  ↑↓ layer  PgUp/PgDn page  u back", "dim"),
            ),
            Text.assemble(
                (f"neurons · {name} · {page}", "bold"), ("  ←→↑↓ PgUp/PgDn  u back", "dim")
            ),
            Text(f"neurons · {name} · {page}", style="bold"),
            Text(f"{name} · {page}", style="bold"),
        )
        tiles = side_by_side(left, Text("\n").join(right), left_width)
        return [title, *tiles.split("\n"), self._neuron_legend(width, color)]

    def _tiles(self, shown: list[dict[str, Any]], per_row: int, chosen: int, color: bool) -> Text:
        """The page's units as small maps, `per_row` to a row with a blank line between the
        rows, the `chosen` one (its index in `shown`) pointed at by ▶."""
        rows = [
            self._tile_row(shown[start : start + per_row], chosen - start, color)
            for start in range(0, len(shown), per_row)
        ]
        return Text("\n\n").join(rows)

    def _tile_row(self, units: list[dict[str, Any]], chosen: int, color: bool) -> Text:
        """One row of tiles side by side, each after a cell that holds ▶ beside the middle
        line of the `chosen` one (its index in `units`)."""
        pictures = [self._draw_map(unit["map"], TILE_COLUMNS, TILE_ROWS, color) for unit in units]
        lines = []
        for line in range(TILE_ROWS):
            text = Text()
            for offset, picture in enumerate(pictures):
                pointed = offset == chosen and line == TILE_ROWS // 2
                text.append("▶" if pointed else " ", style="bold")
                text.append_text(picture[line])
            lines.append(text)
        return Text("\n").join(lines)

    def _unit(
        self, layer: dict[str, Any], index: int, size: tuple[int, int], color: bool
    ) -> list[Text]:
        """The selected unit large in `size` (columns, rows of its map), its bias and scale
        below, and its incoming weights."""
        unit = layer["units"][index]
        width, rows = size
        output = f"output ±{unit['scale']:.3g}" if unit["scale"] else "0 everywhere (dead)"
        return [
            Text(f"{layer['layer']} unit {index + 1}", style="bold"),
            *self._draw_map(unit["map"], width, rows, color),
            fit(
                width,
                Text(f"bias {unit['bias']:+.3g} · {output}", style="dim"),
                Text(f"b {unit['bias']:+.3g} · {output}", style="dim"),
            ),
            self._draw_weights(unit.get("weights"), width, color),
        ]

    def _neuron_legend(self, width: int, color: bool) -> Text:
        """What a tile's colours (or shades) mean."""
        if color:
            scale = Text.assemble("output ", _swatches(DIVERGING, 7))
            long = Text.assemble(
                scale, ("  orange −  grey 0  blue +  (each unit to its own ±largest)", "dim")
            )
            short = Text.assemble(scale, ("  orange −  grey 0  blue +", "dim"))
        else:
            what = " |output| from 0 to each unit's largest (no sign)"
            long = Text.assemble("output ", NEURON_SHADES, (what, "dim"))
            short = Text.assemble("output ", NEURON_SHADES, (" |output|", "dim"))
        return fit(width, long, short)

    def _draw_map(self, raster: list[str], width: int, rows: int, color: bool) -> list[Text]:
        values = levels(raster) / _TOP  # 0.5 is an output of 0
        if not color:
            cells = resample(values, rows, width)
            index = np.clip((np.abs(cells - 0.5) * 2 * len(NEURON_SHADES)).astype(np.int64), 0, 4)
            return _glyph_lines(NEURON_SHADES, index)
        shown = ramp(resample(values, rows * 2, width), DIVERGING)
        return self._picture(shown, source=ramp(values, DIVERGING))

    def _draw_weights(self, weights: list[float] | None, width: int, color: bool) -> Text:
        """Incoming weights: a bar as tall as the weight's size, each, coloured by sign (one
        cell: 32 weights fit beside the tiles at 80 columns), or after a sign without colour."""
        if not weights:
            return Text("incoming weights: too many to show", style="dim")
        sizes = np.abs(np.asarray(weights, dtype=np.float64))
        sizes /= sizes.max() or 1.0
        index = np.minimum((sizes * (len(BARS) - 1) + 0.5).astype(np.int64), len(BARS) - 1)
        shown, positive = np.array(list(BARS))[index], np.asarray(weights) >= 0
        if color:
            styles = np.where(positive, "#0877bd", "#f59322")
            bars = Text.assemble(*zip(shown.tolist(), styles.tolist(), strict=True))
        else:
            signs = np.where(positive, "+", "−").tolist()  # joined in Python: numpy 1.x
            bars = Text("".join(map(str.__add__, signs, shown.tolist())))  # adds no strings
        return fit(width, Text.assemble(("in ", "dim"), bars), bars)


def _class_swatches(names: list[str], color: bool) -> Text:
    """Each class's colour (without colour: its region's glyph) and its name, in a row."""
    swatches = Text()
    for index, name in enumerate(names):
        if color:
            tone = CLASS_COLORS[index % len(CLASS_COLORS)]
            swatches.append("■", Style(color=Color.from_rgb(*tone)))
        else:
            swatches.append(REGION_GLYPHS[index % len(REGION_GLYPHS)], "bold")
        swatches.append(f" {name}  ")
    return swatches


def _swatches(stops: tuple[RGB, ...], count: int) -> Text:
    """`count` squares evenly along a colour ramp, low to high: a legend's scale."""
    text = Text()
    for tone in ramp(np.linspace(0, 1, count), stops).astype(int).tolist():
        text.append("■", Style(color=Color.from_rgb(*tone)))
    return text
