"""Per-layer distributions: the latest weight (or gradient) histogram as bars, how the
distribution moved over the run as percentile bands (TensorBoard's distributions view), and
gradient norm, update/weight ratio and dead-ReLU fraction for every layer."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.binding import Binding
from textual.reactive import reactive

from ..plot import band_chart, bar_histogram, format_exponent, format_number
from .panel import StatePanel, fit, side_by_side

if TYPE_CHECKING:
    from ..runstate import LayerHistory, LayerStats

#: Per kind of tensor shown ("weights" or "grads"): the bars' colour and the bands' shades.
BAR_STYLES = {"weights": "#38bdf8", "grads": "#fb923c"}
BAND_PALETTES = {
    "weights": ("#1e3a5f", "#2563eb", "#60a5fa", "bold #f8fafc"),
    "grads": ("#5c2e0e", "#c2410c", "#fb923c", "bold #f8fafc"),
}


#: Lines the histogram and bands keep however many layers the table lists.
MIN_CHART = 3


class LayersPanel(StatePanel, can_focus=True):
    """One selected layer in detail, and a one-line summary of every layer."""

    HELP: ClassVar[str] = (
        "Each layer's weights over time ([ and ] pick the layer, g shows its gradients "
        "instead). The bands are percentiles, as in TensorBoard: the densest band holds the "
        "middle 68% of the values (16th to 84th), the next the middle 86%, the faintest "
        "everything from min to max; the line is the median.\n\n"
        "Gradient norm: how big this layer's gradient is. Steady is good; growing by orders "
        "of magnitude means exploding gradients (lower the learning rate), near 0 while other "
        "layers' are not means vanishing gradients (the layer stops learning).\n\n"
        "Update/weight ratio: how much one step changes the weights, relative to their size. "
        "Around 1e-3 is healthy; 1e-1 and above, the learning rate is too high; 1e-5 and "
        "below, too low.\n\n"
        "Dead ReLUs: the share of units that output 0 for every sample of a batch. They get "
        "no gradient and never recover; a few percent is normal, more than half is a problem "
        "(lower the learning rate, or use leakyrelu)."
    )

    INTERVAL = 1.0
    BINDINGS = [
        Binding("left", "select(-1)", "Prev layer", show=False),
        Binding("right", "select(1)", "Next layer", show=False),
    ]
    selected: reactive[int] = reactive(0)
    gradients: reactive[bool] = reactive(False)

    def data_key(self) -> tuple[int, int]:
        return self.state.histograms, len(self.state.layer_names())

    def options(self) -> tuple[int, bool]:
        return self.selected, self.gradients

    def action_select(self, offset: int) -> None:
        self.select(offset)

    def select(self, offset: int) -> None:
        """Move the selection by `offset` layers (wrapping)."""
        names = self.state.layer_names()
        if names:
            self.selected = (self.selected + offset) % len(names)

    def draw(self, width: int, height: int) -> Text:
        names = self.state.layer_names()
        if not names or not self.state.layers:
            return Text("waiting for the first histograms…", style="dim")
        index = min(self.selected, len(names) - 1)
        history = self.state.layers.get(names[index])
        kind = "grads" if self.gradients else "weights"
        # The chart keeps at least 3 lines; the table shows the rows around the selection
        # that fit under it.
        table = self._table(names, index, width, max(height - 2 - MIN_CHART, 2))
        chart_h = max(height - len(table) - 2, MIN_CHART)
        title = Text.assemble(
            (f"{names[index]} ", "bold"),
            (f"({index + 1}/{len(names)}) ", "dim"),
            ("gradients" if self.gradients else "weights", "bold " + BAR_STYLES[kind]),
        )
        title = fit(
            width,
            title + Text("   [ ] layer · g weights/gradients", "dim"),
            title + Text("  [ ] g", "dim"),
            title,
        )
        if history is None:
            return Text("\n").join([title, Text("no data for this layer yet", style="dim")])
        bars_w = max(min(width // 3, 40), 12)
        body = _charts(history, kind, (bars_w, width - bars_w - 2), chart_h)
        captions = fit(
            width,
            *(Text("latest histogram".ljust(bars_w + 2) + bands, "dim") for bands in BAND_CAPTIONS),
        )
        return Text("\n").join([title, body, captions, *table])

    def _table(self, names: list[str], selected: int, width: int, lines: int) -> list[Text]:
        """The header and, within `lines`, the layers around the selected one."""
        shown = max(lines - 1, 1)
        first = min(max(selected - shown // 2, 0), max(len(names) - shown, 0))
        header = Text(f"  {'layer':<10} {'|grad|':>9} {'upd/w':>9} {'dead ReLU':>9}", style="bold")
        rows = [header]
        for index, name in enumerate(names[first : first + shown], start=first):
            history = self.state.layers.get(name)
            rows.append(_layer_row(name, history.latest if history else None, index == selected))
        for row in rows:
            row.truncate(width)
        return rows


#: The bands' captions, longest first: the first that fits is shown.
BAND_CAPTIONS = (
    "percentiles over steps: ░0-100 ▒7-93 ▓16-84 ━median",
    "percentiles ░0-100 ▒7-93 ▓16-84 ━median",
    "%iles ░0-100 ▒7-93 ▓16-84 ━50",
)


def _charts(history: LayerHistory, kind: str, widths: tuple[int, int], height: int) -> Text:
    """The layer's latest histogram of `kind` ("weights" or "grads") as bars beside its
    percentile bands over the run, in `widths` (bars, bands); a note while a layer has no
    gradients yet (before the first step)."""
    latest = history.latest.grads if kind == "grads" else history.latest.weights
    series = history.grads if kind == "grads" else history.weights
    if latest is None or not len(series):
        return Text("no gradients yet (they appear after the first step)", style="dim")
    bars_w, bands_w = widths
    bars = bar_histogram(bars_w, height, latest.counts, latest.lo, latest.hi, BAR_STYLES[kind])
    steps, *percentiles = series.columns
    bands = band_chart(
        bands_w, height, steps, list(zip(*percentiles, strict=True)), BAND_PALETTES[kind]
    )
    return side_by_side(bars, bands, bars_w)


def _layer_row(name: str, stats: LayerStats | None, selected: bool) -> Text:
    """One line of the table: the layer's latest gradient norm, update/weight ratio (yellow
    when unhealthy) and share of dead ReLUs (red above half), – where it has none; the
    selected layer marked ▶ and reversed."""
    row = Text("▶ ", style="bold") if selected else Text("  ")
    row.append(f"{name:<10.10} ")
    grad_norm, ratio, dead = (
        (stats.grad_norm, stats.update_ratio, stats.dead_fraction) if stats else (None, None, None)
    )
    row.append(format_number(grad_norm).rjust(9) + " ")
    row.append(
        ("–" if ratio is None else format_exponent(ratio)).rjust(9) + " ",
        style=_ratio_style(ratio),
    )
    row.append(
        ("–" if dead is None else f"{dead:.0%}").rjust(9),
        style="bold red" if dead is not None and dead > 0.5 else "",
    )
    if selected:
        row.stylize("reverse")
    return row


def _ratio_style(ratio: float | None) -> str:
    """Karpathy's rule of thumb: updates around 1e-3 of the weights are healthy."""
    if ratio is None or ratio <= 0 or not math.isfinite(ratio):
        return ""
    return "" if 1e-4 <= ratio <= 1e-2 else "yellow"
