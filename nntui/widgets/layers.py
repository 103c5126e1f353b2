"""Per-layer distributions: the latest weight (or gradient) histogram as bars, how the
distribution moved over the run as percentile bands (TensorBoard's distributions view), and
gradient norm, update/weight ratio and dead-ReLU fraction for every layer."""

from __future__ import annotations

import math
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding
from textual.reactive import reactive

from ..plot import band_chart, bar_histogram, format_exponent, format_number
from .panel import StatePanel, fit, side_by_side

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
        hist = history.latest.grads if self.gradients else history.latest.weights
        series = history.grads if self.gradients else history.weights
        bars_w = max(min(width // 3, 40), 12)
        if hist is None or not len(series):
            body = Text("no gradients yet (they appear after the first step)", style="dim")
        else:
            bars = bar_histogram(bars_w, chart_h, hist.counts, hist.lo, hist.hi, BAR_STYLES[kind])
            steps, *percentiles = series.columns
            bands = band_chart(
                width - bars_w - 2,
                chart_h,
                steps,
                list(zip(*percentiles, strict=True)),
                BAND_PALETTES[kind],
            )
            body = side_by_side(bars, bands, bars_w)
        captions = fit(
            width,
            *(
                Text("latest histogram".ljust(bars_w + 2) + bands, "dim")
                for bands in (
                    "percentiles over steps: ░0-100 ▒7-93 ▓16-84 ━median",
                    "percentiles ░0-100 ▒7-93 ▓16-84 ━median",
                    "%iles ░0-100 ▒7-93 ▓16-84 ━50",
                )
            ),
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
            stats = history.latest if history else None
            row = Text(
                "▶ " if index == selected else "  ", style="bold" if index == selected else ""
            )
            row.append(f"{name:<10.10} ")
            row.append(format_number(stats.grad_norm if stats else None).rjust(9) + " ")
            ratio = stats.update_ratio if stats else None
            row.append(
                ("–" if ratio is None else format_exponent(ratio)).rjust(9) + " ",
                style=_ratio_style(ratio),
            )
            dead = stats.dead_fraction if stats else None
            row.append(
                ("–" if dead is None else f"{dead:.0%}").rjust(9),
                style="bold red" if dead is not None and dead > 0.5 else "",
            )
            if index == selected:
                row.stylize("reverse")
            rows.append(row)
        for row in rows:
            row.truncate(width)
        return rows


def _ratio_style(ratio: float | None) -> str:
    """Karpathy's rule of thumb: updates around 1e-3 of the weights are healthy."""
    if ratio is None or ratio <= 0 or not math.isfinite(ratio):
        return ""
    return "" if 1e-4 <= ratio <= 1e-2 else "yellow"
